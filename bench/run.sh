#!/usr/bin/env bash
# Benchmark: rstaudit against ss and netstat on 300 .. 100,000 real TCP sockets.
#
# For each size N this script creates a network namespace (rsta-bench-PID-N),
# starts bench/loadgen.rs inside it (N sockets, both ends of each connection
# counted, spread over 6 processes, some with SO_LINGER 0, keepalive, user
# timeout or TCP_LINGER2), and times, alternating the order every round:
#   rstaudit snapshot, rstaudit audit (owners and options by the kernel's socket
#   iterator where it loads), rstaudit audit --owner-scan proc (the /proc pass),
#   ss -tanpoie, ss -tan, netstat -tanp
# each run inside the namespace with `ip netns exec NS nice -n -10 timeit`
# (bench/timeit.rs: wait4 rusage, microsecond wall/user/sys and max RSS). It saves
# a snapshot per size and times the engine alone on it (`rstaudit audit
# --snapshot FILE`, and bench/engine.rs: rules::run without the JSON parse).
# The namespace (and every process in it) is removed on exit, also on Ctrl-C.
# Results go into docs/performance.md, between the bench markers.
#
# Usage (root; release build):
#   bench/run.sh [-s "300 1000 10000 100000"] [-r REPS] [-o docs/performance.md] [-n]
#     -s  socket counts (default: 300 1000 10000 100000)
#     -r  timed rounds per size (default 5; one untimed warm-up round comes first)
#     -o  the markdown file to update (default docs/performance.md; `-` = print only)
#     -n  do not build; use target/release as it is
#     -t  tools to time, space separated labels (default: all six)
#     -F  run every command at SCHED_FIFO priority 10 instead of nice -10: on a shared
#         machine other work then no longer stretches wall times (the kernel's RT
#         throttling still leaves it 5 % of each core)
#     -c  another rstaudit binary (an older build) to time in the same rounds, as
#         `audit-other` and `snapshot-other` (added to the tools beside audit and snapshot)
#     -p  also time the audit's parts at each size, after the rounds (bench/audit_parts.rs,
#         REPS rounds in one process: the sock_diag dump, the socket iterator, the whole
#         collection, the rules, the table), printed as a table of where the time goes
#
# Needs: ip (iproute2), ss, netstat (net-tools).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sizes="300 1000 10000 100000"
reps=5
out="$here/docs/performance.md"
build=1
tools="snapshot audit audit-proc ss-tanpoie ss-tan netstat-tanp"
other=""
prio="nice -n -10"
parts=0
while getopts "s:r:o:nt:c:Fp" opt; do
    case $opt in
    s) sizes=$OPTARG ;;
    r) reps=$OPTARG ;;
    o) out=$OPTARG ;;
    n) build=0 ;;
    t) tools=$OPTARG ;;
    c) other=$(realpath "$OPTARG") ;;
    F) prio="chrt -f 10" ;;
    p) parts=1 ;;
    *) sed -n '2,34p' "$0" >&2; exit 2 ;;
    esac
done

die() { echo "bench: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (namespaces, /proc/*/fd of other processes)"
for t in ip ss netstat; do
    command -v "$t" >/dev/null || die "$t not found (iproute2, net-tools)"
done

cd "$here"
if [ "$build" = 1 ]; then
    cargo build --release --quiet --bin rstaudit --example loadgen --example engine --example timeit \
        --example audit_parts
fi
rst="$here/target/release/rstaudit"
loadgen="$here/target/release/examples/loadgen"
engine="$here/target/release/examples/engine"
timeit="$here/target/release/examples/timeit"
parts_bin="$here/target/release/examples/audit_parts"
for f in "$rst" "$loadgen" "$engine" "$timeit"; do [ -x "$f" ] || die "$f missing (build without -n)"; done
[ "$parts" = 0 ] || [ -x "$parts_bin" ] || die "$parts_bin missing (build without -n)"
if [ -n "$other" ]; then
    [ -x "$other" ] || die "$other is not an executable"
    # The older build of each of audit and snapshot being timed.
    case " $tools " in *" audit "*) tools="$tools audit-other" ;; esac
    case " $tools " in *" snapshot "*) tools="$tools snapshot-other" ;; esac
fi

tmp=$(mktemp -d /tmp/rsta-bench.XXXXXX)
ns=""
lgpid=""
cleanup() {
    if [ -n "$lgpid" ]; then kill "$lgpid" 2>/dev/null || true; wait "$lgpid" 2>/dev/null || true; fi
    if [ -n "$ns" ]; then
        # Workers die with loadgen (PR_SET_PDEATHSIG); kill any straggler still in the namespace.
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cmd_of() {
    case $1 in
    snapshot) echo "$rst snapshot -o $tmp/snap-out.json" ;;
    audit) echo "$rst audit --fail-on never" ;;
    audit-proc) echo "$rst audit --fail-on never --owner-scan proc" ;;
    audit-other) echo "$other audit --fail-on never" ;;
    snapshot-other) echo "$other snapshot -o $tmp/snap-other.json" ;;
    ss-tanpoie) echo "ss -tanpoie" ;;
    ss-tan) echo "ss -tan" ;;
    netstat-tanp) echo "netstat -tanp" ;;
    *) die "unknown tool $1" ;;
    esac
}
label_of() {
    case $1 in
    snapshot) echo "rstaudit snapshot" ;;
    audit) echo "rstaudit audit" ;;
    audit-proc) echo "rstaudit audit --owner-scan proc" ;;
    audit-other) echo "$(basename "$other") audit" ;;
    snapshot-other) echo "$(basename "$other") snapshot" ;;
    ss-tanpoie) echo "ss -tanpoie" ;;
    ss-tan) echo "ss -tan" ;;
    netstat-tanp) echo "netstat -tanp" ;;
    engine-file) echo "rstaudit audit --snapshot FILE" ;;
    engine) echo "engine alone (rules::run)" ;;
    esac
}

# time_one SIZE TOOL REP CMD...: append "SIZE TOOL REP WALL USER SYS RSS_KB" to results.
time_one() {
    local size=$1 tool=$2 rep=$3
    shift 3
    if ! "$@"; then
        echo "bench: $tool failed at $size sockets: $*" >&2
        exit 1
    fi
    [ "$rep" = warm ] && return 0
    # timeit's line: "wall user sys maxrss_kb exit".
    echo "$size $tool $rep $(cut -d' ' -f1-4 "$tmp/time")" >>"$tmp/results"
}

: >"$tmp/results"
: >"$tmp/engine"
: >"$tmp/parts"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tools_arr=($tools)
for size in $sizes; do
    ns="rsta-bench-$$-$size"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.core.somaxconn=8192
    ip netns exec "$ns" "$loadgen" --sockets "$size" >"$tmp/lg.out" 2>&1 &
    lgpid=$!
    for _ in $(seq 1200); do
        grep -q '^ready' "$tmp/lg.out" && break
        kill -0 "$lgpid" 2>/dev/null || { cat "$tmp/lg.out" >&2; die "loadgen failed at $size"; }
        sleep 0.25
    done
    grep -q '^ready' "$tmp/lg.out" || die "loadgen not ready after 300 s"
    # The count loadgen reports can be ahead of the table for a moment: wait for it (20 s).
    expected=$(awk '/^ready/ { print $2; exit }' "$tmp/lg.out")
    for _ in $(seq 80); do
        count=$(ip netns exec "$ns" ss -Htan | wc -l)
        [ "$count" -ge "$expected" ] && break
        sleep 0.25
    done
    echo "bench: $size requested, $count TCP sockets in $ns" >&2
    echo "$size $count" >>"$tmp/counts"
    for rep in warm $(seq "$reps"); do
        n=${#tools_arr[@]}
        off=$([ "$rep" = warm ] && echo 0 || echo "$rep")
        for i in $(seq 0 $((n - 1))); do
            tool=${tools_arr[$(((i + off) % n))]}
            # shellcheck disable=SC2046
            time_one "$size" "$tool" "$rep" ip netns exec "$ns" \
                $prio "$timeit" "$tmp/time" $(cmd_of "$tool")
        done
    done
    # The engine alone, on a snapshot of this size (needs the snapshot command).
    case " $tools " in *" snapshot "*) engine_too=1 ;; *) engine_too=0 ;; esac
    [ "$engine_too" = 1 ] && ip netns exec "$ns" "$rst" snapshot -o "$tmp/snap-$size.json"
    [ "$engine_too" = 1 ] && for rep in warm $(seq "$reps"); do
        time_one "$size" engine-file "$rep" $prio "$timeit" "$tmp/time" \
            "$rst" audit --fail-on never --snapshot "$tmp/snap-$size.json"
    done
    [ "$engine_too" = 1 ] && echo "$size $($prio "$engine" "$tmp/snap-$size.json" 20 | tr '\n' ' ')" >>"$tmp/engine"
    # The audit's parts, in one process (bench/audit_parts.rs).
    if [ "$parts" = 1 ]; then
        ip netns exec "$ns" $prio "$parts_bin" "$reps" | sed "s/^/$size /" >>"$tmp/parts"
    fi
    kill "$lgpid"
    wait "$lgpid" 2>/dev/null || true
    lgpid=""
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns"
    ns=""
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# median and range of column COL (1-based in "wall user sys rss cpu") for SIZE TOOL.
stat_of() {
    awk -v s="$1" -v t="$2" -v c="$3" '$1 == s && $2 == t {
        v[1] = $4; v[2] = $5; v[3] = $6; v[4] = $7; v[5] = $5 + $6; print v[c] }' "$tmp/results" |
        sort -g | awk '{ a[NR] = $1 } END {
            if (NR == 0) { print "- - -"; exit }
            m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
            print m, a[1], a[NR] }'
}
fmt_s() { awk -v m="$1" -v lo="$2" -v hi="$3" 'BEGIN {
    if (m == "-") { print "-"; exit }
    if (m < 0.1) printf "%.1f ms (%.1f–%.1f)", m * 1000, lo * 1000, hi * 1000
    else if (m < 1) printf "%.0f ms (%.0f–%.0f)", m * 1000, lo * 1000, hi * 1000
    else printf "%.2f s (%.2f–%.2f)", m, lo, hi }'; }
# rounds SIZE A B DIGITS: the wall-time ratio A / B of every timed round, lowest first.
rounds() {
    awk -v s="$1" -v a="$2" -v b="$3" '$1 == s && $2 == a { x[$3] = $4 } $1 == s && $2 == b { y[$3] = $4 }
        END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$tmp/results" |
        sort -g | awk -v d="$4" '{ printf "%s%." d "fx", (NR > 1 ? ", " : ""), $1 }'
}
fmt_mb() { awk -v m="$1" 'BEGIN { if (m == "-") print "-"; else printf "%.0f MB", m / 1024 }'; }

{
    echo "<!-- bench:begin (generated by bench/run.sh; edit outside the markers) -->"
    echo
    echo "Run: \`bench/run.sh -s \"$sizes\" -r $reps\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
    echo "commit \`$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)\`, release build."
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
    echo "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, kernel $(uname -r)."
    echo "Load average before / after: $load_before / $load_after (the machine is shared;"
    echo "wall time suffers from it more than CPU time)."
    echo
    echo "Each cell: median of $reps runs (min–max). CPU = user + sys. RSS = maximum resident set."
    echo "Every command ran at \`$prio\`, so that compilers running next to the benchmark disturb it less."
    echo
    for size in $sizes; do
        count=$(awk -v s="$size" '$1 == s { print $2 }' "$tmp/counts")
        echo "#### $count TCP sockets ($size requested)"
        echo
        echo "| command | wall | CPU | max RSS |"
        echo "|---|---|---|---|"
        for tool in $tools engine-file; do
            read -r wm wl wh <<<"$(stat_of "$size" "$tool" 1)"
            read -r cm cl ch <<<"$(stat_of "$size" "$tool" 5)"
            read -r rm _ _ <<<"$(stat_of "$size" "$tool" 4)"
            echo "| \`$(label_of "$tool")\` | $(fmt_s "$wm" "$wl" "$wh") | $(fmt_s "$cm" "$cl" "$ch") | $(fmt_mb "$rm") |"
        done
        med=""
        read -r _ _ load _ med lo hi findings nsock _ rl _ _ _ ev evlo evhi _ cpu _ <<<"$(awk -v s="$size" '$1 == s' "$tmp/engine")"
        [ -n "$med" ] && echo "| engine alone: \`rules::run\` ($findings findings) | $med ms ($lo–$hi) | | |" &&
            echo "| … of which loading the built-in rules / evaluating them | $rl ms / $ev ms ($evlo–$evhi; CPU $cpu ms) | | |" &&
            echo "| (loading the $nsock-socket JSON snapshot, not in the two lines above) | $load ms | | |"
        read -r a _ _ <<<"$(stat_of "$size" audit 1)"
        read -r s _ _ <<<"$(stat_of "$size" ss-tanpoie 1)"
        if [ "$a" != "-" ] && [ "$s" != "-" ]; then
            echo
            awk -v a="$a" -v s="$s" 'BEGIN { if (a > 0) printf "`ss -tanpoie` / `rstaudit audit` (median wall): %.1fx", s / a }'
            echo "; in each round (the two timed in the same round): $(rounds "$size" ss-tanpoie audit 1)"
        fi
        read -r t _ _ <<<"$(stat_of "$size" ss-tan 1)"
        if [ "$a" != "-" ] && [ "$t" != "-" ]; then
            echo
            awk -v a="$a" -v t="$t" 'BEGIN { if (t > 0) printf "`rstaudit audit` / `ss -tan` (median wall): %.2fx", a / t }'
            echo "; in each round: $(rounds "$size" audit ss-tan 2)"
        fi
        if [ -n "$other" ]; then
            read -r o _ _ <<<"$(stat_of "$size" audit-other 1)"
            if [ "$o" != "-" ] && [ "$t" != "-" ]; then
                echo
                awk -v a="$o" -v t="$t" 'BEGIN { if (t > 0) printf "`%s audit` / `ss -tan` (median wall): %.2fx", "'"$(basename "$other")"'", a / t }'
                echo "; in each round: $(rounds "$size" audit-other ss-tan 2)"
            fi
        fi
        if grep -q "^$size " "$tmp/parts"; then
            part() { awk -v s="$size" -v p="$1" '$1 == s && $2 == p { print $3 " ms (" $4 "–" $5 ")" }' "$tmp/parts"; }
            echo
            echo "Where the audit's time goes (\`bench/audit_parts.rs\`, one process, median of $reps rounds, min–max):"
            echo
            echo "| part | wall |"
            echo "|---|---|"
            echo "| sock_diag dump alone ($(awk -v s="$size" '$1 == s && $2 == "sockets" { print $3 }' "$tmp/parts") sockets, parsed) | $(part dump) |"
            echo "| socket iterator alone (one run, $(awk -v s="$size" '$1 == s && $2 == "records" { print $3 }' "$tmp/parts") records, and their index) | $(part iter) |"
            echo "| collection (program loaded, iterator, counters, sysctls, dump joined to owners) | $(part collect) |"
            echo "| rules (the audit's collection with the rules judging, minus the one above) | $(part rules) |"
            echo "| output (the table rendered) | $(part output) |"
            echo "| audit without writing (collection, rules, report) | $(part audit) |"
        fi
        echo
    done
    echo "<!-- bench:end -->"
} >"$tmp/section.md"

if [ "$out" = "-" ]; then
    cat "$tmp/section.md"
else
    [ -f "$out" ] || printf '# Performance\n\n<!-- bench:begin -->\n<!-- bench:end -->\n' >"$out"
    awk -v sec="$tmp/section.md" '
        /<!-- bench:begin/ { while ((getline l < sec) > 0) print l; skip = 1; next }
        /<!-- bench:end -->/ { skip = 0; next }
        !skip' "$out" >"$tmp/new.md"
    cp "$tmp/new.md" "$out"
    echo "bench: results written to $out" >&2
    mkdir -p "$here/target" && cp "$tmp/results" "$here/target/bench-results.txt"
    echo "bench: raw timings in target/bench-results.txt (size tool round wall user sys rss_kb)" >&2
fi

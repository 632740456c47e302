#!/usr/bin/env bash
# CPU of `rstaudit watch` (benchmark, not a test), the whole process, from /proc/PID/stat.
#
#   bench/watch-cpu.sh idle  [RSTAUDIT] [SOCKETS=100000] [AUDIT_EVERY=1m] [MEASURE=180]
#     bench/loadgen.rs holds SOCKETS sockets in a network namespace made here; no resets are
#     made. A watch for each --audit-every of AUDIT_EVERY (comma-separated, e.g. 1m,5m: side by
#     side) starts once they are open; after WARMUP
#     seconds (default 30: its first audit done) its CPU is measured over MEASURE seconds
#     (make it a multiple of AUDIT_EVERY, so the window holds whole audit periods).
#   bench/watch-cpu.sh flood [RSTAUDIT] [SECONDS=20]
#     FLOODERS (default 2) examples/rstflood processes send bare ACKs to a closed port on
#     loopback in a namespace made here for SECONDS (RATE=R: each at R a second); the kernel
#     answers each with a reset. CPU of the watch over the flood (and 3 s after), per reset:
#     the namespace's Tcp.OutRsts change, and the resets the watch counted there (/metrics).
#
# Needs root. Everything is made inside namespaces created here (removed on exit); loopback
# only. LOADGEN=path (default target/release/examples/loadgen), FLOOD=path (default
# target/release/examples/rstflood). The watch also sees the resets of other namespaces of
# the host (other users): the whole-host count it made over the window is printed too.
set -eu
MODE=${1:?idle or flood}
BIN=${2:-target/release/rstaudit}
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
FLOOD=${FLOOD:-target/release/examples/rstflood}
FLOODERS=${FLOODERS:-2}
WARMUP=${WARMUP:-30}
NS=rsta-wcpu-$$
PORT=$((20000 + $$ % 20000))
OUT=$(mktemp -d /tmp/watch-cpu.XXXXXX)
HZ=$(getconf CLK_TCK)

cleanup() {
    # Every step, whatever the one before it did (set -e would end the trap at a failed kill).
    set +e
    for w in ${WATCH:-} ${WATCHES[@]:-}; do kill -TERM "$w" 2>/dev/null && sleep 1; kill -KILL "$w" 2>/dev/null; done
    [ -n "${LG:-}" ] && kill "$LG" 2>/dev/null && wait "$LG" 2>/dev/null
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ticks() { awk '{print $14 + $15}' "/proc/$WATCH/stat"; }
outrsts() { ip netns exec "$NS" awk '/^Tcp:/ { if (h) print $15; h = 1 }' /proc/net/snmp; }
# resets the watch counted (sent), in namespace $1 or everywhere
counted() {
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v ns="${1:-}" '
        /^rstaudit_resets_total\{/ && /direction="sent"/ && (ns == "" || index($0, "netns=\"" ns "\"")) { s += $NF }
        END { printf "%d\n", s }'
}
start_watch() {
    "$BIN" watch --listen "127.0.0.1:$PORT" --events /dev/null "$@" >"$OUT/watch.out" 2>"$OUT/watch.err" &
    WATCH=$!
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "watch not healthy after 30 s:" >&2
    cat "$OUT/watch.err" >&2
    exit 1
}

ip netns add "$NS"
ip -n "$NS" link set lo up
echo "# $(date -u +%FT%TZ) kernel $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

case $MODE in
idle)
    SOCKETS=${3:-100000}
    EVERY=${4:-1m}
    MEASURE=${5:-180}
    ip netns exec "$NS" sysctl -qw net.core.somaxconn=8192
    ip netns exec "$NS" "$LOADGEN" --sockets "$SOCKETS" >"$OUT/lg.out" 2>&1 &
    LG=$!
    for _ in $(seq 1200); do
        grep -q '^ready' "$OUT/lg.out" && break
        kill -0 "$LG" 2>/dev/null || { cat "$OUT/lg.out" >&2; exit 1; }
        sleep 0.25
    done
    sleep 5
    echo "# $(ip netns exec "$NS" ss -Htan | wc -l) TCP sockets in $NS"
    # One watch for each --audit-every of the comma-separated list, side by side.
    WATCHES=()
    PORTS=()
    for every in ${EVERY//,/ }; do
        start_watch --audit-every "$every"
        WATCHES+=("$WATCH")
        PORTS+=("$PORT")
        PORT=$((PORT + 1))
    done
    WATCH=
    sleep "$WARMUP"
    declare -A c0 r0 samples
    for i in "${!WATCHES[@]}"; do
        WATCH=${WATCHES[$i]} PORT=${PORTS[$i]}
        c0[$i]=$(ticks); r0[$i]=$(counted)
        : >"$OUT/samples.$i"
    done
    l0=$(cut -d' ' -f1-3 /proc/loadavg)
    for s in $(seq 1 "$MEASURE"); do
        sleep 1
        for i in "${!WATCHES[@]}"; do WATCH=${WATCHES[$i]}; echo "$s $(ticks)" >>"$OUT/samples.$i"; done
    done
    i=0
    for every in ${EVERY//,/ }; do
        WATCH=${WATCHES[$i]} PORT=${PORTS[$i]}
        c1=$(ticks); r1=$(counted)
        curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics.$i"
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$WATCH/status")
        alast=$(awk '/^rstaudit_audit_duration_seconds / {print $NF}' "$OUT/metrics.$i")
        # the largest one-second CPU steps: the audits
        peaks=$(awk 'NR > 1 { print $2 - p } { p = $2 }' "$OUT/samples.$i" | sort -rn | head -5 | tr '\n' ' ')
        quiet=$(awk 'NR > 1 { d = $2 - p; if (d <= 2) { q += d; n++ } } { p = $2 } END { if (n) printf "%.3f", q / n / '"$HZ"' * 100 }' "$OUT/samples.$i")
        echo "idle, $SOCKETS sockets, --audit-every $every: CPU $((c1 - c0[$i]))/$HZ s in $MEASURE s = $(awk "BEGIN { printf \"%.2f\", ($c1 - ${c0[$i]}) / $HZ / $MEASURE * 100 }")% of one core;" \
            "between audits (1 s steps of at most 2 ticks) $quiet%; largest 1 s steps (ticks): $peaks"
        echo "  last audit took $alast s (wall); RSS $rss kB; resets it counted over the window (whole host, other users') $((r1 - r0[$i]))"
        i=$((i + 1))
    done
    echo "  load at start $l0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    for w in "${WATCHES[@]}"; do kill -TERM "$w" 2>/dev/null; done
    for w in "${WATCHES[@]}"; do wait "$w" 2>/dev/null || true; done
    ;;
flood)
    SECS=${3:-20}
    start_watch
    sleep 8
    before=$(outrsts); c0=$(ticks); w0=$(counted "$NS"); h0=$(counted)
    l0=$(cut -d' ' -f1-3 /proc/loadavg)
    pids=()
    for i in $(seq 1 "$FLOODERS"); do
        ip netns exec "$NS" "$FLOOD" rst "$SECS" $((9 + i)) >"$OUT/flood.$i" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    after=$(outrsts)
    sleep 3
    c1=$(ticks); w1=$(counted "$NS"); h1=$(counted)
    kernel=$((after - before)); seen=$((w1 - w0))
    drops=$(curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^rstaudit_(events_dropped|capture|trace)[a-z_]*(\{|\s)' | tr '\n' ';' || true)
    echo "flood, $FLOODERS flooders, $SECS s: kernel Tcp.OutRsts +$kernel ($((kernel / SECS))/s); watch counted $seen in $NS, $((h1 - h0)) on the whole host"
    echo "  watch CPU $(awk "BEGIN { printf \"%.2f\", ($c1 - $c0) / $HZ }") s = $(awk "BEGIN { printf \"%.3f\", ($c1 - $c0) / $HZ / $kernel * 1e6 }") us per reset of $NS (kernel count), $(awk "BEGIN { printf \"%.3f\", ($c1 - $c0) / $HZ / ($h1 - $h0) * 1e6 }") us per reset counted on the whole host;" \
        "RSS $(awk '/^VmRSS:/ {print $2}' "/proc/$WATCH/status") kB; load at start $l0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "  $drops"
    ;;
*)
    echo "mode: idle or flood" >&2
    exit 2
    ;;
esac

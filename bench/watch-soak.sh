#!/usr/bin/env bash
# Soak `rstaudit watch` (benchmark, not a test): DURATION seconds of
#   - a steady flood of resets, RATE a second, in one network namespace made here
#     (examples/rstflood: bare ACKs to a closed port on loopback; the kernel answers each with a
#     reset, NO_SOCKET), and
#   - namespace churn: every CHURN seconds a new namespace made here, left alone for 6 s (so the
#     watch has listed and opened it: it lists every 2 s), then CHURN_RESETS resets inside it,
#     its Tcp.OutRsts read, and the namespace removed.
# The watch runs on the host (it follows every namespace). Every STEP seconds a CSV row on
# standard output: its RSS, descriptors, threads, CPU ticks, its tracing instances and its
# probes in dynamic_events, the load average.
# At the end the resets counted by the watch (rstaudit_resets_total, direction sent, by netns,
# from /metrics) are set against each namespace's Tcp.OutRsts, and the watch is stopped with
# SIGTERM: its instance and probes must be gone.
#
# Needs root. Touches nothing outside the namespaces it creates (all removed on exit); loopback
# only. Usage:
#   bench/watch-soak.sh [RSTAUDIT] [DURATION=1800] [RATE=10000] [CHURN=4] [STEP=10] > soak.csv
# FLOOD=path/to/rstflood (default target/release/examples/rstflood); EVENTS=PATH (default
# /dev/null: every event still serialised and written); WATCH_ARGS adds arguments. Artefacts
# (metrics, churn counts, the watch's stderr) are kept in the directory printed on stderr.
set -eu
BIN=${1:-target/release/rstaudit}
DURATION=${2:-1800}
RATE=${3:-10000}
CHURN=${4:-4}
STEP=${5:-10}
CHURN_RESETS=${CHURN_RESETS:-500}
FLOOD=${FLOOD:-target/release/examples/rstflood}
EVENTS=${EVENTS:-/dev/null}
TAG=rsta-wsoak-$$
MAIN=$TAG-main
PORT=$((20000 + $$ % 20000))
OUT=$(mktemp -d /tmp/watch-soak.XXXXXX)
echo "# artefacts in $OUT" >&2

cleanup() {
    set +e
    [ -n "${LOAD:-}" ] && kill "$LOAD" 2>/dev/null
    [ -n "${CHURNER:-}" ] && kill "$CHURNER" 2>/dev/null
    [ -n "${WATCH:-}" ] && kill -TERM "$WATCH" 2>/dev/null && sleep 2
    [ -n "${WATCH:-}" ] && kill -KILL "$WATCH" 2>/dev/null
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

outrsts() { ip netns exec "$1" awk '/^Tcp:/ { if (h) print $15; h = 1 }' /proc/net/snmp; }

# shellcheck disable=SC2086
"$BIN" watch --listen "127.0.0.1:$PORT" --audit-every 1m --values-per-label 2000 --events "$EVENTS" \
    ${WATCH_ARGS:-} >"$OUT/watch.stdout" 2>"$OUT/watch.stderr" &
WATCH=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done

ip netns add "$MAIN"
ip -n "$MAIN" link set lo up
sleep 6
ip netns exec "$MAIN" env RATE="$RATE" "$FLOOD" rst "$DURATION" 9 >"$OUT/flood.out" 2>&1 &
LOAD=$!

(
    trap - EXIT
    i=0
    end=$(($(date +%s) + DURATION))
    while [ "$(date +%s)" -lt "$end" ]; do
        i=$((i + 1))
        (
            ns=$TAG-c$i
            ip netns add "$ns" && ip -n "$ns" link set lo up
            sleep 6
            ip netns exec "$ns" env RATE=$((CHURN_RESETS * 2)) timeout 5 "$FLOOD" rst 0.5 9 >/dev/null 2>&1 || true
            sleep 1
            echo "$ns,$(outrsts "$ns")" >>"$OUT/churn.csv"
            ip netns del "$ns"
        ) &
        sleep "$CHURN"
    done
    wait
) &
CHURNER=$!

START=$(date +%s)
echo "seconds,rss_kib,fds,threads,cpu_ticks,instances,probes,namespaces_alive,load1"
while [ $(($(date +%s) - START)) -lt "$DURATION" ] && kill -0 "$WATCH" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$WATCH/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$WATCH/status")
    fds=$(find "/proc/$WATCH/fd" -mindepth 1 -maxdepth 1 | wc -l)
    cpu=$(awk '{print $14 + $15}' "/proc/$WATCH/stat")
    inst=$(find /sys/kernel/tracing/instances -mindepth 1 -maxdepth 1 -name "rstaudit-$WATCH*" | wc -l)
    probes=$(grep -c "rstaudit" /sys/kernel/tracing/dynamic_events 2>/dev/null || true)
    alive=$(ip netns list | grep -c "^$TAG-" || true)
    echo "$(($(date +%s) - START)),$rss,$fds,$thr,$cpu,$inst,${probes:-0},$alive,$(cut -d' ' -f1 /proc/loadavg)"
    sleep "$STEP"
done
wait "$LOAD" || true
LOAD=
wait "$CHURNER" || true
CHURNER=
main_rsts=$(outrsts "$MAIN")
sleep 3
curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics.txt" || echo "# /metrics failed" >&2
echo "# the watch at the end: $(awk '/^VmRSS:/ {print $2}' "/proc/$WATCH/status") kB RSS, $(find "/proc/$WATCH/fd" -mindepth 1 -maxdepth 1 | wc -l) fds" >&2
ip netns del "$MAIN"
sleep 4
fds_after=$(find "/proc/$WATCH/fd" -mindepth 1 -maxdepth 1 | wc -l)
kill -TERM "$WATCH"
wait "$WATCH" && rc=0 || rc=$?
pid=$WATCH
WATCH=
echo "# fds after the last namespace went: $fds_after; watch exit $rc" >&2
echo "# after exit: instances rstaudit-$pid: $(find /sys/kernel/tracing/instances -mindepth 1 -maxdepth 1 -name "rstaudit-$pid" | wc -l), rstaudit probes: $(grep -c rstaudit /sys/kernel/tracing/dynamic_events 2>/dev/null || true)" >&2
echo "# flood: $(cat "$OUT/flood.out")" >&2
python3 - "$OUT" "$MAIN" "$main_rsts" "$TAG" <<'EOF' >&2
import re, sys
out, main, main_rsts, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seen = {}
for line in open(f"{out}/metrics.txt"):
    if line.startswith("rstaudit_resets_total{") and 'direction="sent"' in line:
        ns = re.search(r'netns="([^"]*)"', line).group(1)
        seen[ns] = seen.get(ns, 0) + float(line.rsplit(" ", 1)[1])
churn = {}
try:
    for line in open(f"{out}/churn.csv"):
        ns, n = line.strip().split(",")
        churn[ns] = int(n or 0)
except FileNotFoundError:
    pass
print(f"# main namespace: kernel Tcp.OutRsts {main_rsts}, watch {int(seen.get(main, 0))}, missing {main_rsts - int(seen.get(main, 0))}")
k = sum(churn.values()); w = sum(int(seen.get(ns, 0)) for ns in churn)
short = sorted((ns for ns in churn if int(seen.get(ns, 0)) != churn[ns]), key=lambda s: int(s.rsplit("c", 1)[1]))
print(f"# churn: {len(churn)} namespaces, kernel Tcp.OutRsts {k}, watch {w}; {len(short)} namespaces differ: " +
      ", ".join(f"{ns}={int(seen.get(ns, 0))}/{churn[ns]}" for ns in short[:10]))
print(f"# netns 'other' (label limit): {int(seen.get('other', 0))}; namespaces not made here: " +
      ", ".join(f"{ns}={int(n)}" for ns, n in seen.items() if not ns.startswith(tag) and ns != "other"))
EOF

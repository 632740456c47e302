#!/usr/bin/env bash
# Soak the live packet check: run `rstaudit packet-check` for DURATION seconds in a network
# namespace created here, under a steady load of resets (connections to a closed port on
# loopback, RATE per second), and sample the checker's resident memory every STEP seconds.
# Needs root. Touches nothing outside the namespace it creates (and removes on exit).
#   bench/soak.sh [RSTAUDIT] [DURATION=600] [RATE=200] [STEP=10] > rss.csv
# SOAK_ARGS="--events-file /tmp/resets.jsonl" adds arguments to the packet-check command line.
set -eu
BIN=${1:-target/release/rstaudit}
DURATION=${2:-600}
RATE=${3:-200}
STEP=${4:-10}
NS=rsta-soak-$$
OUT=$(mktemp -d)
cleanup() {
    [ -n "${LOAD:-}" ] && kill "$LOAD" 2>/dev/null
    [ -n "${CHECK:-}" ] && kill "$CHECK" 2>/dev/null
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 -c "
import socket, time, sys
rate = $RATE
# Bounded: the load stops by itself shortly after the window, even if this script is killed.
end = time.monotonic() + $DURATION + 30
while time.monotonic() < end:
    t = time.monotonic()
    for _ in range(rate // 10):
        s = socket.socket()
        try:
            s.connect(('127.0.0.1', 9))
        except OSError:
            pass
        s.close()
    time.sleep(max(0, 0.1 - (time.monotonic() - t)))
" &
LOAD=$!
# shellcheck disable=SC2086
"$BIN" packet-check --netns "$NS" --duration "$DURATION" --format json -o "$OUT/report.json" ${SOAK_ARGS:-} \
    > "$OUT/stdout" 2> "$OUT/stderr" &
CHECK=$!
START=$(date +%s)
echo "seconds,rss_kib"
while kill -0 "$CHECK" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$CHECK/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(( $(date +%s) - START )),$rss"
    sleep "$STEP"
done
wait "$CHECK" && rc=0 || rc=$?
CHECK=
echo "# exit $rc; report: $OUT/report.json" >&2
python3 -c "
import json,sys
r=json.load(open('$OUT/report.json'))
print('#', json.dumps(r)[:400], file=sys.stderr)
" || cat "$OUT/stderr" >&2

#!/usr/bin/env bash
# Benchmark (not a test): packet-check under a reset flood, side by side with tcpdump.
#
# In a network namespace made here (and removed at exit), on loopback only:
#   1. a flood of bare ACKs to a closed port for SECONDS (default 5); the kernel answers each
#      with a reset (NO_SOCKET). FLOODERS processes (default 2) send in parallel.
#   2. `rstaudit packet-check` and `tcpdump -w /dev/null 'tcp[tcpflags] & tcp-rst != 0'` watch
#      the same run; each one's CPU time is measured with /usr/bin/time.
#   3. the same again with bulk TCP traffic and no resets: what the tool pays for other traffic.
# Reports resets seen by each against the kernel's count (Tcp.OutRsts delta).
#
# Usage (root): bench/packet-check-flood.sh [SECONDS]
# FLOODERS=N (default 2) flooding processes; RATE=R segments a second for each (default: as fast
# as they can, which depends on the machine and its load; set it to compare builds at one rate).
# VETH=1: the flood comes from a second namespace made here, over a veth pair (10.99.0.1 ->
# 10.99.0.2, addresses of these two namespaces only), so the resets leave through an interface
# and their peer is not local; by default it is loopback, where both ends are in the watched
# namespace and each reset also waits to see whether a local socket took it.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_FLOOD=${1:-5}
FLOODERS=${FLOODERS:-2}
NS="rsta-bench-$$"
PEER="rsta-bench-peer-$$"
OUT=$(mktemp -d)
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    ip netns del "$PEER" 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT

cargo build --release -q --bin rstaudit --example rstflood
BIN=${BIN:-target/release/rstaudit}
FLOOD=target/release/examples/rstflood

ip netns add "$NS"
ip -n "$NS" link set lo up
FLOOD_NS=$NS
FLOOD_ENV=()
TD_IF=lo
if [ "${VETH:-0}" = 1 ]; then
    ip netns add "$PEER"
    ip -n "$PEER" link set lo up
    ip link add rstb0 netns "$NS" type veth peer name rstb1 netns "$PEER"
    ip -n "$NS" addr add 10.99.0.2/24 dev rstb0
    ip -n "$PEER" addr add 10.99.0.1/24 dev rstb1
    ip -n "$NS" link set rstb0 up
    ip -n "$PEER" link set rstb1 up
    FLOOD_NS=$PEER
    FLOOD_ENV=(SRC=10.99.0.1 DST=10.99.0.2)
    TD_IF=rstb0
fi

outrsts() { ip netns exec "$NS" awk '/^Tcp:/ { if (h) print $15; h = 1 }' /proc/net/snmp; }

run_phase() {
    local name=$1; shift
    local window=$((SECONDS_FLOOD + 3))
    /usr/bin/time -f "%U %S" -o "$OUT/$name.rstaudit.time" \
        "$BIN" packet-check --netns "$NS" --duration "$window" --format json -o "$OUT/$name.json" \
        2>"$OUT/$name.rstaudit.err" &
    local rpid=$!
    # -Z root: tcpdump otherwise hands its output file to the tcpdump user, /dev/null included.
    /usr/bin/time -f "%U %S" -o "$OUT/$name.tcpdump.time" \
        ip netns exec "$NS" timeout -s INT "$window" \
        tcpdump -Z root -n -i "$TD_IF" -w /dev/null 'tcp[tcpflags] & tcp-rst != 0' 2>"$OUT/$name.tcpdump.err" &
    local tpid=$!
    # Let both start.
    until grep -q "watching TCP resets" "$OUT/$name.rstaudit.err" 2>/dev/null; do sleep 0.1; done
    sleep 0.5
    local before; before=$(outrsts)
    "$@"
    local after; after=$(outrsts)
    wait "$rpid" "$tpid" || true
    local seen; seen=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['resets'], r['capture']['drops'], r['tracing']['dropped'], r['tracing']['matching']['sent_without_event'])" "$OUT/$name.json")
    read -r r_seen r_drops t_dropped no_reason <<<"$seen"
    local td_seen; td_seen=$(grep -Eo '^[0-9]+ packets captured' "$OUT/$name.tcpdump.err" | awk '{print $1}')
    local td_drop; td_drop=$(grep -Eo '^[0-9]+ packets dropped by kernel' "$OUT/$name.tcpdump.err" | awk '{print $1}')
    printf '%s: kernel Tcp.OutRsts +%s\n' "$name" "$((after - before))"
    printf '  rstaudit: %s resets seen, %s dropped by the kernel, %s trace events dropped, %s without a reason; CPU user/sys %s s\n' \
        "$r_seen" "$r_drops" "$t_dropped" "$no_reason" "$(tail -n 1 "$OUT/$name.rstaudit.time")"
    printf '  tcpdump:  %s resets captured, %s dropped by the kernel; CPU user/sys %s s\n' \
        "${td_seen:-?}" "${td_drop:-?}" "$(tail -n 1 "$OUT/$name.tcpdump.time")"
}

flood() {
    local pids=()
    for i in $(seq 1 "$FLOODERS"); do
        ip netns exec "$FLOOD_NS" env "${FLOOD_ENV[@]}" "$FLOOD" rst "$SECONDS_FLOOD" $((9 + i)) &
        pids+=($!)
    done
    wait "${pids[@]}"
}

bulk() {
    ip netns exec "$NS" "$FLOOD" bulk "$SECONDS_FLOOD"
}

echo "kernel $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run_phase flood flood
run_phase bulk bulk

#!/usr/bin/env bash
# Fleet report benchmark: time `rstaudit report DIR` over N generated host audits.
#
#   bench/fleet.sh                      # 5,000 files, 5 rounds, every format
#   bench/fleet.sh -n 20000 -r 3        # another size
#   bench/fleet.sh -a my-audit.json     # start from a given audit instead of this host's
#
# Builds the release binary and two benchmark programs (bench/fleetgen.rs, bench/timeit.rs),
# takes a real audit of this host (`rstaudit audit --format json --fail-on never`; as root it
# sees sockets, owners and options, so findings name processes), generates N host files from
# it with bench/fleetgen.rs (findings dropped and exposures moved per host, time stamps over
# four days, 0.5 % broken files), reads them once so the page cache holds them (the controller
# has just written them), then runs `rstaudit report DIR --format F --fail-on never` REPS times
# per format under timeit (wall, user + sys CPU, max RSS). Prints a Markdown table to paste
# into docs/performance.md. Everything it writes is under a temporary directory, removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
N=5000 REPS=5 AUDIT=""
while getopts "n:r:a:" o; do
    case $o in
        n) N=$OPTARG ;;
        r) REPS=$OPTARG ;;
        a) AUDIT=$OPTARG ;;
        *) echo "usage: $0 [-n FILES] [-r REPS] [-a AUDIT.json]" >&2; exit 2 ;;
    esac
done

cd "$here"
cargo build --release --quiet --bin rstaudit --example fleetgen --example timeit
rst="$here/target/release/rstaudit"
gen="$here/target/release/examples/fleetgen"
timeit="$here/target/release/examples/timeit"

tmp=$(mktemp -d /tmp/rstaudit-fleet-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ -z "$AUDIT" ]; then
    AUDIT="$tmp/audit.json"
    "$rst" audit --format json --fail-on never -o "$AUDIT"
fi
"$gen" "$AUDIT" "$N" "$tmp/fleet"
size=$(du -sh "$tmp/fleet" | cut -f1)
findings=$(grep -o '"findings": [0-9]*' "$AUDIT" | tail -1 | grep -o '[0-9]*$' || true)
cat "$tmp"/fleet/*.json > /dev/null

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A rows
for fmt in table json html prometheus; do
    : > "$tmp/times.$fmt"
    for _ in $(seq "$REPS"); do
        "$timeit" "$tmp/t" "$rst" report "$tmp/fleet" --format "$fmt" --fail-on never
        cat "$tmp/t" >> "$tmp/times.$fmt"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
out_bytes() { "$rst" report "$tmp/fleet" --format "$1" --fail-on never | wc -c; }

median() { sort -g | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%s (%s-%s)", m, a[1], a[NR]}'; }
ms() { awk '{printf "%.0f\n", $1 * 1000}'; }

echo "Run: \`bench/fleet.sh -n $N -r $REPS\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$(git rev-parse --short HEAD)\`, release build."
echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory, kernel $(uname -r)."
echo "Load average before / after: $load_before / $load_after (the machine is shared)."
echo "Fleet: $N files ($size on disk) generated from an audit with $findings findings; files in the page cache."
echo
echo "| command | wall ms, median (min-max) | CPU ms (user + sys) | max RSS | output |"
echo "|---|---|---|---|---|"
for fmt in table json html prometheus; do
    wall=$(cut -d' ' -f1 "$tmp/times.$fmt" | ms | median)
    cpu=$(awk '{print $2 + $3}' "$tmp/times.$fmt" | ms | median)
    rss=$(cut -d' ' -f4 "$tmp/times.$fmt" | sort -n | tail -1)
    echo "| \`rstaudit report DIR --format $fmt\` | $wall | $cpu | $((rss / 1024)) MB | $(( $(out_bytes "$fmt") / 1024 )) KiB |"
done

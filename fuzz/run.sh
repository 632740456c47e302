#!/usr/bin/env bash
# Run fuzz targets one after another, JOBS at a time, each for SECONDS, with a scratch corpus
# (new inputs go to $SCRATCH/TARGET; the seeds in corpus/TARGET are only read). Prints one
# summary line per target: duration, executions, corpus size, crashes (artifacts/TARGET).
#   RUSTC_BOOTSTRAP=1 cargo fuzz build
#   fuzz/run.sh 600 2 [TARGET...]        (DIRECT=1 fuzz/run.sh ... runs the built binaries)
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
JOBS=${2:-2}
shift 2 || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && mapfile -t TARGETS < <(ls fuzz_targets | sed 's/\.rs$//')
SCRATCH=${SCRATCH:-/tmp/rstaudit-fuzz}
mkdir -p "$SCRATCH/logs"
run_one() {
    local t=$1
    mkdir -p "$SCRATCH/$t" "artifacts/$t"
    local start=$(date +%s)
    # DIRECT=1: run the binary `cargo fuzz build` made, without rebuilding (the tree may have
    # moved on since).
    local bin=target/x86_64-unknown-linux-gnu/release/$t
    local cmd=(env RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$SCRATCH/$t" "corpus/$t" --)
    [ -n "${DIRECT:-}" ] && cmd=("$bin" -artifact_prefix="artifacts/$t/" "$SCRATCH/$t" "corpus/$t")
    "${cmd[@]}" \
        -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 > "$SCRATCH/logs/$t.log" 2>&1
    local rc=$?
    local took=$(( $(date +%s) - start ))
    local execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$SCRATCH/logs/$t.log" | grep -o '[0-9]*$')
    local corpus=$(ls "$SCRATCH/$t" | wc -l)
    local crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    echo "$t rc=$rc seconds=$took execs=${execs:-?} corpus=$corpus artifacts=$crashes"
}
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

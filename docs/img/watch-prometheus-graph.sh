#!/usr/bin/env bash
# Regenerates docs/img/watch-prometheus-graph.png, the graph docs/watch.md shows: the test
# tests/it/watch/prometheus.rs runs `rstaudit watch`, a real Prometheus scraping it and a
# podman container, makes its own resets in a namespace and in the container, and loads
# Prometheus's graph of them in headless Chromium; RSTAUDIT_WATCH_GRAPH tells it where to
# keep the screenshot. Run as root from anywhere in the source tree, on a machine set up by
# ./test.sh (podman, runc, prometheus, chromium, busybox-static):
#
#     docs/img/watch-prometheus-graph.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$PWD/docs/img/watch-prometheus-graph.png"
# The socket helper is an example program: `cargo test --no-run` builds it.
cargo test --no-run
RSTAUDIT_WATCH_GRAPH="$out" cargo test --test it watch::prometheus::
echo "wrote $out"

#!/usr/bin/env bash
# The issue-15 groups (runs 25-33 in README.md): the tower floor layers, the core on the
# real clock, the peers' failure / open-reject / probe rows and the keyed registry, then
# `bench-report`'s tables and targets. About 5-6 minutes on 2 cores.
#
# usage: bash benches/issue15.sh OUTDIR   (writes OUTDIR/report.txt, the logs, and
#                                          criterion's data under OUTDIR/criterion)
set -euo pipefail
out=$(realpath -m "${1:?usage: bash benches/issue15.sh OUTDIR}")
mkdir -p "$out"
cd "$(dirname "$0")/.."
export CRITERION_HOME=$out/criterion
rm -rf "$CRITERION_HOME"
date -u > "$out/start"
git rev-parse --short HEAD > "$out/commit"
cargo bench -p cutout-benches --bench tower -- tower_floor > "$out/tower.log" 2>&1
cargo bench -p cutout-benches --bench core -- core_real_clock > "$out/core.log" 2>&1
cargo bench -p cutout-benches --bench peers -- \
  "peers_closed_fail_then_success|peers_half_open_probe|peers_open_reject" > "$out/peers.log" 2>&1
cargo bench -p cutout-benches --bench windows -- windows_single_thread/keyed/ > "$out/windows.log" 2>&1
cargo run --release -p cutout-benches --bin bench-report > "$out/report.txt" 2> "$out/report.err"
date -u > "$out/end"

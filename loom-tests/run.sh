#!/usr/bin/env bash
# Runs the loom models of the cutout core (loom-tests/tests/models.rs) and of cutout-keyed's
# striped user count (loom-tests/tests/keyed_node.rs).
#
# The core's atomics switch to loom under `--cfg cutout_loom` (a namespaced cfg, so tokio
# and other dependencies keep their normal builds). The build goes to its own target dir so
# it does not invalidate the normal one. LOOM_MAX_PREEMPTIONS defaults to 3; set it in the
# environment to override (CI may use 2 to save time).
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg cutout_loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-$PWD/target/loom}"

start=$(date +%s)
cargo test -p cutout-loom-tests --release --tests -j "${CARGO_BUILD_JOBS:-2}" -- --test-threads="${LOOM_TEST_THREADS:-2}" "$@"
end=$(date +%s)
echo "loom: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, $((end - start)) s wall (build included)"

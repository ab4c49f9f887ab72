#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): system setup, formatting,
# lints, then every test in the workspace. Budgets are set by environment so CI stays bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh research

export PROPTEST_CASES="${PROPTEST_CASES:-64}"
export RUST_BACKTRACE=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked

# The quick start's main job and the benchmark, end to end on the debug build: they check the
# image and the report's structure, never timing.
echo "== wpsnap demo (smoke)"
demo_dir="$(mktemp -d)"
cargo run --locked -q -p wpsnap --bin wpsnap -- demo --dir "$demo_dir" > "$demo_dir/summary.txt"
grep -q "image check: equals the reference copy" "$demo_dir/summary.txt"
cargo run --locked -q -p wpsnap --bin wpsnap -- verify "$demo_dir/demo.wps" > /dev/null
echo "== wpsnap bench --quick (smoke)"
cargo run --locked -q -p wpsnap --bin wpsnap -- bench --quick --dir "$demo_dir/bench" > /dev/null
rm -rf "$demo_dir"
# The real slow disk used by the research runs: up, a throttled write, down, nothing left.
echo "== scripts/slow-disk.sh (smoke)"
bash scripts/test-slow-disk.sh

# The research pipeline's ground-truth pieces on tiny sizes, twice, byte-identical.
echo "== scripts/research.sh --smoke"
bash scripts/research.sh --smoke

# Every throttle policy on the real backend, one tiny run per cell, on the bursty pv pipe and
# the throttled loop disk (the debug binary the demo step built).
echo "== scripts/real-policies.sh --smoke"
WPSNAP=./target/debug/wpsnap bash scripts/real-policies.sh --smoke

# loom: the real backend's thread handoffs, in their own target folder so the normal build
# cache survives the `--cfg loom` rebuild.
echo "== loom models"
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    cargo test --release --locked -p wpsnap-loom-tests --target-dir target/loom

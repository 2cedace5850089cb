#!/usr/bin/env bash
# Sets up and runs every test: formatting, clippy, unit, integration and conformance tests.
set -euo pipefail
# Root is needed (apt packages, namespaces, overlay mounts): a user re-runs this through sudo,
# keeping the PATH that finds the Rust toolchain.
if [[ $(id -u) -ne 0 ]]; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME env "HOME=$HOME" "$0" "$@"
fi
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: the sum over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"

#!/usr/bin/env bash
# Sets up and runs every test: formatting, clippy, unit, integration and conformance tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace

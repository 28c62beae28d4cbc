#!/usr/bin/env bash
# Sets up what the tests need on a fresh Debian 12 machine, then runs every test in the workspace.
# Set CARGO_TARGET_DIR to reuse a build; .ci/run does.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
weir_setup
cargo fmt --all --check || { echo "test.sh: run 'cargo fmt --all'" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -q -- -D warnings
cargo test --workspace --locked --no-fail-fast

#!/usr/bin/env bash
# Sets up what the tests need on a Debian 12 machine (system packages; Rust 1.95+ must be there,
# and the script says so if not), then runs every test in the workspace.
# Set CARGO_TARGET_DIR to reuse a build; .ci/run does.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
# nats-server (Debian's 2.9, JetStream with -js): the tests start their own on free ports.
weir_setup nats-server
weir_python_venv
# Linters and schemas for the offline checks of deploy/ (pipeline/tests/deploy.rs).
weir_deploy_tools
# Style and lints where the toolchain has them (rustup's rustfmt and clippy components).
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check || { echo "test.sh: run 'cargo fmt --all'" >&2; exit 1; }
else echo "test.sh: rustfmt is not installed; skipping the format check" >&2; fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -q -- -D warnings
  cargo clippy --workspace --all-targets --locked -q --features ort -- -D warnings
else echo "test.sh: clippy is not installed; skipping lints" >&2; fi
# Every binary first: the process-kind tests run the Rust Lambda handler (examples/lambda/rust),
# which `cargo test` does not build for another package's tests.
cargo build --workspace --locked --features ort --bins
# With onnxruntime compiled in (the conformance tests run both engines; ORT_DYLIB_PATH from setup).
cargo test --workspace --locked --no-fail-fast --features ort

#!/usr/bin/env bash
# Installs missing system packages (Rust 1.95+ must be there; it says so if not), builds Weir (release) and serves examples/weir.yaml on embedded defaults.
# Extra arguments go to `weir serve` (e.g. ./run.sh --http-listen 127.0.0.1:8081).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
weir_setup
weir_python_venv   # onnxruntime's library for the `ort` backend (ORT_DYLIB_PATH)
cargo build --release --workspace --locked --features ort
echo "Send work:  target/release/weir invoke thumbs fixtures/images/mountains_1920x1440.jpg --out /tmp/thumbs"
echo "       or:  curl --data-binary @photo.jpg 'http://127.0.0.1:8080/v1/functions/thumbs/invoke?return=first' -o small.jpg"
exec target/release/weir serve --config examples/weir.yaml "$@"

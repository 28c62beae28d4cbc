#!/usr/bin/env bash
# Issue 19's GPU check in one call on a lent machine (the `run` tool; there is no Rust toolchain
# there, so the binaries are built here and carried): the devices, key frames through NVDEC beside
# the same machine's CPU per video stream (`weir bench` + `weir bench compare`), and the keyframes
# tests on the GPU (same manifest, pictures within 40 dB of the CPU's).
#
#   WEIR=dist/weir KEYFRAMES_TEST=dist/keyframes-test OUT=$OUT benches/gpu_check.sh
#
# Where no GPU is there, the CUDA runs are refused at start with the reason, and the script says so.
set -uo pipefail
cd "$(dirname "$0")/.."
WEIR=${WEIR:-target/release/weir}
OUT=${OUT:-bench-gpu}
DURATION=${DURATION:-10s}
mkdir -p "$OUT"

echo "== weir devices"
"$WEIR" devices | tee "$OUT/devices.txt"

for video in h264_1080p30_scenecut.mp4 hevc_720p25_gop50.mp4; do
  for fn in frames keys; do
    for dev in cpu cuda; do
      dir="$OUT/${fn}-${dev}-${video%%.*}"
      echo "== $fn on $dev: $video"
      "$WEIR" bench --config "benches/gpu/keyframes-$dev.yaml" --function "$fn" \
        --input "fixtures/videos/$video" --concurrency 1,4 --warmup 2s --duration "$DURATION" \
        --out "$dir" >"$dir.log" 2>&1 || echo "   failed: $(tail -1 "$dir.log")"
      grep -E "NVDEC|CPU instead|could not open CUDA" "$dir.log" | head -2
    done
    a="$OUT/${fn}-cpu-${video%%.*}/results.json"
    b="$OUT/${fn}-cuda-${video%%.*}/results.json"
    if [ -f "$a" ] && [ -f "$b" ]; then
      "$WEIR" bench compare "$a" "$b" | tee "$OUT/${fn}-${video%%.*}-compare.md"
    fi
  done
done

if [ -n "${KEYFRAMES_TEST:-}" ]; then
  echo "== keyframes tests (the CUDA one decodes through NVDEC where the GPU is there)"
  "$KEYFRAMES_TEST" --test-threads 1 2>&1 | tail -15
fi

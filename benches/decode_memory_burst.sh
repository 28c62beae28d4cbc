#!/usr/bin/env bash
# Twelve 9999x9999 RGBA PNGs at once to `thumbs` and `labels`, against `weir serve` with
# decode_memory_budget set to $1 (e.g. 1GiB, 64GB): prints idle, peak and 30-s-later resident
# memory and how long the burst took. Needs .venv (Pillow) and a built weir ($WEIR, default the
# debug binary in $CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:?usage: benches/decode_memory_burst.sh BUDGET}
weir=${WEIR:-${CARGO_TARGET_DIR:-target}/debug/weir}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
.venv/bin/python - "$work/big.png" <<'PY'
import sys
from PIL import Image, ImageDraw
im = Image.new("RGBA", (9999, 9999), (30, 120, 200, 255))
d = ImageDraw.Draw(im)
for i in range(0, 9999, 500):
    d.ellipse([i, i, i + 2000, i + 1500], fill=(200, 50, 40, 180))
im.save(sys.argv[1], compress_level=9)
PY
cat > "$work/weir.yaml" <<YAML
decode_memory_budget: $budget
models: $PWD/examples/models
functions:
  - { name: thumbs, kind: thumbnail, params: { sizes: [256] },
      resources: { max_input: 8MB, timeout: 300s, workers: { max: 4 } } }
  - { name: labels, kind: classify, params: { model: efficientnet_lite0, top_k: 3 },
      resources: { max_input: 8MB, timeout: 300s, workers: { max: 4 } } }
YAML
"$weir" serve --config "$work/weir.yaml" --data-dir "$work/data" --http-listen 127.0.0.1:18080 \
  --s3-listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
pid=$!
sleep 3
rss() { awk -v f="$1:" '$1 == f { print int($2 / 1024) }' "/proc/$pid/status"; }
burst() {
  local pids=() f
  for i in $(seq 1 12); do
    f=thumbs; [ $((i % 2)) = 0 ] && f=labels
    curl -s -o /dev/null -w "%{http_code} " --data-binary @"$1" \
      "http://127.0.0.1:18080/v1/functions/$f/invoke" & pids+=($!)
  done
  wait "${pids[@]}"; echo
}
burst fixtures/images/rocket_640x427.jpg >/dev/null
sleep 3
idle=$(rss VmRSS)
start=$(date +%s.%N)
burst "$work/big.png"
took=$(echo "$(date +%s.%N) - $start" | bc)
peak=$(rss VmHWM)
sleep 30
echo "budget=$budget idle=${idle}MB peak=${peak}MB after30s=$(rss VmRSS)MB burst=${took}s"

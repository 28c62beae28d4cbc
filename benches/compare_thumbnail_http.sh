#!/usr/bin/env bash
# Weir over HTTP against libvips in process, alternated ROUNDS times (default 3) in one run, with
# the medians of the ratios (above 1: Weir is faster):
#   - one photo at a time: Weir's JSON reply at concurrency 1 (p50 ms) against one libvips
#     thumbnail_buffer call with two threads (VIPS_CONCURRENCY=2, median ms);
#   - every core busy: Weir with four HTTP clients in a closed loop (img/s) against libvips from
#     one Python thread per core, each with VIPS_CONCURRENCY=1 (img/s).
#   benches/compare_thumbnail_http.sh [PHOTO]   (needs a release build and a python with pyvips)
# Set PYTHON to a python with pyvips and pyvips-binary (default: .venv/bin/python).
# Set BENCH to another build of thumbnail-latency-bench (default: the release one).
set -euo pipefail
cd "$(dirname "$0")/.."
photo=${1:-mountains_1920x1440.jpg}
py=${PYTHON:-.venv/bin/python}
cores=$(nproc)
printf '# %s 256+1024 JPEG q80, %s cores, %s alternated rounds\n' "$photo" "$cores" "${ROUNDS:-3}"
printf '%-6s %10s %10s %8s   %10s %10s %8s\n' round "weir ms" "vips ms" ratio "weir img/s" "vips img/s" ratio
rows=""
for round in $(seq "${ROUNDS:-3}"); do
  weir=$("${BENCH:-${CARGO_TARGET_DIR:-target}/release/thumbnail-latency-bench}" --photo "$photo" --requests 60 --seconds 8)
  w1=$(echo "$weir" | awk '$1 == "json" {print $2}')
  wn=$(echo "$weir" | awk '/^saturated/ {print $3}')
  v1=$(VIPS_CONCURRENCY=2 "$py" benches/vips_thumbnail.py --photo "$photo" --iters 30 --threads "$cores" |
       awk '$2 == "256+1024" {print $3}')
  vn=$(VIPS_CONCURRENCY=1 "$py" benches/vips_thumbnail.py --photo "$photo" --iters 80 --threads "$cores" |
       awk '$2 == "256+1024" {print $4}')
  row=$(awk -v r="$round" -v w1="$w1" -v v1="$v1" -v wn="$wn" -v vn="$vn" \
        'BEGIN {printf "%-6s %10.1f %10.1f %7.2fx   %10.1f %10.1f %7.2fx", r, w1, v1, v1 / w1, wn, vn, wn / vn}')
  echo "$row"
  rows+="$row"$'\n'
done
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "median ratio, one at a time: $(echo -n "$rows" | awk '{print $4}' | tr -d x | median)x" \
     "  every core busy: $(echo -n "$rows" | awk '{print $7}' | tr -d x | median)x"

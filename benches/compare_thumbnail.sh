#!/usr/bin/env bash
# Weir's thumbnail function against libvips, one after the other in one run, with the ratios:
# one thread (ms per image), all cores (images per second; libvips from one Python thread per
# core, each with VIPS_CONCURRENCY=1), and the PSNR of the 256 px output against the reference.
#   benches/compare_thumbnail.sh [ITERS]      (needs a release build and a python with pyvips)
# Set PYTHON to a python with pyvips and pyvips-binary (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-15}
weir_out=$(target/release/thumbnail-bench --iters "$iters")
vips_out=$(VIPS_CONCURRENCY=1 "${PYTHON:-python3}" benches/vips_thumbnail.py --iters "$iters")
echo "$weir_out"; echo; echo "$vips_out"; echo
echo "# ratios: above 1 means Weir is faster (or, for PSNR, closer to the reference by that many dB)"
printf '%-40s %9s %12s %12s %12s\n' photo widths "1 thread" "all cores" "PSNR gain"
join -j1 <(echo "$weir_out" | awk 'NR>2 {print $1"@"$2, $3, $4, $5}' | sort) \
         <(echo "$vips_out" | awk 'NR>2 {print $1"@"$2, $3, $4, $5}' | sort) |
  awk '{split($1, k, "@"); printf "%-40s %9s %11.2fx %11.2fx %+11.2f\n", k[1], k[2], $5/$2, $3/$6, $4-$7}'

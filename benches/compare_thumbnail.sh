#!/usr/bin/env bash
# Weir's thumbnail function against libvips, one after the other in one run, with the ratios.
#   benches/compare_thumbnail.sh [ITERS]      (needs a release build and a venv with pyvips)
# Set PYTHON to a python with pyvips and pyvips-binary (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-15}
weir_out=$(target/release/thumbnail-bench --iters "$iters")
vips_out=$(VIPS_CONCURRENCY=1 "${PYTHON:-python3}" benches/vips_thumbnail.py --iters "$iters")
echo "$weir_out"; echo; echo "$vips_out"; echo
echo "# one thread, libvips ms / Weir ms (above 1: Weir is faster)"
join -j1 <(echo "$weir_out" | awk 'NR>2 {print $1"@"$2, $3}' | sort) \
         <(echo "$vips_out" | awk 'NR>2 {print $1"@"$2, $3}' | sort) |
  awk '{split($1, k, "@"); printf "%-40s %9s  weir %7.1f  vips %7.1f  ratio %.2f\n", k[1], k[2], $2, $3, $3/$2}'

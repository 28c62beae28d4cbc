#!/usr/bin/env bash
# Two `weir` builds side by side on one model over HTTP: each serves examples/weir.yaml in turn,
# `weir bench` (the NEW build's) measures it, ROUNDS alternations; prints each run's table rows.
#
#   OLD=/tmp/weir-old NEW=target/release/weir benches/compare_model_builds.sh
#       env: MODEL BATCH CONC DURATION ROUNDS
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${OLD:?the older weir binary}
NEW=${NEW:-target/release/weir}
MODEL=${MODEL:-efficientnet_lite0}
BATCH=${BATCH:-1,8}
CONC=${CONC:-1,8}
DURATION=${DURATION:-6s}
ROUNDS=${ROUNDS:-2}
. benches/serve.sh
for round in $(seq "$ROUNDS"); do
  for which in old new; do
    bin=$([ "$which" = old ] && echo "$OLD" || echo "$NEW")
    d=$(mktemp -d)
    serve_example "$bin" "$d"
    "$NEW" bench --server "$SERVE_BASE" --model "$MODEL" --batch "$BATCH" \
      --concurrency "$CONC" --warmup 2s --duration "$DURATION" --out "$d/out" >/dev/null 2>&1
    echo "== $which, round $round"
    grep "^| cpu" "$d/out/results.md" | cut -d'|' -f2-8
    kill "$SERVE_PID"
    wait "$SERVE_PID" 2>/dev/null || true
    rm -rf "$d"
  done
done

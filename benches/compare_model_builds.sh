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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for round in $(seq "$ROUNDS"); do
  for which in old new; do
    bin=$([ "$which" = old ] && echo "$OLD" || echo "$NEW")
    d=$(mktemp -d)
    port=$(free_port)
    "$bin" serve --config examples/weir.yaml --data-dir "$d/data" --http-listen "127.0.0.1:$port" \
      --s3-listen "127.0.0.1:$(free_port)" >"$d/log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
      python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz/ready')" 2>/dev/null && break
      sleep 0.2
    done
    "$NEW" bench --server "http://127.0.0.1:$port" --model "$MODEL" --batch "$BATCH" \
      --concurrency "$CONC" --warmup 2s --duration "$DURATION" --out "$d/out" >/dev/null 2>&1
    echo "== $which, round $round"
    grep "^| cpu" "$d/out/results.md" | cut -d'|' -f2-8
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$d"
  done
done

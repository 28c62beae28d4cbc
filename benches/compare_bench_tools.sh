#!/usr/bin/env bash
# `weir bench` beside an independent load generator (benches/oip_load.py: Python threads,
# http.client) on one `weir serve` and one grid, alternated ROUNDS times; prints each point's
# median throughput from both and their ratio. Issue 19's check: within 10%.
#
#   benches/compare_bench_tools.sh            # env: MODEL BATCH CONC SECONDS_ ROUNDS WEIR PY
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR=${WEIR:-target/release/weir}
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-efficientnet_lite0}
BATCH=${BATCH:-1,8}
CONC=${CONC:-1,8}
SECONDS_=${SECONDS_:-10}
ROUNDS=${ROUNDS:-2}

. benches/serve.sh
out=$(mktemp -d)
trap 'kill ${SERVE_PID:-} 2>/dev/null; wait ${SERVE_PID:-} 2>/dev/null; rm -rf "$out"' EXIT
serve_example "$WEIR" "$out"
base=$SERVE_BASE

for r in $(seq "$ROUNDS"); do
  "$WEIR" bench --server "$base" --model "$MODEL" --batch "$BATCH" --concurrency "$CONC" \
    --warmup 2s --duration "${SECONDS_}s" --out "$out/weir-$r" >/dev/null
  "$PY" benches/oip_load.py --url "$base" --model "$MODEL" --batch "$BATCH" \
    --concurrency "$CONC" --warmup 2 --seconds "$SECONDS_" >"$out/oip-$r.jsonl"
done

python3 - "$out" "$ROUNDS" <<'EOF'
import json, pathlib, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
weir, oip = {}, {}
for r in range(1, rounds + 1):
    for rec in json.loads((out / f"weir-{r}" / "results.json").read_text())["records"]:
        weir.setdefault((rec["batch"], rec["concurrency"]), []).append(rec["throughput"])
    for line in (out / f"oip-{r}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        oip.setdefault((rec["batch"], rec["concurrency"]), []).append(rec["throughput"])
print("| batch | concurrency | weir bench inputs/s | oip_load.py inputs/s | ratio |")
print("|---:|---:|---:|---:|---:|")
for k in sorted(weir):
    w, o = statistics.median(weir[k]), statistics.median(oip[k])
    print(f"| {k[0]} | {k[1]} | {w:.1f} | {o:.1f} | {w / o:.3f} |")
EOF

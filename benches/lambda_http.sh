#!/usr/bin/env bash
# An empty Python Lambda handler (benches/lambda/empty.py) through Weir's `process` kind and
# runtime API (awslambdaric, warm workers), beside the same handler behind a plain Python HTTP
# server, both driven by one client (benches/lambda/load.py), alternated ROUNDS times at each
# concurrency; prints invocations/s and p50/p99 for each and Weir's ratio.
#
#   benches/lambda_http.sh            # env: CONC SECONDS_ ROUNDS WEIR PY
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR=${WEIR:-target/release/weir}
PY=${PY:-.venv/bin/python}
CONC=${CONC:-1 4}
SECONDS_=${SECONDS_:-8}
ROUNDS=${ROUNDS:-2}

. benches/serve.sh
out=$(mktemp -d)
trap 'kill ${SERVE_PID:-} ${PLAIN_PID:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT
cat >"$out/weir.yaml" <<YAML
functions:
  - name: empty
    kind: process
    params: { command: [$PWD/$PY, -m, awslambdaric, empty.handler], workdir: $PWD/benches/lambda }
    triggers:
      - http: { path: /empty }
    resources: { workers: { min: 4, max: 4, idle_after: 1h }, timeout: 10s, queue: 64 }
YAML
serve_example "$WEIR" "$out" "$out/weir.yaml"
plain_port=$(free_port)
"$PY" benches/lambda/plain_server.py "$plain_port" &
PLAIN_PID=$!
sleep 1

for r in $(seq "$ROUNDS"); do
  for c in $CONC; do
    "$PY" benches/lambda/load.py "$SERVE_BASE/empty" "$c" "$SECONDS_" >>"$out/weir.jsonl"
    "$PY" benches/lambda/load.py "http://127.0.0.1:$plain_port/" "$c" "$SECONDS_" >>"$out/plain.jsonl"
  done
done

python3 - "$out" <<'PYEOF'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    by = {}
    for line in (out / name).read_text().splitlines():
        r = json.loads(line)
        assert r["errors"] == 0, r
        by.setdefault(r["concurrency"], []).append(r)
    return by
weir, plain = load("weir.jsonl"), load("plain.jsonl")
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("| concurrency | Weir inv/s | Weir p50 / p99 ms | plain server inv/s | plain p50 / p99 ms | Weir / plain inv/s |")
print("|---|---|---|---|---|---|")
for c in sorted(weir):
    w, p = weir[c], plain[c]
    print(f"| {c} | {med(w,'per_s'):.0f} | {med(w,'p50_ms'):.2f} / {med(w,'p99_ms'):.2f} | "
          f"{med(p,'per_s'):.0f} | {med(p,'p50_ms'):.2f} / {med(p,'p99_ms'):.2f} | "
          f"{med(w,'per_s') / med(p,'per_s'):.2f} |")
PYEOF

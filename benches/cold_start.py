"""Cold start beside warm latency (issue 17's benchmark): `labels` (classify, the 18 MB
efficientnet_lite0) and `thumbs` (256 + 1024 JPEG) with `workers: { min: 0, idle_after: 1s }`.

For each function, alternating five times in one run: ten warm calls (median), then a pause past
`idle_after` (the model is unloaded: `/v1/functions` says cold), then one call (the cold start).
Prints the medians and what a cold start adds, and the server's own `weir_cold_start_seconds`.

    python benches/cold_start.py [--photo mountains_1920x1440.jpg] [--rounds 5] [--weir BIN]
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from upload_latency import ROOT, start_weir, stop_weir  # noqa: E402

CONFIG = """
models: {models}
functions:
  - name: labels
    kind: classify
    params: {{ model: efficientnet_lite0, top_k: 5 }}
    resources: {{ workers: {{ min: 0, idle_after: 1s }}, timeout: 60s }}
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [256, 1024], format: jpeg, quality: 80 }}
    resources: {{ workers: {{ min: 0, idle_after: 1s }}, timeout: 60s }}
"""


def call(http: str, function: str, body: bytes) -> float:
    t0 = time.perf_counter()
    req = urllib.request.Request(f"{http}/v1/functions/{function}/invoke?return=first", data=body, method="POST")
    urllib.request.urlopen(req).read()
    return (time.perf_counter() - t0) * 1e3


def state(http: str, function: str) -> str:
    listed = json.load(urllib.request.urlopen(f"{http}/v1/functions"))
    f = next(f for f in listed["functions"] if f["name"] == function)
    return f.get("instances", {}).get("state", "-")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", default="mountains_1920x1440.jpg")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--weir", default=str(ROOT / "target/release/weir"))
    a = ap.parse_args()
    photo = (ROOT / "fixtures/images" / a.photo).read_bytes()
    data = tempfile.mkdtemp(prefix="weir-cold-")
    proc, http, _ = start_weir(a.weir, CONFIG.format(models=ROOT / "examples/models"), data, s3=False)
    try:
        print(f"# {a.photo}, {a.rounds} rounds, {os.cpu_count()} cores; ms")
        for function in ("labels", "thumbs"):
            warm, cold, states = [], [], []
            for _ in range(a.rounds):
                warm.append(statistics.median(call(http, function, photo) for _ in range(10)))
                time.sleep(2.0)
                states.append(state(http, function))
                cold.append(call(http, function, photo))
            w, c = statistics.median(warm), statistics.median(cold)
            print(f"{function:>7}: warm {w:.1f}, after idling {c:.1f}, a cold start adds {c - w:.1f}"
                  f" (state before the call: {', '.join(sorted(set(states)))})")
        text = urllib.request.urlopen(f"{http}/metrics").read().decode()
        for m in re.finditer(r'^weir_cold_start_seconds_count\{function="([^"]+)"\} (\S+)$', text, re.M):
            fn, n = m.group(1), float(m.group(2))
            total = re.search(rf'^weir_cold_start_seconds_sum\{{function="{fn}"\}} (\S+)$', text, re.M)
            mean = 1e3 * float(total.group(1)) / n if total and n else 0.0
            print(f"server: {fn} {n:.0f} cold starts, mean model load {mean:.1f} ms")
    finally:
        stop_weir(proc, data)


if __name__ == "__main__":
    main()

"""An independent load generator for `weir bench`'s own figures: Open Inference binary-tensor
requests of random FP32 data from Python threads (http.client, one keep-alive connection per
client), counted as perf_analyzer counts (requests answered inside a window that opens after a
warm-up). Written apart from `weir bench`, in another language and HTTP stack, so that agreement
between the two says the figures are the server's, not the tool's.

    python benches/oip_load.py --url http://127.0.0.1:8080 --model efficientnet_lite0 \
        --batch 1,8 --concurrency 1,8 [--warmup 2] [--seconds 10]

Prints one JSON object per point: {"batch", "concurrency", "throughput", "p50_ms"}.
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse
import urllib.request

import numpy as np


def body(meta, batch, seed):
    """The request header and the little-endian tensor bytes after it, for `batch` rows."""
    rng = np.random.default_rng(seed)
    specs, data = [], b""
    for i in meta["inputs"]:
        shape = [batch] + [int(d) for d in i["shape"][1:]]
        if i["datatype"] != "FP32":
            raise SystemExit(f"input {i['name']} is {i['datatype']}: this generator sends FP32 only")
        raw = rng.random(shape, dtype=np.float32).astype("<f4").tobytes()
        specs.append({"name": i["name"], "shape": shape, "datatype": "FP32",
                      "parameters": {"binary_data_size": len(raw)}})
        data += raw
    head = json.dumps({"inputs": specs, "parameters": {"binary_data_output": True}}).encode()
    return head + data, len(head)


def point(url, model, meta, batch, concurrency, warmup, seconds):
    u = urllib.parse.urlparse(url)
    bodies = [body(meta, batch, s) for s in range(4)]
    opens = time.monotonic() + warmup
    closes = opens + seconds
    done, lat, errors = [0] * concurrency, [[] for _ in range(concurrency)], []

    def client(k):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        n = k
        while time.monotonic() < closes:
            payload, head = bodies[n % len(bodies)]
            n += 1
            t = time.monotonic()
            conn.request("POST", f"/v2/models/{model}/infer", body=payload,
                         headers={"Inference-Header-Content-Length": str(head),
                                  "Content-Type": "application/octet-stream"})
            res = conn.getresponse()
            res.read()
            now = time.monotonic()
            if res.status != 200:
                errors.append(res.status)
                continue
            if opens <= now < closes:
                done[k] += 1
                lat[k].append((now - t) * 1e3)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, first status {errors[0]}")
    all_lat = sorted(x for l in lat for x in l)
    return {"batch": batch, "concurrency": concurrency,
            "throughput": sum(done) * batch / seconds,
            "p50_ms": statistics.median(all_lat) if all_lat else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", default="1")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    with urllib.request.urlopen(f"{a.url}/v2/models/{a.model}") as r:
        meta = json.load(r)
    for b in [int(x) for x in a.batch.split(",")]:
        for c in [int(x) for x in a.concurrency.split(",")]:
            print(json.dumps(point(a.url, a.model, meta, b, c, a.warmup, a.seconds)), flush=True)


if __name__ == "__main__":
    main()

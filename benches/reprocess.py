"""Reprocess jobs beside live uploads (issue 17's benchmark), on the embedded defaults.

Starts `target/release/weir serve` with the example's thumbnail function (256 + 1024, JPEG q80)
on bucket `uploads`, then, alternating three times in one run:
  live  - N photos uploaded through the built-in S3 endpoint (8 at a time), timed from the first
          PUT until the server has finished N events (`weir_events_done_total`);
  job   - the same N objects run again by a reprocess job (`POST /v1/jobs`, `force`), timed from
          the submission until the job is done (polled every 20 ms).
It prints objects/s of each and their ratio (median of the three). Then upload -> 256 px
thumbnail latency at a steady rate, without a job and while a job reprocesses every object
(p50/p99 of each).

    python benches/reprocess.py [--photo mountains_1920x1440.jpg] [--n 200] [--rate 5] [--seconds 10]
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from upload_latency import CONFIG, ROOT, start_weir, stop_weir  # noqa: E402


def done_events(http: str) -> float:
    text = urllib.request.urlopen(f"{http}/metrics").read().decode()
    m = re.search(r'^weir_events_done_total\{function="thumbs"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def job(http: str, body: dict) -> dict:
    req = urllib.request.Request(f"{http}/v1/jobs", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    return json.load(urllib.request.urlopen(req))


def job_state(http: str, job_id: str) -> dict:
    return json.load(urllib.request.urlopen(f"{http}/v1/jobs/{job_id}"))


def live_round(s3, http: str, photo: bytes, n: int, prefix: str) -> float:
    """Objects/s of `n` uploads until their events are done."""
    before = done_events(http)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="uploads", Key=f"{prefix}/{i}.jpg", Body=photo),
                      range(n)))
    while done_events(http) < before + n:
        time.sleep(0.02)
    return n / (time.perf_counter() - t0)


def job_round(http: str, n: int, prefix: str) -> float:
    """Objects/s of a forced job over the `n` objects under `prefix`."""
    t0 = time.perf_counter()
    j = job(http, {"function": "thumbs", "bucket": "uploads", "prefix": prefix + "/", "force": True})
    while (s := job_state(http, j["id"]))["state"] == "running":
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    assert s["state"] == "done" and s["counts"]["processed"] == n, s
    return n / elapsed


def latencies(s3, photo: bytes, rate: float, seconds: float, tag: str) -> tuple:
    """Upload -> 256 px thumbnail visible, p50 and p99 in ms, one upload every 1/rate s."""
    out, lock = [], threading.Lock()

    def one(i: int) -> None:
        key = f"{tag}/{i}.jpg"
        start = time.perf_counter()
        s3.put_object(Bucket="uploads", Key=key, Body=photo)
        while True:
            try:
                s3.head_object(Bucket="derived", Key=f"thumbs/{key}/256.jpg")
                break
            except s3.exceptions.ClientError:
                time.sleep(0.001)
        with lock:
            out.append(time.perf_counter() - start)

    n = int(rate * seconds)
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        t0, futures = time.perf_counter(), []
        for i in range(n):
            time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            futures.append(pool.submit(one, i))
        for f in futures:
            f.result()
    out.sort()
    return out[len(out) // 2] * 1e3, out[min(len(out) - 1, int(0.99 * len(out)))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", default="mountains_1920x1440.jpg")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--weir", default=str(ROOT / "target/release/weir"))
    a = ap.parse_args()
    photo = (ROOT / "fixtures/images" / a.photo).read_bytes()
    data = tempfile.mkdtemp(prefix="weir-reprocess-")
    proc, http, endpoint = start_weir(a.weir, CONFIG, data)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                      aws_secret_access_key="bench-secret", region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, max_pool_connections=64))
    try:
        print(f"# {a.photo}, {a.n} objects a round, sizes 256 + 1024, {os.cpu_count()} cores")
        live_round(s3, http, photo, 20, "warmup")
        ratios = []
        for r in range(3):
            live = live_round(s3, http, photo, a.n, f"round{r}")
            again = job_round(http, a.n, f"round{r}")
            ratios.append(again / live)
            print(f"round {r}: live uploads {live:.1f} objects/s, reprocess job {again:.1f} objects/s,"
                  f" ratio {again / live:.2f}")
        print(f"reprocess / live, median of three: {statistics.median(ratios):.2f}")
        alone = latencies(s3, photo, a.rate, a.seconds, "alone")
        j = job(http, {"function": "thumbs", "bucket": "uploads", "prefix": "round", "force": True})
        during = latencies(s3, photo, a.rate, a.seconds, "during")
        state = job_state(http, j["id"])
        print(f"live upload -> 256 px at {a.rate:g}/s: p50 {alone[0]:.1f} ms, p99 {alone[1]:.1f} ms alone;"
              f" p50 {during[0]:.1f} ms, p99 {during[1]:.1f} ms during a job"
              f" (job {state['state']}, {state['counts']['processed']} processed by the end)")
    finally:
        stop_weir(proc, data)


if __name__ == "__main__":
    main()

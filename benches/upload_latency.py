"""Upload -> thumbnail-visible latency through the built-in S3 endpoint (storage issue benchmark).

Starts `target/release/weir serve` on a fresh data directory with the example's thumbnail function
(256 + 1024, JPEG q80), uploads one fixture photo at a steady rate with boto3, and for each upload
measures the time until its 256 px thumbnail can be read from bucket `derived`: as a client polling
HeadObject sees it (`--watch s3`), or by the store's own clock (`--watch store-clock`: the
thumbnail's LastModified, asked once well after, so the client leaves the cores to the server).
Prints p50/p99 per rate, then finds the highest rate the server sustains (the bus does not grow
during the run).

    python benches/upload_latency.py [--photo mountains_1920x1440.jpg] [--seconds 10] [--rates 20,50]
        [--watch s3|store-clock] [--weir BIN]
"""

import argparse
import concurrent.futures
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

ROOT = pathlib.Path(__file__).resolve().parent.parent
# How often a waiting upload looks for its thumbnail (`--watch s3`): the latency resolution, and
# the client's load on the cores it shares with the server.
POLL = float(os.environ.get("POLL_S", "0.001"))
# `--watch store-clock`: the time is the store's, so the client looks late and seldom, and
# takes as little as it can of the cores the server needs meanwhile.
LOOK_AFTER = float(os.environ.get("LOOK_AFTER_S", "0.15"))
POLL_STORE = float(os.environ.get("POLL_STORE_S", "0.02"))
CONFIG = """
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, suffix: [.jpg, .jpeg, .png, .webp, .gif] }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { batch: { max_size: 1 }, queue: 1024, timeout: 60s }
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_weir(weir: str, config: str, data: str, s3: bool = True) -> tuple:
    """`weir serve` on `config` (text) with its data under `data`, on free ports: (process, HTTP
    base, S3 endpoint or None). The built-in endpoint's keys are bench / bench-secret."""
    cfg = pathlib.Path(data) / "weir.yaml"
    cfg.write_text(config)
    hp, sp = free_port(), free_port()
    s3_listen = f"127.0.0.1:{sp}" if s3 else "127.0.0.1:0"
    proc = subprocess.Popen(
        [weir, "serve", "--config", str(cfg), "--data-dir", f"{data}/data",
         "--http-listen", f"127.0.0.1:{hp}", "--s3-listen", s3_listen],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "WEIR_S3_ACCESS_KEY": "bench",
                                                                 "WEIR_S3_SECRET_KEY": "bench-secret"})
    proc.stdout.readline()
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return proc, f"http://127.0.0.1:{hp}", (f"http://127.0.0.1:{sp}" if s3 else None)


def stop_weir(proc, data: str, wait: float = 60) -> None:
    """Stop a `start_weir` server and remove its data: a run can leave gigabytes behind."""
    proc.terminate()
    proc.wait(timeout=wait)
    shutil.rmtree(data, ignore_errors=True)


def bus_depth(http: str) -> float:
    text = urllib.request.urlopen(f"{http}/metrics").read().decode()
    m = re.search(r"^weir_bus_depth (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def server_buckets(http: str) -> dict:
    """The server's own upload-to-output histogram (event recorded -> outputs written): count per `le`."""
    text = urllib.request.urlopen(f"{http}/metrics").read().decode()
    return {float(le): float(n) for le, n in
            re.findall(r'^weir_event_to_output_seconds_bucket\{[^}]*le="([^"+]+)"\} (\S+)$', text, re.M)}


def visible(s3, objects: pathlib.Path, watch: str, key: str) -> bool:
    """Whether `key` can be read from bucket `derived`, asked with HeadObject. (A `fs` mode looked
    at the file the endpoint served; the store names its blobs by id since issue 14, so there is
    no file per key to look at.)"""
    try:
        s3.head_object(Bucket="derived", Key=key)
        return True
    except s3.exceptions.ClientError:
        return False


def made_at(s3, key: str):
    """When the store made `key` visible in bucket `derived`, by its own clock (ListObjectsV2's
    LastModified, in milliseconds), or None while it is not there."""
    listed = s3.list_objects_v2(Bucket="derived", Prefix=key, MaxKeys=1).get("Contents") or []
    return listed[0]["LastModified"].timestamp() if listed and listed[0]["Key"] == key else None


def run_rate(s3, http: str, objects: pathlib.Path, watch: str, photo: bytes, rate: float, seconds: float,
             tag: str):
    n = int(rate * seconds)
    latencies, puts, lock = [], [], threading.Lock()

    def one(i: int, start: float) -> None:
        key = f"{tag}/{i}.jpg"
        wall = time.time() - (time.perf_counter() - start)
        s3.put_object(Bucket="uploads", Key=key, Body=photo)
        put = time.perf_counter() - start
        thumb = f"thumbs/{key}/256.jpg"
        if watch == "store-clock":
            time.sleep(LOOK_AFTER)
            while (at := made_at(s3, thumb)) is None:
                time.sleep(POLL_STORE)
            took = at - wall
        else:
            while not visible(s3, objects, watch, thumb):
                time.sleep(POLL)
            took = time.perf_counter() - start
        with lock:
            latencies.append(took)
            puts.append(put)

    before = server_buckets(http)
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        t0 = time.perf_counter()
        futures = []
        for i in range(n):
            due = t0 + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            futures.append(pool.submit(one, i, time.perf_counter()))
        depth_mid = bus_depth(http)
        for f in futures:
            f.result()
    after = server_buckets(http)
    within = {le: (after[le] - before.get(le, 0.0)) / max(1, n) for le in (0.025, 0.05, 0.1) if le in after}
    latencies.sort()
    puts.sort()
    p = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] * 1e3
    return p(latencies, 0.50), p(latencies, 0.99), depth_mid, p(puts, 0.50), within


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", default="mountains_1920x1440.jpg")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rates", default="20,50")
    ap.add_argument("--watch", choices=["s3", "store-clock"], default="s3",
                    help="how a thumbnail is seen: HeadObject on the endpoint every POLL_S (the "
                         "client's time when it answers), or the store's own time of the write "
                         "(ListObjectsV2's LastModified, ms), asked LOOK_AFTER_S after the PUT")
    ap.add_argument("--no-probe", action="store_true", help="skip the search for the highest sustained rate")
    ap.add_argument("--config", help="a weir.yaml to serve instead of the example's thumbnail function")
    ap.add_argument("--weir", default=str(ROOT / "target/release/weir"),
                    help="the weir binary to serve (another build, for a before/after run)")
    a = ap.parse_args()
    photo = (ROOT / "fixtures/images" / a.photo).read_bytes()
    data = tempfile.mkdtemp(prefix="weir-latency-")
    config = pathlib.Path(a.config).read_text() if a.config else CONFIG
    proc, http, endpoint = start_weir(a.weir, config, data)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                      aws_secret_access_key="bench-secret", region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, max_pool_connections=64))
    try:
        print(f"# upload -> 256 px thumbnail visible, {a.photo}, {os.cpu_count()} cores, {a.seconds:.0f} s per rate")
        if a.watch == "store-clock":
            print(f"# seen through: the store's clock, asked {LOOK_AFTER * 1e3:g} ms after the PUT")
        else:
            print(f"# seen through: HeadObject every {POLL * 1e3:g} ms")
        print(f"{'uploads/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'PUT p50 ms':>11} {'bus depth mid-run':>18}"
              f"   server-side event->output within 25/50/100 ms")
        objects = pathlib.Path(data) / "data" / "objects"
        run_rate(s3, http, objects, a.watch, photo, 10, 3, "warmup")  # threads, pages and caches warm
        for run, rate in enumerate(float(r) for r in a.rates.split(",")):
            p50, p99, depth, put, within = run_rate(s3, http, objects, a.watch, photo, rate, a.seconds, f"r{run}")
            shares = " / ".join(f"{100 * v:.1f}%" for v in within.values())
            print(f"{rate:>10g} {p50:>8.1f} {p99:>8.1f} {put:>11.1f} {depth:>18.0f}   {shares}")
        # The highest sustained rate: raise it until the run ends with a backlog.
        rate, best = 10.0, 0.0
        while rate <= 400 and not a.no_probe:
            p50, p99, depth, _, _ = run_rate(s3, http, objects, a.watch, photo, rate, 5, f"s{rate:g}")
            sustained = p99 < 1000 and depth <= rate * 0.5
            print(f"  probe {rate:>6g}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, bus depth mid-run {depth:.0f}"
                  f" -> {'keeps up' if sustained else 'falls behind'}")
            if not sustained:
                break
            best, rate = rate, rate * 1.5
        if not a.no_probe:
            print(f"highest sustained rate found: {best:g} uploads/s")
    finally:
        stop_weir(proc, data, wait=30)


if __name__ == "__main__":
    main()

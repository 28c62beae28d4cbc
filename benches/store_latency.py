"""Upload -> thumbnail latency with the local store beside the S3 store, in one run, and the bucket
poller's discovery rate (the storage seams issue's benchmark).

Three `weir serve` processes on this machine:
  local   Weir's local store behind its built-in S3 endpoint, the thumbnail function on `s3` events;
  remote  a Weir with no functions: its built-in endpoint is the S3 server the next one uses;
  s3      `store: { kind: s3 }` against `remote`, the same function, told of each upload by a
          MinIO-style notification on its webhook (what MinIO or AWS would send).
Uploads go at a steady rate, alternating between the two set-ups second by second so that both see
the same machine; each upload's latency runs from the start of its PutObject to the moment a
HeadObject first finds its 256 px thumbnail (looked for every 5 ms by one watcher thread).

Then the poller: `remote` gets N small objects, a fourth Weir polls that bucket (`poll`, 1 s) with
nothing new to do for each event but a dead letter; discovery is timed from the metrics.

    python benches/store_latency.py [--rate 20] [--seconds 20] [--objects 5000]
Uses $WEIR_BIN, else target/release/weir under $CARGO_TARGET_DIR or the repository.
"""

import argparse
import os
import pathlib
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import json

import boto3
from botocore.config import Config

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUNCTION = """
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, suffix: .jpg }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { batch: { max_size: 1 }, queue: 1024, timeout: 60s }
"""
POLLER = """
functions:
  - name: seen
    kind: thumbnail
    params: { sizes: [64] }
    triggers:
      - poll: { bucket: many, interval: 1s }
    output: { bucket: derived, key: "seen/{key}/{size}.jpg" }
    resources: { retries: { max: 0 } }
"""


def weir_bin() -> str:
    if os.environ.get("WEIR_BIN"):
        return os.environ["WEIR_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "weir")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Weir:
    def __init__(self, name: str, config: str, root: pathlib.Path):
        self.dir = root / name
        self.dir.mkdir()
        (self.dir / "weir.yaml").write_text(config)
        self.http, self.s3_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [weir_bin(), "serve", "--config", str(self.dir / "weir.yaml"), "--data-dir", str(self.dir / "data"),
             "--http-listen", f"127.0.0.1:{self.http}", "--s3-listen", f"127.0.0.1:{self.s3_port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "WEIR_S3_ACCESS_KEY": "bench", "WEIR_S3_SECRET_KEY": "bench-secret"})
        self.proc.stdout.readline()
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http}"

    def client(self):
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.s3_port}", aws_access_key_id="bench",
                            aws_secret_access_key="bench-secret", region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, max_pool_connections=64))

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(f"{self.base}/metrics").read().decode()
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def notify(self, key: str) -> None:
        record = {"eventVersion": "2.0", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
                  "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                  "s3": {"bucket": {"name": "uploads"}, "object": {"key": key}}}
        body = json.dumps({"Records": [record]}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{self.base}/v1/events/s3", data=body)).read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def store_section(remote: Weir) -> str:
    return (f'store: {{ kind: s3, endpoint: "http://127.0.0.1:{remote.s3_port}", region: us-east-1, '
            f'access_key: bench, secret_key: bench-secret }}\n')


class Watcher:
    """One thread finds outputs with HeadObject every 5 ms; records when each first appears."""

    def __init__(self):
        self.pending, self.seen, self.lock = {}, {}, threading.Lock()
        self.done = False
        threading.Thread(target=self.run, daemon=True).start()

    def want(self, client, key: str, start: float) -> None:
        with self.lock:
            self.pending[key] = (client, start)

    def run(self) -> None:
        while not self.done:
            with self.lock:
                items = list(self.pending.items())
            for key, (client, start) in items:
                try:
                    client.head_object(Bucket="derived", Key=key)
                except client.exceptions.ClientError:
                    continue
                with self.lock:
                    self.pending.pop(key, None)
                    self.seen[key] = time.perf_counter() - start
            time.sleep(0.005)


def latency_run(rate: float, seconds: float, photo: bytes, root: pathlib.Path) -> None:
    local = Weir("local", FUNCTION, root)
    remote = Weir("remote", "functions: []\n", root)
    s3 = Weir("s3", store_section(remote) + FUNCTION, root)
    lc, rc = local.client(), remote.client()
    for c in (lc, rc):
        for b in ("uploads", "derived"):
            try:
                c.create_bucket(Bucket=b)
            except c.exceptions.ClientError:
                pass
    watcher = Watcher()
    puts = {"local": [], "s3": []}
    threads = []

    def upload(setup: str, i: int, start: float) -> None:
        key = f"{setup}/{i:05}.jpg"
        if setup == "local":
            lc.put_object(Bucket="uploads", Key=key, Body=photo)
            watcher.want(lc, f"thumbs/{key}/256.jpg", start)
        else:
            rc.put_object(Bucket="uploads", Key=key, Body=photo)
            s3.notify(key)
            watcher.want(rc, f"thumbs/{key}/256.jpg", start)
        puts[setup].append(time.perf_counter() - start)

    try:
        t0, n = time.perf_counter(), int(rate * seconds)
        for i in range(n):
            time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            # A second each, in turn: both set-ups see the same machine.
            setup = "local" if int(i / rate) % 2 == 0 else "s3"
            t = threading.Thread(target=upload, args=(setup, i, time.perf_counter()))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        deadline = time.time() + 60
        while watcher.pending and time.time() < deadline:
            time.sleep(0.05)
        watcher.done = True
        p = lambda v, q: sorted(v)[min(len(v) - 1, int(q * len(v)))] * 1e3
        print(f"# upload -> 256 px thumbnail found, {rate:g} uploads/s for {seconds:g} s, "
              f"{os.cpu_count()} cores, binary {weir_bin()}")
        print(f"{'store':>8} {'uploads':>8} {'p50 ms':>8} {'p99 ms':>8} {'PUT(+notify) p50 ms':>20}")
        for setup in ("local", "s3"):
            lat = [v for k, v in watcher.seen.items() if k.startswith(f"thumbs/{setup}/")]
            print(f"{setup:>8} {len(lat):>8} {p(lat, 0.5):>8.1f} {p(lat, 0.99):>8.1f} {p(puts[setup], 0.5):>20.1f}")
        if watcher.pending:
            print(f"# {len(watcher.pending)} thumbnails never appeared")
    finally:
        for w in (s3, local, remote):
            w.stop()


def poller_run(objects: int, root: pathlib.Path) -> None:
    remote = Weir("remote-many", "functions: []\n", root)
    rc = remote.client()
    rc.create_bucket(Bucket="many")
    t = time.perf_counter()
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: rc.put_object(Bucket="many", Key=f"batch/{i:07}.bin", Body=b"x"), range(objects)))
    print(f"# poller: {objects} objects put in {time.perf_counter() - t:.1f} s")
    poller = Weir("poller", store_section(remote) + POLLER, root)
    try:
        t0 = time.perf_counter()
        while poller.metric("weir_poll_emitted_total") < objects:
            time.sleep(0.02)
        first = time.perf_counter() - t0
        listed = poller.metric("weir_poll_listed_total")
        # The next round lists everything again and finds nothing new: the listing alone. It is
        # timed from its first page to its last, as the counter shows them (sampled every 2 ms).
        while poller.metric("weir_poll_listed_total") <= listed:
            time.sleep(0.002)
        t1 = time.perf_counter()
        while poller.metric("weir_poll_listed_total") < listed + objects:
            time.sleep(0.002)
        again = time.perf_counter() - t1
        print(f"{'objects':>8} {'first round s':>14} {'emitted/s':>10} {'second round s':>15} {'listed/s':>9}")
        print(f"{objects:>8} {first:>14.2f} {objects / first:>10.0f} {again:>15.2f} {objects / again:>9.0f}")
        print("# the second round's first page is not timed (it is what starts the clock)")
    finally:
        poller.stop()
        remote.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", default="mountains_1920x1440.jpg")
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--objects", type=int, default=5000)
    a = ap.parse_args()
    photo = (ROOT / "fixtures/images" / a.photo).read_bytes()
    root = pathlib.Path(tempfile.mkdtemp(prefix="weir-store-bench-"))
    latency_run(a.rate, a.seconds, photo, root)
    poller_run(a.objects, root)


if __name__ == "__main__":
    main()

"""Closed-loop load on one URL: CONCURRENCY threads, each with its own keep-alive connection,
POST a small JSON event for SECONDS after a warm-up; prints one JSON line with invocations/s and
the p50/p99 latency in ms.

    python load.py URL CONCURRENCY SECONDS
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

url, concurrency, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
u = urllib.parse.urlsplit(url)
body = json.dumps({"n": 1}).encode()
headers = {"content-type": "application/json"}


def worker(stop_at, lat, errors):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    while time.perf_counter() < stop_at:
        t = time.perf_counter()
        c.request("POST", u.path, body, headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            errors.append(r.status)
        lat.append(time.perf_counter() - t)


def run(secs):
    lat, errors = [], []
    stop_at = time.perf_counter() + secs
    ts = [threading.Thread(target=worker, args=(stop_at, lat, errors)) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, errors, time.perf_counter() - start


run(1.0)  # warm-up: connections, workers, caches
lat, errors, took = run(seconds)
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
print(json.dumps({"url": url, "concurrency": concurrency, "calls": len(lat),
                  "errors": len(errors), "per_s": len(lat) / took,
                  "p50_ms": pick(0.50), "p99_ms": pick(0.99)}))

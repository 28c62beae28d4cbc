"""libvips side of the thumbnail benchmark: pyvips thumbnail_buffer (shrink-on-load), JPEG q80.

    VIPS_CONCURRENCY=1 python benches/vips_thumbnail.py [--iters N] [--min-width PX] [--photo NAME]

Same photos, widths and output format as `thumbnail-bench`; one thread (milliseconds per image,
median). For two widths libvips makes each from the upload, as a thumbnail service calls it.
"""

import argparse
import math
import concurrent.futures
import os
import pathlib
import statistics
import time

import pyvips

ROOT = pathlib.Path(__file__).resolve().parent.parent


def thumb(data: bytes, width: int) -> bytes:
    img = pyvips.Image.thumbnail_buffer(data, width, height=10_000_000, size="down")
    return img.jpegsave_buffer(Q=80)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--min-width", type=int, default=1280)
    ap.add_argument("--dir", default=str(ROOT / "fixtures/images"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--photo", help="only this photo of the folder")
    a = ap.parse_args()
    print(f"# libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)} thumbnail_buffer, JPEG q80, median of {a.iters}, {a.threads} threads")
    print(f"{'photo':<40} {'widths':>9} {'1 thread ms':>12} {'all cores img/s':>14} {'PSNR dB':>9}")
    pool = concurrent.futures.ThreadPoolExecutor(a.threads)
    for path in sorted(pathlib.Path(a.dir).iterdir()):
        if a.photo and path.name != a.photo:
            continue
        data = path.read_bytes()
        head = pyvips.Image.new_from_buffer(data, "")
        if max(head.width, head.height) < a.min_width:
            continue
        for label, widths in (("256", [256]), ("256+1024", [256, 1024])):
            for w in widths:
                thumb(data, w)  # warm-up
            times = []
            for _ in range(a.iters):
                t = time.perf_counter()
                for w in widths:
                    thumb(data, w)
                times.append(time.perf_counter() - t)
            n = a.iters * a.threads
            t = time.perf_counter()
            list(pool.map(lambda _: [thumb(data, w) for w in widths], range(n)))
            per_sec = n / (time.perf_counter() - t)
            db = psnr(thumb(data, 256), ROOT / "fixtures/reference" / f"{path.stem}_256.png")
            print(f"{path.name:<40} {label:>9} {statistics.median(times) * 1e3:>12.1f} {per_sec:>14.1f} {db:>9.2f}")


def psnr(jpeg: bytes, reference: pathlib.Path) -> float:
    """PSNR (dB) of a thumbnail against the full-resolution Pillow reference."""
    a = pyvips.Image.new_from_buffer(jpeg, "").cast("float")
    b = pyvips.Image.new_from_file(str(reference)).cast("float")
    mse = ((a - b) * (a - b)).avg()
    return 10 * math.log10(255 * 255 / max(mse, 1e-12))


if __name__ == "__main__":
    main()

"""libvips side of the thumbnail benchmark: pyvips thumbnail_buffer (shrink-on-load), JPEG q80.

    VIPS_CONCURRENCY=1 python benches/vips_thumbnail.py [--iters N] [--min-width PX]

Same photos, widths and output format as `thumbnail-bench`; one thread (milliseconds per image,
median). For two widths libvips makes each from the upload, as a thumbnail service calls it.
"""

import argparse
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
    a = ap.parse_args()
    print(f"# libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)} thumbnail_buffer, JPEG q80, median of {a.iters}")
    print(f"{'photo':<40} {'widths':>9} {'1 thread ms':>12}")
    for path in sorted(pathlib.Path(a.dir).iterdir()):
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
            print(f"{path.name:<40} {label:>9} {statistics.median(times) * 1e3:>12.1f}")


if __name__ == "__main__":
    main()

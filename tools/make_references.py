"""Make the reference thumbnails the tests compare against (PSNR floor).

Pillow, full-resolution decode, EXIF orientation applied, alpha flattened onto white, LANCZOS
resize to a width of 256 (never upscaled), saved losslessly as PNG. Run from the repository root:

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install pillow==12.*
    /tmp/refvenv/bin/python tools/make_references.py
"""

import pathlib

from PIL import Image, ImageOps

SRC = pathlib.Path("fixtures/images")
OUT = pathlib.Path("fixtures/reference")
WIDTH = 256


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for path in sorted(SRC.iterdir()):
        img = Image.open(path)
        img.seek(0)
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "P", "PA"):
            img = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img)
        img = img.convert("RGB")
        w, h = img.size
        tw = min(WIDTH, w)
        th = max(1, round(h * tw / w))
        img.resize((tw, th), Image.Resampling.LANCZOS).save(OUT / f"{path.stem}_{WIDTH}.png")
        print(f"{path.name}: {w}x{h} -> {tw}x{th}")


if __name__ == "__main__":
    main()

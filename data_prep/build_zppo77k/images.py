"""Image checks and the stored form of an image.

- ``probe``: format and size from the header only (PIL opens lazily), for the cheap first pass.
- ``process``: the bytes stored in the output, for the second pass (selected rows only):
  * an image already inside ``[min_pixels, max_pixels]`` in PNG or JPEG is stored as is (its original bytes);
    it is still checked to decode: a PNG's chunk checksums are verified, a JPEG is entropy-decoded in full at
    1/8 scale (catches truncated or corrupt data at a fraction of a full decode);
  * otherwise it is decoded and resized (aspect ratio kept, ``data_prep.vision.resized_hw``, bicubic) and
    re-encoded: JPEG sources as JPEG (quality ``jpeg_quality``, 95 by default: a lossy source stays lossy),
    everything else (PNG, GIF, WebP, BMP, TIFF, ...) as PNG (lossless: diagrams and text stay sharp);
  * pixel orientation is the stored one: EXIF orientation is not applied (the processor does not apply it
    either), and re-encoded images carry no EXIF.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from data_prep.vision import MAX_PIXELS, MIN_PIXELS, resized_hw

JPEG_FORMATS = ("JPEG", "MPO")  # MPO: multi-picture JPEG from phone cameras; its first frame is a JPEG


class ImageError(ValueError):
    """The image cannot be read or decoded."""


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class Processed:
    data: bytes
    width: int
    height: int
    format: str  # "PNG" | "JPEG"
    action: str  # "kept" | "downscaled" | "upscaled" | "reencoded"


def probe(data: bytes) -> Probe:
    """Format and (width, height) read from the header; raises ``ImageError`` when PIL cannot identify it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                fmt = img.format or "?"
    except Exception as exc:  # PIL raises many types for bad data (OSError, SyntaxError, ValueError, ...)
        raise ImageError(f"{type(exc).__name__}: {exc}") from exc
    if width <= 0 or height <= 0:
        raise ImageError(f"image has size {width}x{height}")
    return Probe(width=width, height=height, format=fmt)


def _check_decodes(data: bytes, fmt: str) -> None:
    with Image.open(io.BytesIO(data)) as img:
        if fmt == "PNG":
            img.verify()
        else:
            img.draft(img.mode, (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
            img.load()


def _for_png(img: Image.Image) -> Image.Image:
    if img.mode in ("RGB", "RGBA", "L", "LA"):
        return img
    if img.mode in ("P", "PA"):
        return img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGBA" if "A" in img.getbands() else "RGB")


def _for_jpeg(img: Image.Image) -> Image.Image:
    return img if img.mode in ("RGB", "L") else img.convert("RGB")


def process(data: bytes, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS, jpeg_quality: int = 95,
            png_compress_level: int = 6) -> Processed:
    """The stored form of one image (see the module docstring); raises ``ImageError`` if it does not decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _process(data, min_pixels, max_pixels, jpeg_quality, png_compress_level)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{type(exc).__name__}: {exc}") from exc


def _process(data: bytes, min_pixels: int, max_pixels: int, jpeg_quality: int, png_compress_level: int) -> Processed:
    with Image.open(io.BytesIO(data)) as img:
        fmt = img.format or "?"
        width, height = img.size
        new_h, new_w = resized_hw(height, width, min_pixels, max_pixels)
        is_jpeg = fmt in JPEG_FORMATS
        if (new_h, new_w) == (height, width) and (is_jpeg or fmt == "PNG"):
            _check_decodes(data, "JPEG" if is_jpeg else "PNG")
            return Processed(data=data, width=width, height=height, format="JPEG" if is_jpeg else "PNG",
                             action="kept")
        if is_jpeg and new_h * new_w < height * width:
            # Decode at a reduced DCT scale (never below the target size): far cheaper for large photos.
            img.draft(img.mode, (new_w, new_h))
        img.load()
        out = _for_jpeg(img) if is_jpeg else _for_png(img)
        shrinking = new_h * new_w < height * width
        if out.size != (new_w, new_h):  # (a JPEG draft may already have reached the target size)
            out = out.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0 if shrinking else None)
        if (new_h, new_w) == (height, width):
            action = "reencoded"
        else:
            action = "downscaled" if shrinking else "upscaled"
        buf = io.BytesIO()
        if is_jpeg:
            out.save(buf, format="JPEG", quality=jpeg_quality)
        else:
            out.save(buf, format="PNG", compress_level=png_compress_level)
        return Processed(data=buf.getvalue(), width=new_w, height=new_h, format="JPEG" if is_jpeg else "PNG",
                         action=action)

"""Open any image file as 8-bit RGB or grayscale, without destroying high-bit-depth data.

``PIL.Image.convert("RGB")`` clips a 16-bit grayscale image (modes ``I;16``, ``I;16B``,
``I``) to 0..255, which turns almost every pixel white. ``open_image`` scales those images
instead, like most tools' 16 → 8 bit conversion:

- 16-bit integers (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``: 16-bit PNG and TIFF) by the
  type's full range: ``round(v / 257)``, so 0 → 0 and 65535 → 255. It keeps the order of the
  values and does not depend on the image's content, so the same sensor value gives the same
  byte in every image (a per-image min/max stretch would not).
- 32-bit integers (``I``: what older Pillow made of 16-bit files, and 32-bit TIFF) as 16-bit
  data: clipped to 0..65535, then divided by 257.
- 32-bit floats (``F``): an image within [0, 1] by ``round(255 v)``; any other float image
  by its own min..max → 0..255 (floats have no full range to divide by).

Every other mode goes through Pillow's conversion, with two choices made explicit: an image
with transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent color) is composited
over white, as a viewer shows it, rather than its hidden color showing through; and the
palette, 1-bit, CMYK and YCbCr modes convert as Pillow converts them. 16-bit RGB(A) PNGs
already arrive as 8-bit ``RGB``/``RGBA`` (Pillow keeps each channel's high byte).

A file that is not an image, or is truncated or corrupt, raises :class:`ImageError` naming
the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import UserError

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
HIGH_BIT_DEPTH = (*SIXTEEN_BIT, "I", "F")
MODES = ("RGB", "L")


class ImageError(UserError):
    """An image file that cannot be read; the message names the file and the fix."""


def to_uint8(img: Image.Image) -> np.ndarray:
    """The 8-bit ``(H, W)`` array of a one-channel high-bit-depth image (rules: module doc)."""
    values = np.asarray(img)
    if img.mode in SIXTEEN_BIT or img.mode == "I":
        values = np.clip(values.astype(np.float64), 0, 65535) / 257.0
    elif img.mode == "F":
        values = values.astype(np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            values = values * 255.0
        else:
            values = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
    else:
        raise ValueError(f"mode {img.mode!r} is not a high-bit-depth mode {HIGH_BIT_DEPTH}")
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )


def convert_image(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """``img`` as an 8-bit ``mode`` image ("RGB" or "L"), by the rules of the module doc."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if img.mode in HIGH_BIT_DEPTH:
        img = Image.fromarray(to_uint8(img), "L")
    elif _has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img if img.mode == mode else img.convert(mode)


def open_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Read ``path`` fully and return it as an 8-bit ``mode`` ("RGB" or "L") image."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    try:
        with Image.open(path) as img:
            img.load()
            return convert_image(img, mode)
    except FileNotFoundError as e:
        raise ImageError(f"image {path} not found: {e.strerror}") from e
    except Exception as e:  # any decoder failure of this one file: name the file
        raise ImageError(
            f"corrupt or truncated image {path}: {type(e).__name__}: {e}; "
            "remove or replace the file and run again"
        ) from e

"""Pictures of digits -> MNIST-style inputs. The one place this conversion lives,
used by `prunelab predict IMAGE` and by the explorer's canvas and uploads.

MNIST digits were made by size-normalising each digit to fit a 20x20 box
(keeping its aspect ratio, anti-aliased) and placing it so its centre of mass
sits at pixel (14.0, 14.0) of a 28x28 field (test-set mean 13.99, 14.01: at
size/2, not at the geometric centre 13.5), white ink on black. Numpy and PIL
only, so the torch-free runtime can use it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from prunelab.errors import UserError

MAX_PIXELS = 4096 * 4096  # refuse decompression bombs before decoding
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _check_size(img: object, what: str) -> None:
    width, height = img.width, img.height  # type: ignore[attr-defined]
    if width * height > MAX_PIXELS:
        raise UserError(f"{what} is {width}x{height} pixels; use an image under 4096x4096")


def decode_image(data: bytes, what: str = "the upload") -> np.ndarray:
    """Bytes of a PNG/JPEG/GIF/BMP/WebP -> grayscale float32 (H, W) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UserError(f"{what} is empty; use a PNG or JPEG image of a digit")
    try:
        img = Image.open(io.BytesIO(data))
        _check_size(img, what)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UserError(f"cannot read {what} as an image; use a PNG or JPEG of a digit") from None
    return grayscale(img)


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> grayscale float32 (H, W) in [0, 1]; UserError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    return decode_image(data, what=str(path.name))


def grayscale(img: object) -> np.ndarray:
    """PIL image -> float32 (H, W) luminance in [0, 1]; transparent pixels become the
    paper colour (the one contrasting with the opaque ink, as on a drawing canvas)."""
    mode = img.mode  # type: ignore[attr-defined]
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):  # type: ignore[attr-defined]
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0  # type: ignore[attr-defined]
        alpha = rgba[..., 3]
        lum = rgba[..., :3] @ _LUMA
        opaque = alpha > 0.5
        ink_level = float(lum[opaque].mean()) if opaque.any() else 0.0
        paper = 1.0 if ink_level < 0.5 else 0.0
        return (lum * alpha + paper * (1.0 - alpha)).astype(np.float32)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0  # type: ignore[attr-defined]


def mnist_style(gray: np.ndarray, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Grayscale (H, W) in [0, 1] -> float32 (h, w) in [0, 1] like an MNIST digit.

    Steps: invert when the background (median of the border) is light; shift
    the background to 0 and stretch the strongest ink to 1; crop to the ink
    (pixels above 0.1); fit the longer side into 20/28 of the frame; place
    the centre of mass at (h/2, w/2).
    """
    from PIL import Image

    h_out, w_out = size
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    light = background > 0.5  # dark ink on light paper: invert to MNIST's light-on-black
    ink = (1.0 - gray) if light else gray
    ink = np.clip(ink - ((1.0 - background) if light else background), 0.0, None)
    peak = float(ink.max()) if ink.size else 0.0
    if peak < 0.1:
        raise UserError("the image looks blank (no ink found); draw a digit with dark ink on a light "
                        "background or light ink on a dark one")
    ink = ink / peak
    rows = np.flatnonzero(ink.max(axis=1) > 0.1)
    cols = np.flatnonzero(ink.max(axis=0) > 0.1)
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, round(min(h_out, w_out) * 20 / 28))
    scale = box / max(crop.shape)
    new_h = max(1, min(box, round(crop.shape[0] * scale)))
    new_w = max(1, min(box, round(crop.shape[1] * scale)))
    img = Image.fromarray((crop * 255).astype(np.uint8)).resize((new_w, new_h), Image.Resampling.LANCZOS)
    small = np.asarray(img, dtype=np.float32) / 255.0
    total = float(small.sum())
    yy, xx = np.indices(small.shape)
    cy, cx = ((float((yy * small).sum() / total), float((xx * small).sum() / total)) if total > 0
              else ((new_h - 1) / 2, (new_w - 1) / 2))
    top = min(max(int(round(h_out / 2 - cy)), 0), h_out - new_h)
    left = min(max(int(round(w_out / 2 - cx)), 0), w_out - new_w)
    out = np.zeros((h_out, w_out), np.float32)
    out[top:top + new_h, left:left + new_w] = small
    m = float(out.max())
    return out / m if m > 0 else out

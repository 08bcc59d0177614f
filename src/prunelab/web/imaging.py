"""Turn a drawn or uploaded picture into an MNIST-style 28x28 digit, and back to PNG.

MNIST digits were made by size-normalising each digit to fit a 20x20 box
(keeping its aspect ratio, anti-aliased) and centring its centre of mass in
a 28x28 field, white ink on black. `to_mnist` repeats those steps so a digit
drawn on the page looks to a model like the digits it was trained on.

Why not `prunelab.sparse.inputs.mnist_style`: it centres the mass at pixel
13.5, while real MNIST digits have theirs at 14.0 (mean over the test set:
13.99, 14.00), so about half of the digits land one pixel off; the web test
checks the round trip against real MNIST digits.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from prunelab.errors import UserError

MAX_PIXELS = 4096 * 4096  # refuse decompression bombs before decoding
FIELD = 28  # output side, pixels
BOX = 20  # the digit's longest side after size normalisation, pixels


def decode_image(data: bytes) -> Image.Image:
    """Bytes of a PNG/JPEG/GIF/BMP/WebP -> a loaded PIL image; UserError when it is not one."""
    if not data:
        raise UserError("the upload is empty; choose a PNG or JPEG image of a digit")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise UserError(f"the image is {img.width}x{img.height} pixels; use one under 4096x4096")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError("the upload is not an image prunelab can read; use a PNG or JPEG of a digit") from None
    return img


def _grayscale(img: Image.Image) -> np.ndarray:
    """float32 (H, W) luminance in [0, 255]; transparent pixels become the paper colour."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        opaque = alpha > 0.5
        # paper is the colour that contrasts with the ink (the opaque pixels)
        ink_level = float(lum[opaque].mean()) if opaque.any() else 0.0
        paper = 255.0 if ink_level < 128 else 0.0
        return lum * alpha + paper * (1.0 - alpha)
    return np.asarray(img.convert("L"), dtype=np.float32)


def to_mnist(img: Image.Image) -> np.ndarray:
    """Any picture of one digit -> uint8 (28, 28), white ink on black, centred like MNIST.

    Steps: grayscale; invert when the background (median of the border
    pixels) is light; stretch so background = 0 and the darkest ink = 255;
    crop to the ink's bounding box; fit the longer side to 20 pixels; place
    it so its centre of mass sits at the centre of the 28x28 field.
    """
    a = _grayscale(img)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if np.median(border) > 127:
        a = 255.0 - a
        border = 255.0 - border
    background = float(np.median(border))
    a = np.clip(a - background, 0, None)
    peak = float(a.max())
    if peak < 30:  # nothing stands out from the background
        raise UserError("the image looks blank; draw or upload a digit with visible strokes")
    a = a * (255.0 / peak)
    a[a < 0.1 * 255] = 0.0  # faint noise would stretch the bounding box
    rows = np.flatnonzero(a.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0))
    crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS)
    patch = np.asarray(small, dtype=np.float32)
    total = patch.sum()
    ys, xs = np.indices(patch.shape)
    cy = float((ys * patch).sum() / total) if total else nh / 2
    cx = float((xs * patch).sum() / total) if total else nw / 2
    top = int(np.clip(round(FIELD / 2 - cy), 0, FIELD - nh))
    left = int(np.clip(round(FIELD / 2 - cx), 0, FIELD - nw))
    out = np.zeros((FIELD, FIELD), dtype=np.float32)
    out[top : top + nh, left : left + nw] = patch
    return np.clip(out, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """uint8 (H, W) -> PNG bytes, optionally enlarged `scale` times with nearest neighbour."""
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()

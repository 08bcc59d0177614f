"""Inputs for `prunelab predict`: an .npz array or one image file.

    x = load_input("digits.npz", (1, 28, 28))   # float32 (n, 1, 28, 28) in [0, 1]
    x = load_input("seven.png", (1, 28, 28))    # (1, 1, 28, 28), MNIST-style

Images are converted the way MNIST digits were made: grayscale, inverted
when the background is light (MNIST has white ink on black), cropped to the
ink, scaled to fit a 20x20 box (for 28x28; the same 5/7 ratio otherwise),
and placed so that the centre of mass sits where MNIST's does (pixel 14.0
of 28, i.e. size/2).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from prunelab.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 50_000_000


def load_input(path: str | Path, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """(x float32 (n, *input_shape) in [0, 1], labels y or None) from an .npz/.npy or an image."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"input file {p} does not exist")
    if p.is_dir():
        raise UserError(f"input {p} is a folder; give an .npz file or an image")
    suffix = p.suffix.lower()
    if suffix in (".npz", ".npy"):
        return _load_array(p, input_shape)
    if suffix in IMAGE_SUFFIXES:
        return image_to_input(p, input_shape)[None], None
    raise UserError(f"cannot read {p.name}: use an .npz holding an array X, or an image "
                    f"({', '.join(IMAGE_SUFFIXES)})")


def _load_array(p: Path, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    y = None
    try:
        if p.suffix.lower() == ".npy":
            x = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as f:
                if "X" not in f.files:
                    raise UserError(f"{p.name} has arrays {sorted(f.files)}; put the images in an array "
                                    "named X, e.g. np.savez(path, X=images)")
                x = f["X"]
                y = f["y"] if "y" in f.files else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot read {p.name} as a numpy file ({exc}); save it with np.savez(path, X=images)"
                        ) from None
    return check_array(x, input_shape), _check_labels(y, x)


def check_array(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """uint8 0-255 or float 0-1 images shaped (n, *input_shape), (n, H, W) or (n, prod) -> float32."""
    shape = tuple(input_shape)
    size = int(np.prod(shape))
    if x.dtype == np.uint8:
        xf = x.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(x.dtype, np.floating):
        xf = x.astype(np.float32)
        if xf.size and not np.all(np.isfinite(xf)):
            raise UserError("X holds NaN or infinite values")
        if xf.size and (float(xf.min()) < 0.0 or float(xf.max()) > 1.0):
            raise UserError(f"float X must be in [0, 1] (got {float(xf.min()):g}..{float(xf.max()):g}); "
                            "pass uint8 for 0-255 pixel values")
    elif np.issubdtype(x.dtype, np.integer) and x.size and 0 <= int(x.min()) and int(x.max()) <= 255:
        xf = x.astype(np.float32) / np.float32(255.0)
    else:
        raise UserError(f"X must hold uint8 0-255 or float 0-1 pixels, got dtype {x.dtype}")
    if xf.ndim >= 2 and xf.shape[0] > 0 and int(np.prod(xf.shape[1:])) == size:
        return xf.reshape(xf.shape[0], *shape)
    hw = f"(n, {shape[1]}, {shape[2]}), " if len(shape) == 3 and shape[0] == 1 else ""
    raise UserError(f"X has shape {tuple(x.shape)}; this model takes (n, {', '.join(map(str, shape))}), "
                    f"{hw}or (n, {size}) with n >= 1")


def _check_labels(y: np.ndarray | None, x: np.ndarray) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"y must be integer labels, one per image ({len(x)}), got shape {y.shape} {y.dtype}")
    return y.astype(np.int64)


def image_to_input(path: str | Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """One image file -> float32 `input_shape` in [0, 1], MNIST-style."""
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise UserError(f"image input needs a one-channel image model, this one takes {tuple(input_shape)}; "
                        "pass an .npz with an array X instead")
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P", "PA"):
                # transparent background (a drawing canvas): composite over white
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                gray = np.asarray(Image.alpha_composite(white, rgba).convert("L"), dtype=np.float32) / 255.0
            else:
                gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read {Path(path).name} as an image ({exc}); use a PNG or JPEG") from None
    return mnist_style(gray, input_shape[1:])


def mnist_style(gray: np.ndarray, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Grayscale (H, W) in [0, 1] -> (1, h, w) like an MNIST digit: light ink on
    black, ink bounding box scaled to fit 20/28 of the frame, centred by mass."""
    from PIL import Image

    h_out, w_out = size
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    light = background > 0.5  # dark ink on light paper: invert to MNIST's light-on-black
    ink = (1.0 - gray) if light else gray
    ink = np.clip(ink - ((1.0 - background) if light else background), 0.0, None)  # background -> 0
    peak = float(ink.max()) if ink.size else 0.0
    if peak < 0.1:
        raise UserError("the image looks blank (no ink found); draw a digit with dark ink on a light "
                        "background or light ink on a dark one")
    ink /= peak
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
    cy, cx = (float((yy * small).sum() / total), float((xx * small).sum() / total)) if total > 0 else (
        (new_h - 1) / 2, (new_w - 1) / 2)
    # MNIST's centre of mass sits at (14.0, 14.0) of the 28x28 field (test-set mean 13.99,
    # 14.01), i.e. at size/2, not at the geometric centre 13.5
    top = int(round(h_out / 2 - cy))
    left = int(round(w_out / 2 - cx))
    top = min(max(top, 0), h_out - new_h)
    left = min(max(left, 0), w_out - new_w)
    out = np.zeros((h_out, w_out), np.float32)
    out[top:top + new_h, left:left + new_w] = small
    m = float(out.max())
    return (out / m if m > 0 else out)[None]

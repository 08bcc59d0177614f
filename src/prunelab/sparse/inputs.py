"""Inputs for `prunelab predict`: an .npz array or one image file.

    x = load_input("digits.npz", (1, 28, 28))   # float32 (n, 1, 28, 28) in [0, 1]
    x = load_input("seven.png", (1, 28, 28))    # (1, 1, 28, 28), MNIST-style

Images are converted the way MNIST digits were made, by
`prunelab.data.images.mnist_style`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from prunelab.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
    from prunelab.data.images import mnist_style, read_image

    if len(input_shape) != 3 or input_shape[0] != 1:
        raise UserError(f"image input needs a one-channel image model, this one takes {tuple(input_shape)}; "
                        "pass an .npz with an array X instead")
    return mnist_style(read_image(path), (input_shape[1], input_shape[2]))[None]

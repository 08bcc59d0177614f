"""An image data set in one `.npz`: `--dataset npz:FILE`.

    np.savez("digits.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    ds = load_npz_dataset("digits.npz")     # Dataset, like the four IDX files

Images are uint8 0-255, shaped (N, H, W) or (N, C, H, W); labels integers
0..classes-1, shaped (N,). Arrays are read with `allow_pickle=False`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from prunelab.data.datasets import Dataset
from prunelab.errors import UserError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_HOW = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) (uint8 images, int labels)"


def load_npz_dataset(path: str | Path) -> Dataset:
    """Read the four arrays of an `.npz` data set; refuse what does not fit, saying how to fix it."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"npz data set not found: {p} (use --dataset npz:FILE with an .npz file)")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [a for a in ARRAYS if a not in f.files]
            if missing:
                raise UserError(f"{p.name} lacks arrays {missing} (has {sorted(f.files)}); {_HOW}")
            arrays = {a: f[a] for a in ARRAYS}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot read {p.name} as an .npz data set ({exc}); {_HOW}") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise UserError(f"{p.name}: x_{split} must be uint8 images (N, H, W) or (N, C, H, W), got {x.dtype} "
                            f"{x.shape}; convert float images in [0, 1] with np.round(x * 255).astype(np.uint8)")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{p.name}: y_{split} must hold one integer label per image ({len(x)}), "
                            f"got {y.dtype} {y.shape}")
        if len(y) and y.min() < 0:
            raise UserError(f"{p.name}: y_{split} has negative labels; use 0..classes-1")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise UserError(f"{p.name}: train images are {arrays['x_train'].shape[1:]}, test images "
                        f"{arrays['x_test'].shape[1:]}; they must have the same shape")
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(name=f"npz:{p}", x_train=arrays["x_train"], y_train=y_train, x_test=arrays["x_test"],
                   y_test=y_test, classes=classes)

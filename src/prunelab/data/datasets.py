"""Datasets by name (`mnist`, `idx:DIR`), stratified subsets and validation splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunelab.data.idx import read_idx
from prunelab.errors import UserError


@dataclass
class Dataset:
    """Images as uint8 (N, H, W) or (N, C, H, W), labels as int64 (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    classes: int = 10
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as a network sees it: (C, H, W)."""
        shape = self.x_train.shape[1:]
        return (1, *shape) if len(shape) == 2 else tuple(shape)

    def fingerprint(self) -> str:
        """Short sha256 over the arrays: identifies the exact data a model saw."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(np.ascontiguousarray(arr).tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "train": int(len(self.y_train)),
            "val": int(len(self.y_val)) if self.y_val is not None else 0,
            "test": int(len(self.y_test)),
            "classes": self.classes,
            "input_shape": list(self.input_shape),
            "fingerprint": self.fingerprint(),
        }

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape})"
        )


_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise UserError(f"missing IDX file {folder / stem}[.gz]; expected the four standard MNIST-format files")


def load_idx_folder(folder: str | Path) -> Dataset:
    """Read the four standard IDX files from `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"IDX folder not found: {folder} (use --dataset idx:DIR with a folder)")
    arrays = {key: read_idx(_find_idx(folder, stem)) for key, stem in _IDX_NAMES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (3, 4) or y.ndim != 1:
            raise UserError(f"{folder}: {split} images must be (N, H, W) and labels (N,), got {x.shape}, {y.shape}")
        if len(x) != len(y):
            raise UserError(
                f"{_find_idx(folder, _IDX_NAMES['y_' + split])}: {len(y)} labels for {len(x)} images"
            )
    y_train = arrays["y_train"].astype(np.int64)
    y_test = arrays["y_test"].astype(np.int64)
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(
        name=f"idx:{folder}",
        x_train=arrays["x_train"].astype(np.uint8),
        y_train=y_train,
        x_test=arrays["x_test"].astype(np.uint8),
        y_test=y_test,
        classes=classes,
    )


def load_dataset(name: str = "mnist") -> Dataset:
    """`mnist` (embedded), `idx:DIR` (standard IDX files in DIR) or `npz:FILE` (data/arrays.py)."""
    if name == "mnist":
        from prunelab.data.mnist import load_mnist

        arrays = load_mnist()
        return Dataset(name="mnist", x_train=arrays["x_train"], y_train=arrays["y_train"],
                       x_test=arrays["x_test"], y_test=arrays["y_test"])
    if name.startswith("idx:"):
        return load_idx_folder(name[4:])
    if name.startswith("npz:"):  # one .npz with x_train, y_train, x_test, y_test (data/arrays.py)
        from prunelab.data.arrays import load_npz_dataset

        return load_npz_dataset(name[4:])
    raise UserError(f"unknown dataset {name!r}; use 'mnist', 'idx:DIR' or 'npz:FILE'")


def confined_dataset(name: str, root: str | Path) -> str:
    """Check a dataset name given over the network: `mnist`, or `idx:DIR` with DIR
    inside `root` (relative names are taken from `root`). Returns the name to load.

    The CLI trusts its user's paths; the web API must not let a request read
    folders outside the data directory.
    """
    if name == "mnist":
        return name
    if not name.startswith("idx:") or not name[4:].strip():
        raise UserError(f"unknown dataset {name!r}; use 'mnist' or 'idx:NAME' for a folder in {root}")
    base = Path(root).resolve()
    folder = (base / name[4:]).resolve()
    if folder != base and base not in folder.parents:
        raise UserError(f"dataset folder {name[4:]!r} is outside the data directory {base}; "
                        "put IDX folders there and name them relative to it")
    return f"idx:{folder}"


def stratified_subset(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `n` samples whose class mix matches `y` (largest remainder)."""
    if n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n / len(y)
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), size=q, replace=False) for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picked))


# Share of the training data held out for validation by default: 5,000 of MNIST's 60,000.
# Every automatic choice (sensitivity budgets, recipe search) is made on it; the
# test split only reports.
DEFAULT_VAL_FRACTION = 1 / 12


def validation_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), stratified by class."""
    if not 0.0 < fraction < 1.0:
        raise UserError(f"validation fraction must be in (0, 1), got {fraction}")
    val = stratified_subset(y, max(1, round(len(y) * fraction)), seed=seed + 1)
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def limit_train(ds: Dataset, train_limit: int | None, val_fraction: float, seed: int) -> Dataset:
    """Apply --train-limit (stratified, seeded) and carve out a validation split."""
    x, y = ds.x_train, ds.y_train
    if train_limit is not None:
        if train_limit < ds.classes:
            raise UserError(f"--train-limit must be at least the number of classes ({ds.classes}), got {train_limit}")
        idx = stratified_subset(y, train_limit, seed)
        x, y = x[idx], y[idx]
    x_val = y_val = None
    if val_fraction > 0:
        tr, va = validation_split(y, val_fraction, seed)
        x_val, y_val = x[va], y[va]
        x, y = x[tr], y[tr]
    return Dataset(
        name=ds.name, x_train=x, y_train=y, x_test=ds.x_test, y_test=ds.y_test,
        x_val=x_val, y_val=y_val, classes=ds.classes, _fingerprint=ds.fingerprint(),
    )

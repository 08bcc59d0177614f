"""Input checks, task detection and strata (classes, or target quantiles for regression)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelab.errors import UserError

TASKS = ("auto", "classification", "regression", "none")


@dataclass
class Strata:
    """Stratum code per sample (int64 (n,)), a label per stratum, and which are classes."""

    codes: np.ndarray
    labels: list[str]
    task: str
    is_class: bool

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.labels))


def check_inputs(X: object, y: object = None, timestamps: object = None,
                 scores: object = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                                                 np.ndarray | None]:
    """Validate shapes and values; return X as a 2-D float array (a view when possible)."""
    try:
        X = np.asarray(X)
    except Exception as exc:  # ragged lists etc.
        raise UserError(f"X must be a 2-D numeric array: {exc}") from None
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    elif X.ndim > 2:
        X = X.reshape(len(X), -1)
    if X.ndim != 2 or X.shape[0] == 0:
        raise UserError(f"X is empty (shape {X.shape}); give at least one sample")
    if X.shape[1] == 0:
        raise UserError("X has no feature columns; give at least one")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise UserError(f"X must be numeric, got dtype {X.dtype}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float32)
    if not _all_finite(X):
        raise UserError("X contains NaN or inf; drop or impute those rows before selecting")
    n = len(X)
    y_arr = None
    if y is not None:
        y_arr = np.asarray(y)
        if y_arr.ndim == 0 or len(y_arr) != n:
            raise UserError(f"X has {n} samples but y has {y_arr.size if y_arr.ndim == 0 else len(y_arr)}; "
                            "they must have the same length")
        if y_arr.ndim > 2:
            raise UserError(f"y must be 1-D labels or a 2-D regression target, got shape {y_arr.shape}")
        if y_arr.dtype.kind == "f" and not np.isfinite(y_arr).all():
            raise UserError("y contains NaN or inf; drop or impute those rows before selecting")
        if y_arr.dtype.kind == "O":
            y_arr = y_arr.astype(str)
    ts = _aux(timestamps, n, "timestamps")
    sc = _aux(scores, n, "scores")
    return X, y_arr, ts, sc


def _all_finite(X: np.ndarray, chunk: int = 1 << 16) -> bool:
    # chunked, so a 1M-row check does not allocate a full boolean copy
    for i in range(0, len(X), chunk):
        if not np.isfinite(X[i : i + chunk]).all():
            return False
    return True


def _aux(values: object, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise UserError(f"{name} must be 1-D with one value per sample ({n}), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64):
        arr = arr.astype("datetime64[s]").astype(np.float64)
    try:
        arr = arr.astype(np.float64)
    except ValueError:
        raise UserError(f"{name} must be numeric") from None
    if not np.isfinite(arr).all():
        raise UserError(f"{name} contains NaN or inf")
    return arr


def detect_task(y: np.ndarray | None, task: str = "auto") -> str:
    """'classification', 'regression' or 'none' (no y)."""
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if y is None:
        if task in ("classification", "regression"):
            raise UserError(f"task={task!r} needs y")
        return "none"
    if task != "auto":
        if task == "regression" and y.dtype.kind not in "biuf":
            raise UserError("task='regression' needs a numeric y")
        if task == "classification" and y.ndim == 2:
            raise UserError("task='classification' needs 1-D labels")
        return task
    if y.ndim == 2:
        return "regression"
    if y.dtype.kind in "biuUSO":
        return "classification"
    # floats: integral values with few distinct ones are labels
    if np.all(np.mod(y, 1) == 0) and len(np.unique(y)) <= max(20, int(np.sqrt(len(y)))):
        return "classification"
    return "regression"


def make_strata(y: np.ndarray | None, task: str, n: int, max_bins: int = 10,
                min_per_bin: int = 20) -> Strata:
    """Classes, or quantile bins of the target (per column, combined), or one stratum."""
    if task == "none" or y is None:
        return Strata(np.zeros(n, dtype=np.int64), ["all"], task, False)
    if task == "classification":
        labels, codes = np.unique(y, return_inverse=True)
        return Strata(codes.astype(np.int64).ravel(), [str(v) for v in labels], task, True)
    target = y.reshape(len(y), -1).astype(np.float64)
    d = target.shape[1]
    # bins per column so the strata stay populated: about n / min_per_bin in total
    total = max(1, min(max_bins ** d, len(y) // min_per_bin))
    per_col = max(1, int(np.floor(total ** (1.0 / d) + 1e-9)))
    codes = np.zeros(len(y), dtype=np.int64)
    for j in range(d):
        edges = np.unique(np.quantile(target[:, j], np.linspace(0, 1, per_col + 1)[1:-1]))
        codes = codes * (len(edges) + 1) + np.searchsorted(edges, target[:, j], side="right")
    uniq, codes = np.unique(codes, return_inverse=True)
    return Strata(codes.astype(np.int64).ravel(), [f"q{int(u)}" for u in uniq], task, False)

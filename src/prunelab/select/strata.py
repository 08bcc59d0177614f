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


class InputTypeError(UserError, TypeError):
    """Input of a type that cannot be read as numbers (e.g. a dict inside an object array): a
    `UserError` for the CLI, a `TypeError` for scikit-learn's checks."""


def check_features(X: object) -> np.ndarray:
    """X as a 2-D float array (a view when possible), or a `UserError` saying how to fix it.

    Refused, like scikit-learn's `check_array` (whose messages are kept, so its estimator checks
    recognise them): sparse matrices, complex numbers, 1-D arrays, no samples, no feature
    columns, values that are not numbers, NaN / inf. Object arrays of numbers are converted.
    More than two dimensions (images) are flattened to (n, features)."""
    import scipy.sparse

    if scipy.sparse.issparse(X):
        raise UserError("sparse input is not supported: X is a sparse matrix; pass X.toarray() "
                        "(selection works on dense rows)")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists etc.
        raise UserError(f"X must be a 2-D numeric array: {exc}") from None
    if np.iscomplexobj(arr):
        raise UserError("Complex data not supported: X holds complex numbers; pass the real "
                        "features (e.g. np.abs(X) or the real and imaginary parts as columns)")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            kind = InputTypeError if isinstance(exc, TypeError) else UserError
            raise kind(f"X must hold numbers: {exc}; convert or drop the non-numeric columns") from None
    if arr.ndim == 0 or arr.ndim == 1:
        raise UserError(f"Expected 2D array, got {arr.ndim}D array instead (shape {arr.shape}): X must be "
                        "(samples, features); reshape with X.reshape(-1, 1) for one feature or "
                        "X.reshape(1, -1) for one sample")
    if arr.ndim > 2:
        arr = arr.reshape(len(arr), -1)
    if arr.shape[0] == 0:
        raise UserError(f"X is empty (shape {arr.shape}): Found array with 0 sample(s) while a minimum of 1 "
                        "is required; give at least one sample")
    if arr.shape[1] == 0:
        raise UserError(f"X has no feature columns: Found array with 0 feature(s) (shape={arr.shape}) while "
                        "a minimum of 1 is required; give at least one")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise UserError(f"X must be numeric, got dtype {arr.dtype}; convert or drop the non-numeric columns")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if not _all_finite(arr):
        raise UserError("X contains NaN or inf; drop or impute those rows before selecting")
    return arr


def check_inputs(X: object, y: object = None, timestamps: object = None,
                 scores: object = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                                                 np.ndarray | None]:
    """Validate shapes and values; return X as a 2-D float array (a view when possible)."""
    X = check_features(X)
    n = len(X)
    y_arr = None
    if y is not None:
        import scipy.sparse

        if scipy.sparse.issparse(y):
            raise UserError("sparse y is not supported; pass y.toarray()")
        y_arr = np.asarray(y)
        if y_arr.ndim == 0 or len(y_arr) != n:
            raise UserError(f"X has {n} samples but y has {y_arr.size if y_arr.ndim == 0 else len(y_arr)}; "
                            "they must have the same length")
        if y_arr.ndim > 2:
            raise UserError(f"y must be 1-D labels or a 2-D regression target, got shape {y_arr.shape}")
        if np.iscomplexobj(y_arr):
            raise UserError("Complex data not supported: y holds complex numbers; pass real labels or targets")
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

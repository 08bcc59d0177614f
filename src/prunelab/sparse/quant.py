"""Storage precisions: fp32, fp16 and int8 (per-output-channel symmetric).

Weights are *stored* in the chosen precision and always *computed* in
float32: the runtime dequantises once at load. int8 keeps one scale per
output channel (row of the weight viewed as (out, -1)): q = round(w / s),
s = max|w_row| / 127, so the largest weight of each row maps to +-127 and
zero stays exactly zero (pruned weights cost nothing).
"""

from __future__ import annotations

import numpy as np

from prunelab.errors import UserError

PRECISIONS = ("fp32", "fp16", "int8")
# numpy dtype codes stored in the file for each precision's values
VALUE_DTYPE = {"fp32": "f4", "fp16": "f2", "int8": "i1"}
_FP16_MAX = 65504.0
_FP16_TINY = 6.104e-05  # smallest normal float16: scales below it lose precision


def list_precisions() -> list[str]:
    return list(PRECISIONS)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    return precision


def as_rows(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D view every tensor is encoded in: (out channels, everything else)."""
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (1, int(shape[0]))
    cols = 1
    for d in shape[1:]:
        cols *= int(d)
    return (int(shape[0]), cols)


def quantize(w: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray | None]:
    """float weights -> (stored values with w's shape, per-row scale or None).

    fp32/fp16 return no scale; int8 returns a float32 (rows,) scale that is
    exactly representable in the dtype `scale_dtype(scale)` picks, so the
    file reproduces the same dequantised weights.
    """
    check_precision(precision)
    w = np.asarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise UserError("the model has NaN or infinite weights; it cannot be exported")
    if precision == "fp32":
        return w, None
    if precision == "fp16":
        if w.size and float(np.abs(w).max()) > _FP16_MAX:
            raise UserError("weights exceed the float16 range (65504); export with --precision fp32")
        return w.astype(np.float16), None
    rows, cols = as_rows(w.shape)
    w2 = w.reshape(rows, cols)
    amax = np.abs(w2).max(axis=1) if cols else np.zeros(rows, np.float32)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    scale = scale.astype(scale_dtype(scale)).astype(np.float32)  # round-trip through the stored dtype
    q = np.clip(np.rint(w2 / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scale


def scale_dtype(scale: np.ndarray) -> str:
    """'f2' when every scale is a normal float16 (half the bytes), else 'f4'."""
    if scale.size and float(scale.min()) >= _FP16_TINY and float(scale.max()) <= _FP16_MAX:
        return "f2"
    return "f4"


def dequantize(values: np.ndarray, scale: np.ndarray | None, rows: np.ndarray | None = None) -> np.ndarray:
    """Stored values -> float32. `rows[i]` is the output row of `values[i]`
    (needed for int8 with a per-row scale; for a full 2-D array pass None)."""
    out = values.astype(np.float32)
    if scale is None:
        return out
    if rows is None:
        return out * scale.reshape((-1,) + (1,) * (out.ndim - 1))
    return out * scale.astype(np.float32)[rows]

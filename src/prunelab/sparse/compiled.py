"""Compiled CSR kernels (numba): the `numba` kernel back-end of the runtime.

    from prunelab.sparse import compiled          # ImportError without numba
    compiled.csr_matmat(indptr, indices, data, bias, x, y, relu)   # y = W @ x + b
    compiled.chain_vec(plan, ints, floats, x, scale, out)       # a whole MLP, one sample

Imported only when numba is installed (the optional extra `fast`); the
numpy/scipy back-end in `prunelab.sparse.kernels` computes the same thing.
Every function is compiled with `cache=True`, so the one-off compile
(about a second per signature) lands in numba's on-disk cache, and with
`fastmath` so LLVM may reorder the float32 sums into SIMD lanes (the same
freedom BLAS takes; results differ from a serial sum in the last bits).

Shapes: `indptr` (rows + 1,) uint32, `indices` (nnz,) uint32, `data` (nnz,)
float32, `bias` (rows,) float32; activations are feature-major with the
batch innermost, `x` (cols, m) and `y` (rows, m) C-contiguous float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64  # type: ignore[attr-defined]

_jit = njit(cache=True, fastmath=True, nogil=True, boundscheck=False, error_model="numpy")
# Indices are unsigned on purpose: numba wraps negative indices around, and
# the sign test on every signed index stops LLVM from vectorising the loops
# (measured: a CSR matrix-vector product 2.7x slower with int32 indices).
_1 = uint64(1)
_2 = uint64(2)
_3 = uint64(3)
_4 = uint64(4)
_5 = uint64(5)
_6 = uint64(6)
_7 = uint64(7)
_8 = uint64(8)


@_jit
def _rows(indptr, indices, data, bias, x, y, relu, r0, r1):  # type: ignore[no-untyped-def]
    """Rows r0..r1 of y = W @ x + bias (optionally ReLU'd).

    For each output row the batch row y[r] (m contiguous floats) stays in L1
    while the stored weights stream past; eight weights are applied per pass
    over y[r], so y is loaded and stored once per eight weights instead of
    once per weight (the inner loop over the batch is what LLVM vectorises)."""
    m = uint64(x.shape[1])
    for r in range(uint64(r0), uint64(r1)):
        d = y[r]
        b = bias[r]
        for t in range(m):
            d[t] = b
        j = uint64(indptr[r])
        end = uint64(indptr[r + _1])
        while j + _8 <= end:
            v0 = data[j]
            v1 = data[j + _1]
            v2 = data[j + _2]
            v3 = data[j + _3]
            v4 = data[j + _4]
            v5 = data[j + _5]
            v6 = data[j + _6]
            v7 = data[j + _7]
            s0 = x[indices[j]]
            s1 = x[indices[j + _1]]
            s2 = x[indices[j + _2]]
            s3 = x[indices[j + _3]]
            s4 = x[indices[j + _4]]
            s5 = x[indices[j + _5]]
            s6 = x[indices[j + _6]]
            s7 = x[indices[j + _7]]
            for t in range(m):
                d[t] = (d[t] + v0 * s0[t] + v1 * s1[t] + v2 * s2[t] + v3 * s3[t] + v4 * s4[t] + v5 * s5[t]
                        + v6 * s6[t] + v7 * s7[t])
            j += _8
        while j < end:
            v = data[j]
            s = x[indices[j]]
            for t in range(m):
                d[t] += v * s[t]
            j += _1
        if relu:
            for t in range(m):
                if d[t] < 0:
                    d[t] = 0


@_jit
def csr_matmat(indptr, indices, data, bias, x, y, relu):  # type: ignore[no-untyped-def]
    """y = W @ x + bias, ReLU'd when `relu`; x (cols, m), y (rows, m)."""
    _rows(indptr, indices, data, bias, x, y, relu, 0, indptr.size - 1)


@_jit
def to_feature_major(x, scale, out):  # type: ignore[no-untyped-def]
    """out (F, n) float32 = x (n, F) * scale, for float32 or uint8 x: the
    layout change and the uint8 scaling in one pass, 64 samples at a time so
    the rows being read stay in cache (measured: 16 -> 64 is 12% faster)."""
    n = uint64(x.shape[0])
    f = uint64(x.shape[1])
    for s0 in range(uint64(0), n, uint64(64)):
        s1 = min(n, s0 + uint64(64))
        for k in range(f):
            o = out[k]
            if scale == 1:  # float32 input: a plain copy (the multiply costs ~20% here)
                for t in range(s0, s1):
                    o[t] = x[t, k]
            else:
                for t in range(s0, s1):
                    o[t] = np.float32(x[t, k]) * scale


@_jit
def to_feature_major_cols(x, scale, cols, out):  # type: ignore[no-untyped-def]
    """out (len(cols), n) = x[:, cols].T * scale: to_feature_major for only the
    input features the first layer reads (pruning leaves MNIST's border
    pixels unread: at 95% about 15% of them), so less to move."""
    n = uint64(x.shape[0])
    f = uint64(cols.size)
    for s0 in range(uint64(0), n, uint64(64)):
        s1 = min(n, s0 + uint64(64))
        for k in range(f):
            o = out[k]
            c = cols[k]
            if scale == 1:
                for t in range(s0, s1):
                    o[t] = x[t, c]
            else:
                for t in range(s0, s1):
                    o[t] = np.float32(x[t, c]) * scale


@_jit
def chain_mat(plan, ints, floats, x, scale, live, out):  # type: ignore[no-untyped-def]
    """A batch through a chain of CSR linear (+ReLU) layers in one call: the
    input (n, F) float32/uint8 (any strides) is brought feature-major (only
    the `live` features when live.size > 0: the first layer's indices then
    number those), every layer runs `_rows`, and the last layer's (rows, n)
    result is written to out (n, rows). plan/ints/floats as in chain_vec
    (kind must be 0, CSR)."""
    n = x.shape[0]
    if live.size:
        h = np.empty((live.size, n), np.float32)
        to_feature_major_cols(x, scale, live, h)
    else:
        h = np.empty((x.shape[1], n), np.float32)
        to_feature_major(x, scale, h)
    for li in range(plan.shape[0]):
        rows = plan[li, 1]
        ptr = ints[plan[li, 3]:plan[li, 3] + rows + 1]
        nnz = uint64(ptr[rows])
        y = np.empty((rows, n), np.float32)
        _rows(ptr, ints[plan[li, 4]:plan[li, 4] + nnz], floats[plan[li, 5]:plan[li, 5] + nnz],
              floats[plan[li, 7]:plan[li, 7] + rows], h, y, plan[li, 8] != 0, 0, rows)
        h = y
    for r in range(h.shape[0]):
        for s in range(n):
            out[s, r] = h[r, s]


@_jit
def chain_vec(plan, ints, floats, x, scale, out):  # type: ignore[no-untyped-def]
    """One sample through a chain of linear (+ReLU) layers in one call.

    plan: (layers, 9) int64 rows [kind (0 csr, 1 dense), rows, cols, indptr
    offset and indices offset into `ints`, values offset, dense offset and
    bias offset into `floats`, relu]. `ints` (uint32) holds every layer's CSR
    row pointers (each starting at 0) and column indices, `floats` (float32)
    its stored values, dense weights and bias: few arguments, because each
    costs time in the call. x: (cols0,) float32 or uint8, read as x * scale.
    out: (rows_last,).
    """
    layers = plan.shape[0]
    widest = 1
    for li in range(layers):
        widest = max(widest, plan[li, 1])
    buf = np.empty((2, widest), np.float32)
    for li in range(layers):
        kind = plan[li, 0]
        rows = plan[li, 1]
        cols = plan[li, 2]
        relu = plan[li, 8] != 0
        dst = out if li == layers - 1 else buf[li % 2]
        h = buf[(li + 1) % 2]  # the previous layer's output (unused by layer 0, which reads x)
        b = floats[plan[li, 7]:plan[li, 7] + rows]
        if kind == 0:
            ptr = ints[plan[li, 3]:plan[li, 3] + rows + 1]
            nnz = uint64(ptr[rows])
            ix = ints[plan[li, 4]:plan[li, 4] + nnz]
            val = floats[plan[li, 5]:plan[li, 5] + nnz]
            for r in range(rows):
                acc = np.float32(0.0)
                if li == 0:
                    for j in range(ptr[r], ptr[r + 1]):
                        acc += val[j] * np.float32(x[ix[j]])
                    acc *= scale
                else:
                    for j in range(ptr[r], ptr[r + 1]):
                        acc += val[j] * h[ix[j]]
                acc += b[r]
                dst[r] = 0.0 if relu and acc < 0 else acc
        else:
            w = floats[plan[li, 6]:plan[li, 6] + rows * cols]
            for r in range(rows):
                acc = np.float32(0.0)
                base = r * cols
                if li == 0:
                    for c in range(cols):
                        acc += w[base + c] * np.float32(x[c])
                    acc *= scale
                else:
                    for c in range(cols):
                        acc += w[base + c] * h[c]
                acc += b[r]
                dst[r] = 0.0 if relu and acc < 0 else acc


def warm_up() -> None:
    """Compile (or load from numba's cache) every signature the runtime uses."""
    indptr = np.array([0, 1], np.uint32)
    indices = np.array([0], np.uint32)
    data = np.ones(1, np.float32)
    bias = np.zeros(1, np.float32)
    x = np.ones((1, 2), np.float32)
    y = np.empty((1, 2), np.float32)
    csr_matmat(indptr, indices, data, bias, x, y, True)
    for dtype in (np.float32, np.uint8):
        to_feature_major(np.ones((2, 1), dtype), np.float32(1.0), np.empty((1, 2), np.float32))
        to_feature_major_cols(np.ones((2, 1), dtype), np.float32(1.0), np.zeros(1, np.uint32),
                              np.empty((1, 2), np.float32))
        plan = np.array([[0, 1, 1, 0, 2, 0, 0, 1, 1]], np.int64)
        ints, floats = np.array([0, 1, 0], np.uint32), np.array([1.0, 0.0], np.float32)
        chain_vec(plan, ints, floats, np.ones(1, dtype), np.float32(1.0), np.empty(1, np.float32))
        for live in (np.zeros(0, np.uint32), np.zeros(1, np.uint32)):
            chain_mat(plan, ints, floats, np.ones((2, 1), dtype), np.float32(1.0), live, np.empty((2, 1), np.float32))

"""The torch-free CPU runtime: runs an artifact with numpy and scipy only.

    rt = prunelab.sparse.load("lenet.plsa", threads=1)
    rt.predict(x)         # (n,) int64 class indices; x uint8 0-255 or float 0-1
    rt.predict_proba(x)   # (n, classes) float32 softmax

Activations are kept feature-major with the batch innermost, (features, n)
or (C, H, W, n), so a linear layer is Y = W @ X with X C-contiguous: scipy's
CSR kernel then streams each stored weight against one contiguous row of X
(an axpy over the batch), flatten is a reshape, and no layer needs a
transpose. Conv2d is im2col (one gather) + the same matmul.

Per layer and call the runtime picks the dense (BLAS) or the CSR kernel from
the layer's density and the matmul width (batch x output pixels):
`choose_kernel` holds thresholds measured on this project's machine by
`benchmarks/sparse_runtime.py`; `kernel="calibrate"` times both kernels per
layer at load instead.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.models.spec import Layer, ModelSpec
from prunelab.sparse.format import Artifact, Tensor, read_artifact

try:  # the C kernels behind scipy.sparse's matmul, without its per-call Python overhead
    from scipy.sparse import _sparsetools as _st

    _HAVE_ST = hasattr(_st, "csr_matvec") and hasattr(_st, "csr_matvecs")
except ImportError:  # pragma: no cover - older/newer scipy layouts
    _st = None
    _HAVE_ST = False

KERNELS = ("auto", "calibrate", "dense", "csr")

# Density at or above which the dense BLAS kernel beats CSR, by matmul width m
# (batch x output pixels): (largest m, threshold) steps. Measured with one
# thread on this project's 2-core machine by benchmarks/sparse_runtime.py
# (section "kernel crossover"; rerun it on other hardware): at m=1 BLAS's
# matrix-vector product wins above ~10% density; at m=2..15 scipy's CSR
# kernel has a poor inner loop and wins only below ~5%; from m=16 on it wins
# below ~12%.
THRESHOLDS: tuple[tuple[float, float], ...] = ((1, 0.10), (15, 0.05), (float("inf"), 0.12))
# Largest intermediate (im2col columns) per chunk of samples: small enough to
# stay in cache, so the CSR kernel's row-by-row reads of X do not go to RAM.
_CHUNK_BYTES = 2 << 20


def list_kernels() -> list[str]:
    return list(KERNELS)


def density_threshold(m: int) -> float:
    """Density from which the dense kernel is used at matmul width `m`."""
    for max_m, threshold in THRESHOLDS:
        if m <= max_m:
            return threshold
    return THRESHOLDS[-1][1]  # pragma: no cover


def choose_kernel(density: float, m: int) -> str:
    """'dense' or 'csr' for a layer of `density` (stored / total weights) at width `m`."""
    return "dense" if density >= density_threshold(m) else "csr"


_BLAS_THREADS: int | None = None


def set_blas_threads(threads: int) -> None:
    """Limit numpy's BLAS pool to `threads` (process-wide; cached so it costs
    nothing per call once set)."""
    global _BLAS_THREADS
    if threads == _BLAS_THREADS:
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    _BLAS_THREADS = threads


# --- one weighted layer: both kernels -----------------------------------------


@dataclass(repr=False)
class WeightedOp:
    """A linear or conv layer as a (rows, cols) matrix W, its bias and both kernels."""

    layer: Layer
    rows: int
    cols: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    bias: np.ndarray | None
    encoding: str
    nbytes: int
    policy: str = "auto"
    calibrated: dict[str, str] = field(default_factory=dict)  # 'small'/'wide' -> kernel
    _dense: np.ndarray | None = None
    _blocks: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] | None = None

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    @property
    def density(self) -> float:
        return self.nnz / max(self.rows * self.cols, 1)

    def dense(self) -> np.ndarray:
        """The (rows, cols) float32 weight, built on first use."""
        if self._dense is None:
            w = np.zeros((self.rows, self.cols), np.float32)
            r = np.repeat(np.arange(self.rows), np.diff(self.indptr))
            w[r, self.indices] = self.data
            self._dense = w
        return self._dense

    def kernel(self, m: int) -> str:
        if self.policy in ("dense", "csr"):
            return self.policy
        if self.policy == "calibrate" and self.calibrated:
            return self.calibrated["small" if m <= 4 else "wide"]
        return choose_kernel(self.density, m)

    def matmul(self, x: np.ndarray, kernel: str, threads: int = 1,
               pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """W @ x + bias for x (cols, m) float32 C-contiguous -> (rows, m)."""
        m = x.shape[1]
        if kernel == "dense":
            y = self.dense() @ x
            if self.bias is not None:
                y += self.bias[:, None]
            return y
        if m == 1:  # matrix-vector: the latency path, kept lean
            y = self.bias.copy() if self.bias is not None else np.zeros(self.rows, np.float32)
            if _HAVE_ST:
                _st.csr_matvec(self.rows, self.cols, self.indptr, self.indices, self.data, x.reshape(-1), y)
            else:  # pragma: no cover
                y += self._scipy() @ x.reshape(-1)
            return y.reshape(self.rows, 1)
        y = np.empty((self.rows, m), np.float32)
        y[:] = self.bias[:, None] if self.bias is not None else 0.0
        if not _HAVE_ST:  # pragma: no cover
            y += self._scipy() @ x
            return y
        if pool is not None and threads > 1 and self.nnz * m >= 1 << 18:
            # scipy's kernel releases the GIL: split W into row blocks of equal work
            list(pool.map(lambda b: _st.csr_matvecs(b[1] - b[0], self.cols, m, b[2], b[3], b[4],
                                                    x.reshape(-1), y[b[0]:b[1]].reshape(-1)),
                          self._row_blocks(threads)))
            return y
        _st.csr_matvecs(self.rows, self.cols, m, self.indptr, self.indices, self.data, x.reshape(-1),
                        y.reshape(-1))
        return y

    def _scipy(self) -> Any:  # pragma: no cover - only without scipy's _sparsetools
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.rows, self.cols))

    def _row_blocks(self, n: int) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        if self._blocks is None or len(self._blocks) != n:
            cuts = np.searchsorted(self.indptr, np.linspace(0, self.nnz, n + 1)[1:-1])
            bounds = [0, *sorted({int(c) for c in cuts if 0 < c < self.rows}), self.rows]
            self._blocks = []
            for r0, r1 in zip(bounds, bounds[1:], strict=False):
                lo, hi = self.indptr[r0], self.indptr[r1]
                self._blocks.append((r0, r1, (self.indptr[r0:r1 + 1] - lo).astype(np.int32),
                                     self.indices[lo:hi], self.data[lo:hi]))
        return self._blocks

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer.name, "kind": self.layer.kind, "shape": [self.rows, self.cols],
                "nnz": self.nnz, "density": self.density, "encoding": self.encoding, "bytes": self.nbytes,
                "kernel_b1": self.kernel(1), "kernel_wide": self.kernel(1 << 12),
                **({"calibrated": dict(self.calibrated)} if self.calibrated else {})}


def _weighted(layer: Layer, w: Tensor, b: Tensor | None, policy: str) -> WeightedOp:
    indptr, indices, data = w.to_csr()
    rows = w.shape[0]
    cols = w.size // max(rows, 1)
    bias = b.to_dense().astype(np.float32) if b is not None else None
    nbytes = w.nbytes + (b.nbytes if b is not None else 0)
    return WeightedOp(layer, rows, cols, indptr, indices, data, bias, w.encoding, nbytes, policy)


# --- layer functions on feature-major activations ------------------------------


@lru_cache(maxsize=64)
def _patch_index(h: int, w: int, k: int, stride: int) -> np.ndarray:
    """Flat (h*w) indices of every (kh, kw, oh, ow) patch element: im2col as one gather."""
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    r = np.arange(k)[:, None, None, None] + stride * np.arange(oh)[None, None, :, None]
    c = np.arange(k)[None, :, None, None] + stride * np.arange(ow)[None, None, None, :]
    return (r * w + c).reshape(-1).astype(np.intp)


def im2col(x: np.ndarray, k: int, stride: int, padding: int) -> tuple[np.ndarray, int, int]:
    """(C, H, W, n) -> (C*k*k, oh*ow*n) columns, rows in PyTorch's (c, kh, kw)
    weight order, columns (pixel, sample).

    With the batch innermost this is one gather along the pixel axis (cached
    index) that copies runs of n contiguous floats, and the result is already
    in matmul layout: no transpose copy."""
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    c, h, w, n = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    cols = np.take(x.reshape(c, h * w, n), _patch_index(h, w, k, stride), axis=1)
    return cols.reshape(c * k * k, oh * ow * n), oh, ow


def maxpool(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Max over k x k windows of (C, H, W, n) (no padding, floor mode, like torch).

    Elementwise maxima of the k*k strided slices (each slice copies runs of n
    contiguous floats); numpy's reductions over strided axes are far slower."""
    c, h, w, n = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = None
    for i in range(k):
        for j in range(k):
            view = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            out = view.copy() if out is None else np.maximum(out, view, out=out)
    assert out is not None
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes), stable against overflow."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


# --- the runtime ------------------------------------------------------------------


class Runtime:
    """Runs an artifact: `predict(x)`, `predict_proba(x)`, `logits(x)`.

    kernel: 'auto' (density thresholds), 'calibrate' (time both kernels per
    layer now), or force 'dense' / 'csr' everywhere. threads: BLAS threads
    and row blocks of the CSR kernel.
    """

    def __init__(self, artifact: Artifact, kernel: str = "auto", threads: int = 1) -> None:
        if kernel not in KERNELS:
            raise UserError(f"unknown kernel {kernel!r}; choose from {', '.join(KERNELS)}")
        if not isinstance(threads, int) or threads < 1:
            raise UserError(f"threads must be a positive integer, got {threads!r}")
        self.spec: ModelSpec = artifact.spec
        self.precision = artifact.precision
        self.path = artifact.path
        self.bytes = artifact.bytes
        self.meta = artifact.meta
        self.kernel_policy = kernel
        self.threads = threads
        # scipy's CSR kernel releases the GIL, so row blocks run in parallel threads
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.ops: list[Layer | WeightedOp] = []
        t = artifact.tensors
        for layer in self.spec.layers:
            if layer.has_weights:
                self.ops.append(_weighted(layer, t[f"{layer.name}.weight"], t.get(f"{layer.name}.bias"),
                                          kernel))
            else:
                self.ops.append(layer)
        self._shape = tuple(self.spec.input_shape)
        self.chunk = self._chunk_size()
        # ops from here on see a flat feature vector (flatten/linear/relu only)
        self._tail = next(i for i in range(len(self.ops), -1, -1)
                          if i == 0 or not _vector_op(self.ops[i - 1]))
        self._plan1: list[tuple[int, Any]] = []
        if kernel == "calibrate":
            self.calibrate()
        self._build_plan1()

    def _build_plan1(self) -> None:
        """Precompute the batch-1 path of the vector tail: (step, args) with the
        kernel already chosen, so a single prediction runs almost no Python."""
        plan: list[tuple[int, Any]] = []
        for op in self.ops[self._tail:]:
            if isinstance(op, WeightedOp):
                bias = op.bias if op.bias is not None else np.zeros(op.rows, np.float32)
                if op.kernel(1) == "csr" and _HAVE_ST:
                    plan.append((_CSR, (op.rows, op.cols, op.indptr, op.indices, op.data, bias)))
                else:
                    plan.append((_DENSE, (op.dense(), bias)))
            elif op.kind == "relu":
                plan.append((_RELU, None))
        self._plan1 = plan

    def __repr__(self) -> str:
        return (f"Runtime({self.path!r}, arch={self.spec.arch!r}, precision={self.precision!r}, "
                f"kernel={self.kernel_policy!r}, threads={self.threads}, nnz={self.nnz()})")

    # --- questions -----------------------------------------------------------
    def weighted(self) -> list[WeightedOp]:
        return [op for op in self.ops if isinstance(op, WeightedOp)]

    def nnz(self) -> int:
        return sum(op.nnz for op in self.weighted())

    def kernels(self, batch: int = 1) -> dict[str, str]:
        """Kernel each weighted layer uses for a batch of `batch` samples (run in chunks of `chunk`)."""
        widths = self._widths(min(batch, self.chunk))
        return {op.layer.name: op.kernel(widths[op.layer.name]) for op in self.weighted()}

    def describe(self) -> list[dict[str, Any]]:
        return [op.describe() for op in self.weighted()]

    def _widths(self, batch: int) -> dict[str, int]:
        """Matmul width (columns of X) of each weighted layer at `batch`."""
        out: dict[str, int] = {}
        for layer, nxt in zip(self.spec.layers, self.spec.output_shapes(), strict=True):
            if layer.kind == "linear":
                out[layer.name] = batch
            elif layer.kind == "conv2d":
                out[layer.name] = batch * nxt[1] * nxt[2]
        return out

    def _chunk_size(self) -> int:
        per_sample = 1
        shape = tuple(self.spec.input_shape)
        for layer, nxt in zip(self.spec.layers, self.spec.output_shapes(), strict=True):
            size = int(np.prod(nxt))
            if layer.kind == "conv2d":
                k = layer.args["kernel_size"]
                size = max(size, shape[0] * k * k * nxt[1] * nxt[2])
            per_sample = max(per_sample, size, int(np.prod(shape)))
            shape = nxt
        return int(max(1, min(4096, _CHUNK_BYTES // (4 * per_sample))))

    # --- calibration ---------------------------------------------------------
    def calibrate(self, repeats: int = 5, wide_batch: int = 64) -> dict[str, dict[str, str]]:
        """Time dense vs CSR per layer at batch 1 and `wide_batch` on random inputs;
        keep the faster (best of `repeats`). Returns {layer: {'small': k, 'wide': k}}."""
        rng = np.random.default_rng(0)
        set_blas_threads(self.threads)
        for batch, key in ((1, "small"), (wide_batch, "wide")):
            widths = self._widths(min(batch, self.chunk))
            for op in self.weighted():
                x = rng.random((op.cols, widths[op.layer.name]), dtype=np.float32)
                best = {}
                for kern in ("dense", "csr"):
                    op.matmul(x, kern, self.threads, self._pool)  # warm-up (builds dense W)
                    times = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        op.matmul(x, kern, self.threads, self._pool)
                        times.append(time.perf_counter() - t0)
                    best[kern] = min(times)
                op.calibrated[key] = min(best, key=lambda k: best[k])
        self._build_plan1()
        return {op.layer.name: dict(op.calibrated) for op in self.weighted()}

    # --- inference -----------------------------------------------------------
    def prepare(self, x: Any) -> np.ndarray:
        """Input -> float32 (n, *input_shape). uint8 is scaled by 1/255; floats
        are used as given (0-1 for MNIST-like data). May return `x` itself."""
        shape = self._shape
        if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[1:] == shape:
            return x  # the fast path: already the model's layout
        x = np.asarray(x)
        size = int(np.prod(shape))
        if x.dtype == np.uint8:
            x = x.astype(np.float32) * np.float32(1.0 / 255.0)
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32, copy=False)
        else:
            raise UserError(f"input must be uint8 (0-255) or float (0-1), got {x.dtype}")
        if x.size == size and (x.ndim == 1 or int(np.prod(x.shape[1:])) != size):
            x = x.reshape(1, *shape)  # one sample without a batch axis, e.g. (28, 28)
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != size:
            alt = f", (n, {shape[1]}, {shape[2]})" if len(shape) == 3 and shape[0] == 1 else ""
            raise UserError(f"input has shape {tuple(x.shape)}; this model takes (n, "
                            f"{', '.join(map(str, shape))}){alt} or (n, {size})")
        return x.reshape(x.shape[0], *shape)

    def logits(self, x: Any) -> np.ndarray:
        """(n, classes) float32 scores before softmax."""
        xs = self.prepare(x)
        if self.threads != _BLAS_THREADS:
            set_blas_threads(self.threads)
        n = xs.shape[0]
        if n == 0:  # an empty batch has empty scores (reshape(-1, 0) would fail deep in _forward)
            return np.zeros((0, self.spec.classes), np.float32)
        if n == 1:
            return self._forward1(xs)
        if n <= self.chunk:
            return self._forward(xs)
        out = np.empty((n, self.spec.classes), np.float32)
        for i in range(0, n, self.chunk):
            out[i:i + self.chunk] = self._forward(xs[i:i + self.chunk])
        return out

    def predict_proba(self, x: Any) -> np.ndarray:
        """(n, classes) softmax probabilities."""
        return softmax(self.logits(x))

    def predict(self, x: Any) -> np.ndarray:
        """(n,) int64 predicted classes."""
        return self.logits(x).argmax(axis=1)

    def _forward1(self, x: np.ndarray) -> np.ndarray:
        """Logits (1, classes) of one sample: the general path up to the vector
        tail, then the precomputed plan on a 1-D vector."""
        h = self._forward(x, stop=self._tail).reshape(-1) if self._tail else x.reshape(-1)
        owned = self._tail > 0  # the head ends in a conv or pool, which made a new array
        for step, args in self._plan1:
            if step == _CSR:
                rows, cols, indptr, indices, data, bias = args
                y = bias.copy()
                _st.csr_matvec(rows, cols, indptr, indices, data, h, y)
                h = y
            elif step == _DENSE:
                h = args[0] @ h
                h += args[1]
            elif owned:
                np.maximum(h, 0, out=h)
            else:
                h = np.maximum(h, 0)
            owned = True
        return h.reshape(1, -1)

    def _forward(self, x: np.ndarray, stop: int | None = None) -> np.ndarray:
        """Logits (n, classes) of one chunk; never writes into `x`. With `stop`,
        the activations (feature-major) after the first `stop` ops instead."""
        n = x.shape[0]
        # feature-major, batch innermost: (C, H, W, n) for images, (F, n) for vectors
        h = x.transpose(*range(1, x.ndim), 0)
        owned = False  # h may still be the caller's memory: no in-place ops until a layer copies
        pool = self._pool
        for op in self.ops[:stop]:
            if isinstance(op, WeightedOp):
                if op.layer.kind == "linear":
                    h = op.matmul(h if h.flags.c_contiguous else np.ascontiguousarray(h), op.kernel(n),
                                  self.threads, pool)
                else:
                    a = op.layer.args
                    cols, oh, ow = im2col(h, a["kernel_size"], a["stride"], a["padding"])
                    h = op.matmul(cols, op.kernel(cols.shape[1]), self.threads, pool).reshape(op.rows, oh, ow, n)
                owned = True
            elif op.kind == "relu":
                h = np.maximum(h, 0, out=h) if owned else np.maximum(h, 0)
                owned = True
            elif op.kind == "flatten":
                if h.ndim > 2:  # (C, H, W, n) -> (C*H*W, n): PyTorch's per-sample (c, h, w) order
                    h = h.reshape(-1, n)  # a view unless h is the caller's transposed input
                    if not h.flags.c_contiguous:
                        h = np.ascontiguousarray(h)
                        owned = True
            elif op.kind == "maxpool2d":
                k = op.args["kernel_size"]
                h = maxpool(h, k, op.args["stride"] or k)
                owned = True
            else:  # pragma: no cover - spec validation rejects unknown kinds
                raise AssertionError(op.kind)
        return h if stop is not None else h.T


_CSR, _DENSE, _RELU = 0, 1, 2


def _vector_op(op: Layer | WeightedOp) -> bool:
    """Ops that act on a flat feature vector (the batch-1 fast path)."""
    if isinstance(op, WeightedOp):
        return op.layer.kind == "linear"
    return op.kind in ("relu", "flatten")


def load(path: str | Path, kernel: str = "auto", threads: int = 1) -> Runtime:
    """Read an artifact and prepare it to run (see `Runtime`)."""
    return Runtime(read_artifact(path), kernel=kernel, threads=threads)

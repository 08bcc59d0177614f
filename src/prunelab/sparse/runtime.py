"""The torch-free CPU runtime: runs an artifact with numpy (+ numba when installed).

    rt = prunelab.sparse.load("lenet.plsa", threads=1)
    rt.predict(x)         # (n,) int64 class indices; x uint8 0-255 or float 0-1
    rt.predict_proba(x)   # (n, classes) float32 softmax

Activations are kept feature-major with the batch innermost, (features, n)
or (C, H, W, n), so a linear layer is Y = W @ X with X C-contiguous: the CSR
kernel streams each stored weight against one contiguous row of X (an axpy
over the batch), flatten is a reshape, and no layer needs a transpose.
Conv2d is im2col (one gather) + the same matmul. A ReLU after a weighted
layer is fused into it.

Two kernel back-ends compute the same thing (`prunelab.sparse.kernels`):
`numba` (compiled CSR kernels: the linear tail of the network runs as one
call at batch 1, and an all-CSR MLP runs a whole chunk of a batch as one
call, moving only the input features its first layer reads and computing
only the rows a later layer reads) and `numpy` (scipy's C CSR kernel and
BLAS).

Per layer and matmul width (batch x output pixels) the runtime runs the
dense (BLAS) or the CSR kernel, whichever it measured faster on this
machine when the model was loaded (`WeightedOp.choices`; cached per process
by layer size, so loading the same model again costs nothing).
"""

from __future__ import annotations

import math
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
from prunelab.sparse.kernels import (
    compiled_module,
    numpy_feature_major,
    resolve_backend,
    scipy_matmat,
    scipy_matvec,
)

KERNELS = ("auto", "calibrate", "dense", "csr")
# Batches at which the kernel choice is measured at load; other batches use
# the choice of the nearest one (log scale). Chunks cap the batch anyway.
PROBE_BATCHES = (1, 16, 256)
# Largest intermediate (im2col columns) per chunk of samples: small enough to
# stay in cache, so the CSR kernel's row-by-row reads of X do not go to RAM.
_CHUNK_BYTES = 2 << 20
# (backend, rows, cols, nnz, width) -> 'dense' | 'csr', measured once per process
_CHOICE_CACHE: dict[tuple[str, int, int, int, int], str] = {}


def list_kernels() -> list[str]:
    return list(KERNELS)


_BLAS_THREADS: int | None = None


def set_blas_threads(threads: int) -> None:
    """Limit numpy's BLAS pool to `threads` (process-wide;
    cached so it costs nothing per call once set)."""
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
    bias: np.ndarray
    encoding: str
    nbytes: int
    backend: str = "numpy"
    policy: str = "auto"
    choices: dict[int, str] = field(default_factory=dict)  # matmul width -> measured kernel
    _dense: np.ndarray | None = None
    # (live input columns, indices renumbered into them) when the input is compacted (see Runtime._compact)
    compact: tuple[np.ndarray, np.ndarray] | None = None

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
        """Kernel at matmul width `m`: forced, or the measured choice at the nearest probed width."""
        if self.policy in ("dense", "csr"):
            return self.policy
        if not self.choices:
            return "csr" if self.density < 0.1 else "dense"  # before measuring (never at run time)
        lm = math.log(max(m, 1))
        return self.choices[min(self.choices, key=lambda w: abs(math.log(w) - lm))]

    def matmul(self, x: np.ndarray, kernel: str, relu: bool = False) -> np.ndarray:
        """W @ x + bias (ReLU'd when `relu`) for x (cols, m) float32 C-contiguous -> (rows, m);
        x (live columns, m) when the input was compacted (`compact`, CSR only)."""
        m = x.shape[1]
        if self.compact is not None and x.shape[0] != self.cols:
            y = np.empty((self.rows, m), np.float32)
            compiled_module().csr_matmat(self.indptr, self.compact[1], self.data, self.bias, x, y, relu)
            return y
        if kernel == "dense":
            y = self.dense() @ x
            y += self.bias[:, None]
            if relu:
                np.maximum(y, 0, out=y)
            return y
        y = np.empty((self.rows, m), np.float32)
        if self.backend == "numba":
            compiled_module().csr_matmat(self.indptr, self.indices, self.data, self.bias, x, y, relu)
        else:
            scipy_matmat(self.indptr, self.indices, self.data, self.bias, x, y, relu)
        return y

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer.name, "kind": self.layer.kind, "shape": [self.rows, self.cols],
                "nnz": self.nnz, "density": self.density, "encoding": self.encoding, "bytes": self.nbytes,
                "kernel_b1": self.kernel(1), "kernel_wide": self.kernel(1 << 12),
                "measured": {str(w): k for w, k in sorted(self.choices.items())}}


@lru_cache(maxsize=8)
def _pool(threads: int) -> ThreadPoolExecutor:
    """One long-lived pool per thread count (shared by all runtimes: a pool per
    call would cost more than the work it splits)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="prunelab-sparse")


def _weighted(layer: Layer, w: Tensor, b: Tensor | None, policy: str, backend: str) -> WeightedOp:
    indptr, indices, data = w.to_csr()
    if backend == "numba":  # the compiled kernels index with unsigned ints (see compiled.py)
        indptr, indices = indptr.astype(np.uint32), indices.astype(np.uint32)
    rows = w.shape[0]
    cols = w.size // max(rows, 1)
    bias = b.to_dense().astype(np.float32) if b is not None else np.zeros(rows, np.float32)
    nbytes = w.nbytes + (b.nbytes if b is not None else 0)
    return WeightedOp(layer, rows, cols, indptr, indices, data, bias, w.encoding, nbytes, backend, policy)


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

_U8 = np.dtype(np.uint8)
_F32 = np.dtype(np.float32)
_INV255 = np.float32(1.0 / 255.0)
_ONE = np.float32(1.0)


class Runtime:
    """Runs an artifact: `predict(x)`, `predict_proba(x)`, `logits(x)`.

    kernel: 'auto' (per layer and batch, the kernel measured faster at load,
    cached per process), 'calibrate' (measure again now, ignoring the cache),
    or force 'dense' / 'csr' everywhere. backend: 'auto' (numba when
    installed), 'numba' or 'numpy'. threads: a batch of at least 32 samples
    per thread is split into that many blocks of samples, each run as a whole
    single-threaded forward on its own thread (BLAS is kept at one thread, so
    nothing nests); batch 1 always runs on the calling thread.
    """

    def __init__(self, artifact: Artifact, kernel: str = "auto", threads: int = 1, backend: str = "auto") -> None:
        if kernel not in KERNELS:
            raise UserError(f"unknown kernel {kernel!r}; choose from {', '.join(KERNELS)}")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise UserError(f"threads must be a positive integer, got {threads!r}")
        self.backend = resolve_backend(backend)
        self.spec: ModelSpec = artifact.spec
        self.precision = artifact.precision
        self.path = artifact.path
        self.bytes = artifact.bytes
        self.meta = artifact.meta
        self.kernel_policy = kernel
        self.threads = threads
        self.ops: list[Layer | WeightedOp] = []
        t = artifact.tensors
        for layer in self.spec.layers:
            if layer.has_weights:
                self.ops.append(_weighted(layer, t[f"{layer.name}.weight"], t.get(f"{layer.name}.bias"),
                                          kernel, self.backend))
            else:
                self.ops.append(layer)
        shape = tuple(self.spec.input_shape)
        self._shape = shape
        self._features = int(np.prod(shape))
        # input layouts that take the fast path: the model's, flat, and (H, W) for one channel
        tails = {shape, (self._features,)}
        if len(shape) == 3 and shape[0] == 1:
            tails.add(shape[1:])
        self._tails = tails
        # one sample, with or without the batch axis: the batch-1 fast path of an MLP
        self._one_shapes = tails | {(1, *t) for t in tails}
        self.chunk = self._chunk_size()
        # ops from here on see a flat feature vector (flatten/linear/relu only)
        tail = next(i for i in range(len(self.ops), -1, -1) if i == 0 or not _vector_op(self.ops[i - 1]))
        while tail < len(self.ops) and _is_relu(self.ops[tail]):
            tail += 1  # a ReLU with no linear layer before it in the tail runs in the head
        self._tail = tail
        # weighted ops followed directly by a ReLU: the ReLU is fused into the layer
        self._relu_after = {i for i, op in enumerate(self.ops[:-1])
                            if isinstance(op, WeightedOp) and _is_relu(self.ops[i + 1])}
        # in the vector tail, a ReLU after a flatten or another ReLU still belongs to the
        # linear layer before it (flatten is the identity on vectors, ReLU is idempotent)
        self._tail_relu: set[int] = set()
        last = None
        for i in range(tail, len(self.ops)):
            op = self.ops[i]
            if isinstance(op, WeightedOp):
                last = i
            elif _is_relu(op) and last is not None:
                self._tail_relu.add(last)
        if kernel in ("auto", "calibrate"):
            self.measure(fresh=kernel == "calibrate")
        self._live: np.ndarray | None = None
        self._compact()
        self._build_plan1()
        self._wide = self._build_wide()

    def _compact(self) -> None:
        """When the network starts with a linear layer on the input (after a
        flatten) that runs the compiled CSR kernel at every batch above 1,
        and pruning left some input features unread by it (MNIST's border
        pixels), batches bring only the read features into the
        feature-major layout and the layer indexes them renumbered."""
        first = next((i for i, op in enumerate(self.ops) if isinstance(op, WeightedOp)), None)
        if (self.backend != "numba" or first is None
                or any(op.kind != "flatten" for op in self.ops[:first] if isinstance(op, Layer))):
            return
        op = self.ops[first]
        assert isinstance(op, WeightedOp)
        if op.layer.kind != "linear" or any(op.kernel(m) != "csr" for m in (2, 1 << 20)):
            return
        live = np.flatnonzero(np.bincount(op.indices, minlength=op.cols))
        if live.size > 0.97 * op.cols:
            return  # nearly every feature is read: nothing worth skipping
        op.compact = (live.astype(np.uint32), np.searchsorted(live, op.indices).astype(np.uint32))
        self._live = op.compact[0]

    def _build_wide(self) -> tuple[Any, ...] | None:
        """For an MLP that runs the compiled CSR kernel at batches above 1 (at
        least for 3/4 of its stored weights): (chain_mat, plan, ints, floats,
        live) to run a whole chunk in one call (layout change, all layers,
        output) - no Python between layers."""
        ops = self.weighted()
        if self.backend != "numba" or self._tail != 0 or not ops:
            return None
        # layers measured faster dense run the CSR kernel here too, when they hold little of
        # the work: a small last layer whose two timings are within noise must not decide
        # whether the whole chain runs as one call
        dense = sum(op.nnz for op in ops if any(op.kernel(m) != "csr" for m in (2, self.chunk)))
        if dense > 0.25 * sum(op.nnz for op in ops):
            return None
        layers = [[op.indptr, op.compact[1] if op.compact is not None else op.indices, op.data, op.bias]
                  for op in ops]
        for li in range(len(layers) - 2, -1, -1):
            # rows no later layer reads (pruning empties whole columns) need not be computed
            read = np.flatnonzero(np.bincount(layers[li + 1][1], minlength=ops[li].rows))
            if read.size < ops[li].rows:
                indptr, indices, data, bias = layers[li]
                take = np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in read] or [np.zeros(0, int)])
                counts = np.diff(indptr.astype(np.int64))[read]
                layers[li] = [np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32), indices[take],
                              data[take], bias[read]]
                layers[li + 1][1] = np.searchsorted(read, layers[li + 1][1]).astype(np.uint32)
        plan = np.zeros((len(ops), 9), np.int64)
        ints: list[np.ndarray] = []
        floats: list[np.ndarray] = []
        ni = nf = 0
        for li, (op, (indptr, indices, data, bias)) in enumerate(zip(ops, layers, strict=True)):
            rows, nnz = bias.size, data.size
            plan[li] = (0, rows, 0, ni, ni + rows + 1, nf, 0, nf + nnz, int(self.ops.index(op) in self._tail_relu))
            ints += [indptr, indices]
            floats += [data, bias]
            ni += rows + 1 + nnz
            nf += nnz + rows
        live = self._live if self._live is not None else np.zeros(0, np.uint32)
        return (compiled_module().chain_mat, plan, np.concatenate(ints).astype(np.uint32),
                np.concatenate(floats).astype(np.float32), live)

    # --- batch-1 plan ----------------------------------------------------------
    def _build_plan1(self) -> None:
        """Precompute the batch-1 path of the vector tail with the kernel per
        layer already chosen, so a single prediction runs almost no Python:
        for numba one fused call over all layers; for numpy a list of steps."""
        tail = [(i, op) for i, op in enumerate(self.ops) if i >= self._tail and isinstance(op, WeightedOp)]
        self._plan1: list[tuple[str, Any]] = []
        self._chain: tuple[Any, ...] | None = None
        self._head_chain: tuple[Any, ...] | None = None
        if self.backend == "numba" and tail:
            plan = np.zeros((len(tail), 9), np.int64)
            ints: list[np.ndarray] = []
            floats: list[np.ndarray] = []
            ni = nf = 0
            for li, (i, op) in enumerate(tail):
                kind = int(op.kernel(1) == "dense")
                dense = op.dense().reshape(-1) if kind else np.zeros(0, np.float32)
                plan[li] = (kind, op.rows, op.cols, ni, ni + op.rows + 1, nf, nf + op.nnz,
                            nf + op.nnz + dense.size, int(i in self._tail_relu))
                ints += [op.indptr, op.indices]
                floats += [op.data, dense, op.bias]
                ni += op.rows + 1 + op.nnz
                nf += op.nnz + dense.size + op.rows
            chain = (compiled_module().chain_vec, plan, np.concatenate(ints).astype(np.uint32),
                     np.concatenate(floats).astype(np.float32), tail[-1][1].rows)
            # _chain: the whole network is the chain (an MLP); _head_chain: the tail after conv layers
            if self._tail == 0:
                self._chain = chain
            else:
                self._head_chain = chain
            return
        for i, op in tail:
            relu = i in self._tail_relu
            if op.kernel(1) == "csr":
                self._plan1.append(("csr", (op.indptr, op.indices, op.data, op.bias, relu)))
            else:
                self._plan1.append(("dense", (op.dense(), op.bias, relu)))

    def __repr__(self) -> str:
        return (f"Runtime({self.path!r}, arch={self.spec.arch!r}, precision={self.precision!r}, "
                f"kernel={self.kernel_policy!r}, backend={self.backend!r}, threads={self.threads}, "
                f"nnz={self.nnz()})")

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

    # --- measured kernel choice --------------------------------------------------
    def measure(self, fresh: bool = False, repeats: int = 3) -> dict[str, dict[int, str]]:
        """Time dense vs CSR for every weighted layer at the matmul widths of
        PROBE_BATCHES (capped at the chunk) on random inputs and keep the
        faster (best of `repeats`) per layer and width. Results are cached per
        process by (back-end, layer size, nnz, width); `fresh`
        measures again. Returns {layer: {width: kernel}}."""
        rng = np.random.default_rng(0)
        set_blas_threads(1)  # each thread runs its block of samples with one BLAS thread
        for op in self.weighted():
            op.choices = {}
        for batch in sorted({min(b, self.chunk) for b in PROBE_BATCHES}):
            widths = self._widths(batch)
            for op in self.weighted():
                m = widths[op.layer.name]
                key = (self.backend, op.rows, op.cols, op.nnz, m)
                if fresh or key not in _CHOICE_CACHE:
                    _CHOICE_CACHE[key] = self._time_kernels(op, m, rng, repeats)
                op.choices[m] = _CHOICE_CACHE[key]
        return {op.layer.name: dict(op.choices) for op in self.weighted()}

    def _time_kernels(self, op: WeightedOp, m: int, rng: np.random.Generator, repeats: int) -> str:
        """'dense' or 'csr', whichever ran `op` at width m faster here (best of `repeats`)."""
        x = rng.random((op.cols, m), dtype=np.float32)
        fns: dict[str, Any] = {"dense": lambda: op.matmul(x, "dense"), "csr": lambda: op.matmul(x, "csr")}
        if m == 1 and self.backend == "numba":  # batch 1 runs in the fused chain: time that kernel
            fns = {k: _chain_probe(op, k, x.reshape(-1)) for k in ("dense", "csr")}
        best = {k: math.inf for k in fns}
        for fn in fns.values():
            fn()  # warm-up: builds the dense copy, touches caches
        for _ in range(repeats):  # interleaved, so a busy neighbour slows both alike
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        return min(best, key=lambda k: (best[k], k != "csr"))

    # --- inference -----------------------------------------------------------
    def prepare(self, x: Any) -> tuple[np.ndarray, np.float32]:
        """Input -> ((n, features) view, scale): uint8 is read as x / 255
        (scale 1/255, applied inside the kernels), float32 as is. The
        accepted layouts (n, *input_shape), (n, features), (n, H, W) for one
        channel, and one sample without the batch axis cost a reshape;
        other float dtypes are converted to float32."""
        if type(x) is np.ndarray and (x.dtype is _F32 or x.dtype is _U8 or x.dtype == _F32 or x.dtype == _U8):
            shape = x.shape
            scale = _INV255 if x.dtype == _U8 else np.float32(1.0)
            if shape[1:] in self._tails:
                return x.reshape(shape[0], self._features), scale
            if shape in self._tails:
                return x.reshape(1, self._features), scale
        return self._prepare_slow(x)

    def _prepare_slow(self, x: Any) -> tuple[np.ndarray, np.float32]:
        x = np.asarray(x)
        shape, size = self._shape, self._features
        scale = np.float32(1.0)
        if x.dtype == _U8:
            scale = _INV255
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32, copy=False)
        else:
            raise UserError(f"input must be uint8 (0-255) or float (0-1), got {x.dtype}")
        if x.size == size and (x.ndim == 1 or int(np.prod(x.shape[1:])) != size):
            return x.reshape(1, size), scale  # one sample without a batch axis, e.g. (28, 28)
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != size:
            alt = f", (n, {shape[1]}, {shape[2]})" if len(shape) == 3 and shape[0] == 1 else ""
            raise UserError(f"input has shape {tuple(x.shape)}; this model takes (n, "
                            f"{', '.join(map(str, shape))}){alt} or (n, {size})")
        return x.reshape(x.shape[0], size), scale

    def logits(self, x: Any) -> np.ndarray:
        """(n, classes) float32 scores before softmax."""
        chain = self._chain
        if chain is not None and type(x) is np.ndarray and x.shape in self._one_shapes:
            # one sample of an MLP in an accepted layout: straight into the fused kernel
            dt = x.dtype
            if dt is _F32 or dt == _F32:
                fn, plan, ints, floats, classes = chain
                out = np.empty((1, classes), np.float32)
                fn(plan, ints, floats, x.reshape(-1), _ONE, out[0])
                return out
            if dt is _U8 or dt == _U8:
                # converted first: the kernel's gather runs 4x slower on bytes than on floats (measured)
                fn, plan, ints, floats, classes = chain
                out = np.empty((1, classes), np.float32)
                fn(plan, ints, floats, x.reshape(-1).astype(np.float32), _INV255, out[0])
                return out
        x2, scale = self.prepare(x)
        n = x2.shape[0]
        if n == 1:
            return self._forward1(x2, scale)
        if n == 0:  # an empty batch has empty scores
            return np.zeros((0, self.spec.classes), np.float32)
        if _BLAS_THREADS != 1:
            set_blas_threads(1)  # parallelism is ours (sample blocks), never nested inside BLAS
        if self.threads > 1 and n >= 32 * self.threads:
            # one block of samples per thread, each a whole single-threaded forward (the
            # compiled kernels, scipy's kernel and BLAS all release the GIL)
            out = np.empty((n, self.spec.classes), np.float32)
            cuts = [n * i // self.threads for i in range(self.threads + 1)]

            def block(i: int) -> None:
                out[cuts[i]:cuts[i + 1]] = self._logits_one_thread(x2[cuts[i]:cuts[i + 1]], scale)

            list(_pool(self.threads).map(block, range(self.threads)))
            return out
        return self._logits_one_thread(x2, scale)

    def _logits_one_thread(self, x2: np.ndarray, scale: np.float32) -> np.ndarray:
        """(n, classes) for n >= 1 samples, in chunks, on the calling thread."""
        n = x2.shape[0]
        if self._wide is not None:  # an all-CSR MLP: one compiled call per chunk
            fn, plan, ints, floats, live = self._wide
            out = np.empty((n, self.spec.classes), np.float32)
            for i in range(0, n, self.chunk):
                fn(plan, ints, floats, x2[i:i + self.chunk], scale, live, out[i:i + self.chunk])
            return out
        if n <= self.chunk:
            return self._forward(x2, scale)
        out = np.empty((n, self.spec.classes), np.float32)
        for i in range(0, n, self.chunk):
            out[i:i + self.chunk] = self._forward(x2[i:i + self.chunk], scale)
        return out

    def predict_proba(self, x: Any) -> np.ndarray:
        """(n, classes) softmax probabilities."""
        return softmax(self.logits(x))

    def predict(self, x: Any) -> np.ndarray:
        """(n,) int64 predicted classes."""
        return self.logits(x).argmax(axis=1)

    def _forward1(self, x2: np.ndarray, scale: np.float32) -> np.ndarray:
        """Logits (1, classes) of one sample: the general path up to the vector
        tail, then the precomputed plan on a 1-D vector."""
        if self._tail:
            h = self._forward(x2, scale, stop=self._tail).reshape(-1)
            scale = np.float32(1.0)
        else:
            h = x2.reshape(-1)
            if h.dtype != _F32:
                h = h.astype(np.float32)  # uint8: the kernel reads floats faster (scale applied inside)
        chain = self._chain or self._head_chain
        if chain is not None:
            fn, plan, ints, floats, classes = chain
            out = np.empty((1, classes), np.float32)
            fn(plan, ints, floats, h, scale, out[0])
            return out
        if h.dtype != _F32 or scale != 1:
            h = h * scale  # a new float32 array
        for kind, args in self._plan1:
            if kind == "csr":
                indptr, indices, data, bias, relu = args
                h = scipy_matvec(indptr, indices, data, bias, h)
            else:
                w, bias, relu = args
                h = w @ h
                h += bias
            if relu:
                np.maximum(h, 0, out=h)
        return h.reshape(1, -1)

    def _feature_major(self, x2: np.ndarray, scale: np.float32) -> np.ndarray:
        """(n, F) sample-major input -> (F, n) float32 feature-major (a new array)."""
        if self.backend == "numba":
            n = x2.shape[0]
            cm = compiled_module()
            live = self._live
            if live is not None:
                out = np.empty((live.size, n), np.float32)
                fn = lambda a, o: cm.to_feature_major_cols(a, scale, live, o)  # noqa: E731
            else:
                out = np.empty((x2.shape[1], n), np.float32)
                fn = lambda a, o: cm.to_feature_major(a, scale, o)  # noqa: E731
            fn(x2, out)
            return out
        return numpy_feature_major(x2, float(scale))

    def _forward(self, x2: np.ndarray, scale: np.float32, stop: int | None = None) -> np.ndarray:
        """Logits (n, classes) of one chunk; never writes into `x2`. With `stop`,
        the activations (feature-major) after the first `stop` ops instead."""
        n = x2.shape[0]
        # feature-major, batch innermost: (C, H, W, n) for images, (F, n) for vectors
        h = self._feature_major(x2, scale)
        if len(self._shape) > 1 and self._live is None:
            h = h.reshape(*self._shape, n)
        skip = False
        for i, op in enumerate(self.ops[:stop]):
            if skip:  # a ReLU already fused into the layer before it
                skip = False
                continue
            if isinstance(op, WeightedOp):
                relu = i in self._relu_after and (stop is None or i + 1 < stop)
                skip = relu
                if op.layer.kind == "linear":
                    h = op.matmul(h if h.flags.c_contiguous else np.ascontiguousarray(h), op.kernel(n), relu)
                else:
                    a = op.layer.args
                    cols, oh, ow = im2col(h, a["kernel_size"], a["stride"], a["padding"])
                    h = op.matmul(cols, op.kernel(cols.shape[1]), relu).reshape(op.rows, oh, ow, n)
            elif op.kind == "relu":
                np.maximum(h, 0, out=h)  # h is always this runtime's own array
            elif op.kind == "flatten":
                if h.ndim > 2:  # (C, H, W, n) -> (C*H*W, n): PyTorch's per-sample (c, h, w) order
                    h = h.reshape(-1, n)
            elif op.kind == "maxpool2d":
                k = op.args["kernel_size"]
                h = maxpool(h, k, op.args["stride"] or k)
            else:  # pragma: no cover - spec validation rejects unknown kinds
                raise AssertionError(op.kind)
        return h if stop is not None else h.T


def _chain_probe(op: WeightedOp, kind: str, x: np.ndarray) -> Any:
    """A one-layer fused batch-1 call of `op` with kernel `kind` (for timing)."""
    cm = compiled_module()
    dense = op.dense().reshape(-1) if kind == "dense" else np.zeros(0, np.float32)
    ints = np.concatenate([op.indptr, op.indices]).astype(np.uint32)
    floats = np.concatenate([op.data, dense, op.bias]).astype(np.float32)
    plan = np.array([[int(kind == "dense"), op.rows, op.cols, 0, op.rows + 1, 0, op.nnz, op.nnz + dense.size, 0]],
                    np.int64)
    out = np.empty(op.rows, np.float32)
    one = np.float32(1.0)
    return lambda: cm.chain_vec(plan, ints, floats, x, one, out)


def _is_relu(op: Layer | WeightedOp) -> bool:
    return isinstance(op, Layer) and op.kind == "relu"


def _vector_op(op: Layer | WeightedOp) -> bool:
    """Ops that act on a flat feature vector (the batch-1 fast path)."""
    if isinstance(op, WeightedOp):
        return op.layer.kind == "linear"
    return op.kind in ("relu", "flatten")


def load(path: str | Path, kernel: str = "auto", threads: int = 1, backend: str = "auto") -> Runtime:
    """Read an artifact and prepare it to run (see `Runtime`)."""
    return Runtime(read_artifact(path), kernel=kernel, threads=threads, backend=backend)

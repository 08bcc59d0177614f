"""Latency measurement shared by `prunelab compare` and benchmarks/sparse_runtime.py.

    t = time_call(lambda: rt.predict(x), budget_s=0.3)   # Timing(median_us, p95_us, runs)

One timer for every contender so ratios compare like with like: warm-up
calls first, then repeated calls until the time budget or `max_runs` is
spent (at least `min_runs`), median and 95th percentile in microseconds.
Nothing here imports torch; `torch_forward` imports it when called.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class Timing:
    """Per-call latency in microseconds over `runs` calls."""

    median_us: float
    p95_us: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        return f"Timing(median={self.median_us:.1f} us, p95={self.p95_us:.1f} us, runs={self.runs})"


def time_call(fn: Callable[[], Any], budget_s: float = 0.3, min_runs: int = 5, max_runs: int = 5000,
              warmup: int = 3) -> Timing:
    """Time `fn()` repeatedly within about `budget_s` seconds (plus warm-up)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    arr = np.asarray(times) * 1e6
    return Timing(float(np.median(arr)), float(np.percentile(arr, 95)), len(times))


def torch_forward(module: Any, x: np.ndarray, threads: int = 1) -> Callable[[], Any]:
    """A no-grad eval-mode forward of a torch `module` on float input `x`
    (n, C, H, W), with torch limited to `threads` (imports torch)."""
    try:
        import torch
    except ImportError:
        from prunelab.errors import UserError

        raise UserError("the PyTorch baseline needs torch installed; the artifact runtime itself "
                        "(prunelab predict) does not") from None

    torch.set_num_threads(threads)
    module.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def run() -> Any:
        with torch.inference_mode():
            return module(xt)

    return run


def numpy_dense_forward(weights: dict[str, np.ndarray], spec: Any, x: np.ndarray) -> Callable[[], Any]:
    """The plain dense-numpy baseline: the same network run with `x @ W.T`
    (BLAS) per linear layer, sample-major like most numpy code. Only for
    linear/relu/flatten networks (conv baselines use the runtime's dense kernel)."""
    ops: list[tuple[str, Any, Any]] = []
    for layer in spec.layers:
        if layer.kind == "linear":
            ops.append(("linear", np.ascontiguousarray(weights[f"{layer.name}.weight"].T),
                        weights.get(f"{layer.name}.bias")))
        elif layer.kind in ("relu", "flatten"):
            ops.append((layer.kind, None, None))
        else:
            raise ValueError(f"numpy_dense_forward handles linear networks only, not {layer.kind}")
    xf = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)

    def run() -> np.ndarray:
        h = xf
        for kind, wt, b in ops:
            if kind == "linear":
                h = h @ wt
                if b is not None:
                    h += b
            elif kind == "relu":
                np.maximum(h, 0, out=h)
        return h

    return run


def time_interleaved(fns: dict[str, Callable[[], Any]], budget_s: float = 1.0, rounds: int = 5,
                     min_runs: int = 3) -> dict[str, Timing]:
    """Time several contenders in alternating rounds (each gets budget_s/rounds
    per round), so a noisy neighbour slows them all alike; median and p95
    over all calls of each."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up: caches, lazy dense weights, BLAS buffers
    for _ in range(rounds):
        for name, fn in fns.items():
            deadline = time.perf_counter() + budget_s / rounds
            n = 0
            while n < min_runs or time.perf_counter() < deadline:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
                n += 1
    out = {}
    for name, times in samples.items():
        arr = np.asarray(times) * 1e6
        out[name] = Timing(float(np.median(arr)), float(np.percentile(arr, 95)), len(times))
    return out


def onnx_dense_forward(module: Any, x: np.ndarray, threads: int = 1) -> Callable[[], Any]:
    """The dense network in ONNX Runtime, as a user deploying it would run it:
    `module` (a torch model, dense weights) written by `prunelab.export_onnx`
    (dynamic batch axis), one InferenceSession with `threads` intra-op
    threads (and 1 inter-op), run on float32 `x` (n, *input_shape).
    Imports torch and onnxruntime; raises UserError without them."""
    import tempfile
    from pathlib import Path

    try:
        import onnxruntime as ort
        import torch

        from prunelab.onnx_export import export_onnx
    except ImportError:
        from prunelab.errors import UserError

        raise UserError("the ONNX Runtime baseline needs torch and onnxruntime: pip install onnxruntime onnx"
                        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.onnx"
        export_onnx(module, torch.zeros((2, *x.shape[1:]), dtype=torch.float32), path, check=False)
        model_bytes = path.read_bytes()
    return onnx_session_forward(model_bytes, x, threads, ort)


def onnx_session_forward(model_bytes: bytes, x: np.ndarray, threads: int, ort: Any) -> Callable[[], Any]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    xf = np.ascontiguousarray(x, dtype=np.float32)
    feed = {sess.get_inputs()[0].name: xf}
    run = sess.run

    def go() -> Any:
        return run(None, feed)[0]

    return go

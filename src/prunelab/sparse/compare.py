"""`compare(models)`: size, FLOPs and latency of stored models side by side.

    rows = prunelab.sparse.compare.compare(["base", "base-p95"], threads=1)
    rows[1].to_dict()["compression_ratio"]

Each row exports the model to a temporary artifact and times, in this one
process and with the same thread count, the artifact runtime, the dense
network in ONNX Runtime (the model exported with torch.onnx.export; when
onnxruntime is installed) and the same weights dense in PyTorch eager, at
batch 1 and batch 256, in alternating rounds (median and p95 over about
`budget_s` seconds each). PyTorch is imported here, only for those
baselines; the runtime itself never needs it.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunelab.errors import UserError
from prunelab.models.model import Model
from prunelab.models.spec import ModelSpec
from prunelab.sparse.bench import Timing, onnx_dense_forward, time_interleaved, torch_forward
from prunelab.sparse.export import dense_bytes, export, masked_weights
from prunelab.sparse.runtime import load

if TYPE_CHECKING:
    from prunelab.store import Store

BATCHES = (1, 256)


def flops_nonzero(spec: ModelSpec, weights: dict[str, np.ndarray]) -> int:
    """Multiply-accumulates of one forward pass skipping zero weights
    (each non-zero weight of a conv is used once per output pixel)."""
    total = 0
    for layer, out in zip(spec.layers, spec.output_shapes(), strict=True):
        if layer.kind == "linear":
            total += int(np.count_nonzero(weights[f"{layer.name}.weight"]))
        elif layer.kind == "conv2d":
            total += int(np.count_nonzero(weights[f"{layer.name}.weight"])) * out[1] * out[2]
    return total


@dataclass
class CompareRow:
    """One model's measurements; `to_dict()` is the JSON row of `prunelab compare`."""

    id: str | None
    name: str | None
    arch: str
    parent: str | None
    test_accuracy: float | None
    params: int
    nonzero: int
    sparsity: float
    dense_flops: int
    sparse_flops: int
    dense_bytes: int
    dense_gzip_bytes: int
    artifact_bytes: int
    precision: str
    threads: int
    artifact: dict[int, Timing] = field(default_factory=dict)  # batch -> timing
    torch: dict[int, Timing] = field(default_factory=dict)
    ort: dict[int, Timing] = field(default_factory=dict)  # empty without onnxruntime
    kernels: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def compression_ratio(self) -> float:
        return self.dense_bytes / max(self.artifact_bytes, 1)

    @property
    def flop_ratio(self) -> float:
        return self.dense_flops / max(self.sparse_flops, 1)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "name": self.name, "arch": self.arch, "parent": self.parent,
            "test_accuracy": self.test_accuracy, "params": self.params, "nonzero": self.nonzero,
            "sparsity": self.sparsity, "compression_ratio": self.compression_ratio,
            "flop_ratio": self.flop_ratio, "dense_flops": self.dense_flops, "sparse_flops": self.sparse_flops,
            "dense_bytes": self.dense_bytes, "dense_gzip_bytes": self.dense_gzip_bytes,
            "artifact_bytes": self.artifact_bytes, "precision": self.precision, "threads": self.threads,
        }
        for b in sorted(self.artifact):
            a, t = self.artifact[b], self.torch.get(b)
            d[f"latency_us_b{b}"] = a.median_us
            d[f"latency_us_b{b}_p95"] = a.p95_us
            if t is not None:
                d[f"torch_latency_us_b{b}"] = t.median_us
                d[f"torch_latency_us_b{b}_p95"] = t.p95_us
                d[f"speedup_b{b}"] = t.median_us / max(a.median_us, 1e-9)
            o = self.ort.get(b)
            if o is not None:
                d[f"ort_latency_us_b{b}"] = o.median_us
                d[f"ort_latency_us_b{b}_p95"] = o.p95_us
                d[f"ort_speedup_b{b}"] = o.median_us / max(a.median_us, 1e-9)
            d[f"kernels_b{b}"] = self.kernels.get(b, {})
        return d

    def __repr__(self) -> str:
        return (f"CompareRow(id={self.id!r}, sparsity={self.sparsity:.3f}, "
                f"ratio={self.compression_ratio:.1f}x, flop_ratio={self.flop_ratio:.1f}x)")


def compare_model(model: Model, precision: str = "fp32", threads: int = 1, budget_s: float = 0.2,
                  batches: tuple[int, ...] = BATCHES, seed: int = 0) -> CompareRow:
    """Measure one model (see module docstring)."""
    weights = masked_weights(model)
    dense = dense_bytes(model.weights)
    row = CompareRow(
        id=model.id, name=model.name, arch=model.spec.arch, parent=model.meta.get("parent"),
        test_accuracy=(model.meta.get("metrics") or {}).get("test_accuracy"), params=model.params(),
        nonzero=int(sum(np.count_nonzero(w) for w in weights.values())),
        sparsity=Model(model.spec, weights).sparsity(), dense_flops=model.spec.flops(),
        sparse_flops=flops_nonzero(model.spec, weights), dense_bytes=len(dense),
        dense_gzip_bytes=len(gzip.compress(dense, compresslevel=9, mtime=0)), artifact_bytes=0,
        precision=precision, threads=threads)
    rng = np.random.default_rng(seed)
    try:
        module = Model(model.spec, weights).to_torch()
    except ImportError:
        raise UserError("compare times the same weights in PyTorch, which is not installed here; "
                        "the artifact runtime itself (prunelab predict) does not need it") from None
    with tempfile.TemporaryDirectory(prefix="prunelab-compare-") as tmp:
        path = Path(tmp) / "model.plsa"
        row.artifact_bytes = export(Model(model.spec, weights, meta=model.meta), path, precision).bytes
        rt = load(path, threads=threads)
    for b in batches:
        x = rng.random((b, *model.spec.input_shape), dtype=np.float32)
        fns = {"torch": torch_forward(module, x, threads), "artifact": _bind(rt.logits, x)}
        if have_onnxruntime():
            fns["ort"] = onnx_dense_forward(module, x, threads)
        t = time_interleaved(fns, budget_s=2 * budget_s, rounds=3)
        row.torch[b], row.artifact[b] = t["torch"], t["artifact"]
        if "ort" in t:
            row.ort[b] = t["ort"]
        row.kernels[b] = rt.kernels(b)
    return row


def have_onnxruntime() -> bool:
    """Whether the ONNX Runtime baseline can run here (onnxruntime and onnx installed)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def _bind(fn: Callable[[np.ndarray], Any], x: np.ndarray) -> Callable[[], Any]:
    return lambda: fn(x)


def compare(refs: list[str | Model], store: Store | None = None, precision: str = "fp32", threads: int = 1,
            budget_s: float = 0.2, batches: tuple[int, ...] = BATCHES) -> list[CompareRow]:
    """One `CompareRow` per model (ids/names in `store`, or `Model`s)."""
    if not refs:
        raise UserError("name at least one model to compare; `prunelab models` lists them")
    if not isinstance(threads, int) or threads < 1:
        raise UserError(f"--threads must be a positive integer, got {threads!r}")
    if not budget_s > 0:
        raise UserError(f"--budget must be a positive number of seconds, got {budget_s!r}")
    models: list[Model] = []
    for ref in refs:  # resolve every name before measuring anything
        if isinstance(ref, Model):
            models.append(ref)
            continue
        if store is None:
            from prunelab.store import Store

            store = Store()
        models.append(store.load(ref))
    return [compare_model(m, precision, threads, budget_s, batches) for m in models]

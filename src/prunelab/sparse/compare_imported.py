"""`compare` rows for imported torch.export models.

When the program is a chain of the runtime's ops it is converted
(`prunelab.sparse.export.exported_as_spec`) and measured exactly like a spec
model (`compare_model`: artifact, ONNX Runtime and PyTorch side by side);
otherwise the row has sizes, FLOPs and the PyTorch and ONNX Runtime
latencies of the program itself, no artifact columns (None), and
`artifact_error` says which ops the runtime lacks. Counts (params, nonzero,
sparsity) are the program's own, before any BatchNorm folding.
"""

from __future__ import annotations

import gzip
import json
import warnings
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.sparse.bench import onnx_dense_forward, time_interleaved, torch_forward
from prunelab.sparse.compare import BATCHES, compare_model, have_onnxruntime
from prunelab.sparse.export import dense_bytes, exported_as_spec

ARTIFACT_KEYS = ("artifact_bytes", "compression_ratio", "flop_ratio", "latency_us_b1", "latency_us_b256")


def sparse_flops(model: Any) -> int:
    """Multiply-accumulates per sample of the Linear/Conv ops, skipping zero weights."""
    from prunelab.models.exported import weight_op_macs

    total = 0
    for fqn, macs in weight_op_macs(json.loads(model.spec.graph)):
        w = model.weights[fqn]
        total += int(round(macs * np.count_nonzero(w) / max(w.size, 1)))
    return total


def compare_exported(model: Any, precision: str = "fp32", threads: int = 1, budget_s: float = 0.2,
                     batches: tuple[int, ...] = BATCHES, seed: int = 0) -> dict[str, Any]:
    """One `prunelab compare` JSON row for an `ExportedModel`."""
    params = {n: model.weights[n] for n in model.spec.parameters}
    dense = dense_bytes(params)
    own = {"id": model.id, "name": model.name, "arch": model.spec.arch, "parent": model.meta.get("parent"),
           "test_accuracy": (model.meta.get("metrics") or {}).get("test_accuracy"), "params": model.params(),
           "nonzero": model.nonzero(), "sparsity": model.sparsity(), "dense_flops": model.spec.flops(),
           "sparse_flops": sparse_flops(model), "dense_bytes": len(dense),
           "dense_gzip_bytes": len(gzip.compress(dense, compresslevel=9, mtime=0)),
           "precision": precision, "threads": threads}
    own["flop_ratio"] = own["dense_flops"] / max(own["sparse_flops"], 1)
    warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")  # deep copies of GraphModules
    try:
        as_spec = exported_as_spec(model)
    except UserError as exc:
        row: dict[str, Any] = {**own, "artifact_bytes": None, "compression_ratio": None, "artifact_error": str(exc)}
        module = model.to_torch()
        rng = np.random.default_rng(seed)
        for b in batches:
            x = rng.random((b, *model.spec.input_shape), dtype=np.float32)
            fns = {"torch": torch_forward(module, x, threads)}
            if have_onnxruntime():
                fns["ort"] = onnx_dense_forward(module, x, threads)
            t = time_interleaved(fns, budget_s=2 * budget_s, rounds=3)
            row[f"latency_us_b{b}"] = None
            row[f"torch_latency_us_b{b}"] = t["torch"].median_us
            row[f"torch_latency_us_b{b}_p95"] = t["torch"].p95_us
            if "ort" in t:
                row[f"ort_latency_us_b{b}"] = t["ort"].median_us
                row[f"ort_latency_us_b{b}_p95"] = t["ort"].p95_us
        return row
    row = compare_model(as_spec, precision, threads, budget_s, batches, seed).to_dict()
    row.update(own)
    row["compression_ratio"] = row["dense_bytes"] / max(row["artifact_bytes"], 1)
    return row

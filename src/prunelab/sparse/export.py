"""`export(model, path, precision)`: write a model as a compact artifact.

    import prunelab
    res = prunelab.export("lenet-95", "lenet.plsa", precision="int8")   # ExportResult
    res.bytes, res.dense_bytes, res.compression_ratio

Torch-free: a `Model` holds numpy arrays. Masks, when present, are applied
so that pruned entries are stored as exact zeros (and so cost nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunelab.errors import UserError
from prunelab.models.model import Model
from prunelab.models.surgery import shrink as shrink_dead_units
from prunelab.models.surgery import unit_count
from prunelab.sparse.format import TensorInfo, write_artifact
from prunelab.sparse.quant import check_precision

if TYPE_CHECKING:
    from prunelab.store import Store


@dataclass
class ExportResult:
    """Where the artifact went and how big it is (bytes), beside the float32
    safetensors of the same weights (`dense_bytes`)."""

    path: str
    bytes: int
    dense_bytes: int
    precision: str
    model_id: str | None
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def compression_ratio(self) -> float:
        return self.dense_bytes / max(self.bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "dense_bytes": self.dense_bytes,
                "compression_ratio": self.compression_ratio, "precision": self.precision,
                "id": self.model_id, "tensors": [t.to_dict() for t in self.tensors]}

    def __repr__(self) -> str:
        return (f"ExportResult({self.path!r}, bytes={self.bytes}, dense_bytes={self.dense_bytes}, "
                f"ratio={self.compression_ratio:.1f}x, precision={self.precision!r})")


def masked_weights(model: Model) -> dict[str, np.ndarray]:
    """float32 weights with every mask applied (masked entries exactly zero)."""
    out = {}
    for name, w in model.weights.items():
        w = np.asarray(w, dtype=np.float32)
        mask = model.masks.get(name)
        if mask is not None:
            if mask.shape != w.shape:
                raise UserError(f"mask of {name!r} has shape {mask.shape}, the weight {w.shape}")
            w = np.where(mask.astype(bool), w, np.float32(0.0))
        out[name] = w
    return out


def dense_bytes(weights: dict[str, np.ndarray]) -> bytes:
    """The float32 safetensors file of `weights` (the 'dense checkpoint' we compare with)."""
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()})


def export(model: Model | str, path: str | Path, precision: str = "fp32", store: Store | None = None,
           encodings: dict[str, str] | None = None, shrink: bool = True) -> ExportResult:
    """Write `model` (a Model, or an id/name in `store`, default the home store)
    to `path`. precision: fp32 | fp16 | int8. encodings: force an encoding
    per tensor name (default: the smallest for each).

    shrink: first remove the dead units (hidden neurons or filters whose
    incoming or outgoing weights are all zero; `prunelab.models.surgery.shrink`). The
    change is exact (a dead unit's constant output is folded into the next
    bias), so the artifact predicts what the model predicts, with fewer
    biases, scales and row pointers: a 99%-sparse LeNet-300-100 loses about
    half its hidden units this way. `dense_bytes` stays the float32 file of
    the model as given, so the ratio is against the network the user had."""
    check_precision(precision)
    if isinstance(model, str):
        if store is None:
            from prunelab.store import Store

            store = Store()
        model = store.load(model)
    if not isinstance(model, Model):
        raise UserError(f"export needs a Model or a model id/name, got {type(model).__name__}")
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path} is a folder; give a file name like {path / 'model.plsa'}")
    meta = {"model_id": model.id, "name": model.name, "arch": model.spec.arch,
            "sparsity": model.sparsity(), "parent": model.meta.get("parent"),
            "test_accuracy": (model.meta.get("metrics") or {}).get("test_accuracy")}
    stored = model
    if shrink:
        stored = shrink_dead_units(Model(model.spec, masked_weights(model)))
        if stored.spec != model.spec:
            meta["hidden_units"] = {la.name: unit_count(la) for la in stored.spec.weight_layers()[:-1]}
    nbytes, infos = write_artifact(path, stored.spec, masked_weights(stored), precision, encodings, meta)
    return ExportResult(path=str(path), bytes=nbytes, dense_bytes=len(dense_bytes(model.weights)), precision=precision,
                        model_id=model.id, tensors=infos)


def export_module(module: Any, example_input: Any, path: str | Path, precision: str = "fp32") -> ExportResult:
    """Write any `torch.nn.Module` (pruned with `prune_module` or not) as a compact
    artifact, when it is a chain of the runtime's ops (Linear, Conv2d, ReLU,
    MaxPool2d, Flatten; eval-mode BatchNorm after a conv/linear is folded in).
    Otherwise raises `UserError` listing the unsupported ops (export to ONNX
    instead). example_input: one batch, e.g. torch.zeros(1, 1, 28, 28).
    Imports torch (the runtime that reads the artifact does not need it)."""
    from prunelab.sparse.from_program import spec_from_module

    check_precision(precision)
    path = _check_out(path)
    spec, weights = spec_from_module(module, example_input)
    meta = {"model_id": None, "name": type(module).__name__, "arch": spec.arch,
            "sparsity": Model(spec, weights).sparsity(), "parent": None, "test_accuracy": None}
    nbytes, infos = write_artifact(path, spec, weights, precision, None, meta)
    return ExportResult(path=str(path), bytes=nbytes, dense_bytes=len(dense_bytes(weights)), precision=precision,
                        model_id=None, tensors=infos)


def exported_as_spec(model: Any) -> Model:
    """An imported torch.export model (`prunelab.models.exported.ExportedModel`) as a
    spec `Model` the runtime runs, its record in `meta`; `UserError` listing the ops it lacks."""
    from prunelab.models.exported import deserialize
    from prunelab.sparse.from_program import spec_from_program

    program = deserialize(model.spec.graph, model.weights, model.spec)
    spec, weights = spec_from_program(program, arch=model.spec.arch)
    return Model(spec=spec, weights=weights, meta=model.meta)


def export_exported(model: Any, path: str | Path, precision: str = "fp32") -> ExportResult:
    """`export` for an imported torch.export model (see `exported_as_spec`)."""
    check_precision(precision)
    res = export(exported_as_spec(model), _check_out(path), precision)
    params = {n: model.weights[n] for n in model.spec.parameters}
    return ExportResult(path=res.path, bytes=res.bytes, dense_bytes=len(dense_bytes(params)), precision=precision,
                        model_id=model.id, tensors=res.tensors)


def _check_out(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path} is a folder; give a file name like {path / 'model.plsa'}")
    return path

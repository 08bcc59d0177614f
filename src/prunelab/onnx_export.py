"""`export_onnx(module, example_input, path)`: any torch module to an ONNX
file with a dynamic batch axis, checked against PyTorch in ONNX Runtime
before it is moved into place.

    res = prunelab.export_onnx(net, torch.zeros(1, 1, 28, 28), "net.onnx")
    res.bytes, res.max_abs_diff          # file size; |ORT - PyTorch| on the check batches

A module still carrying `prune_module` masks is exported from a copy with
the masks baked in (the original is untouched); a structurally pruned module
is already small and dense, so it exports as the smaller network. The file
is written atomically: a temp file in the same folder, checked, then renamed.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunelab.atomic import write_atomic
from prunelab.errors import UserError
from prunelab.prune.engine.parametrized import bake_all


@dataclass(frozen=True)
class OnnxExport:
    """path: the written file; bytes: its size; params: parameters of the
    exported network; batch_sizes: the batch sizes compared with PyTorch
    (the example's, and one more to exercise the dynamic axis);
    max_abs_diff: max |ONNX Runtime - PyTorch| over those outputs (None when
    onnxruntime is not installed and the check was skipped)."""

    path: str
    bytes: int
    params: int
    opset: int
    batch_sizes: tuple[int, ...]
    max_abs_diff: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "params": self.params, "opset": self.opset,
                "batch_sizes": list(self.batch_sizes), "max_abs_diff": self.max_abs_diff}


def _inputs(example_input: Any) -> tuple[torch.Tensor, ...]:
    xs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not xs or not all(isinstance(x, torch.Tensor) and x.dim() >= 1 for x in xs):
        raise UserError("example_input must be a tensor (or tuple of tensors) with a batch axis first, "
                        "e.g. torch.zeros(1, 1, 28, 28)")
    return xs


def baked_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with every parametrization removed, keeping
    the parametrized values (masked weights become plain weights with zeros)."""
    return bake_all(copy.deepcopy(module).eval())


def _flat_outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in out):
        return list(out)
    raise UserError(f"export_onnx needs a module returning a tensor or a tuple of tensors, got {type(out).__name__}")


def _batch(xs: tuple[torch.Tensor, ...], n: int) -> tuple[torch.Tensor, ...]:
    """The example batch resized to n rows (repeated, then cut), deterministic."""
    return tuple(x.repeat(-(-n // x.shape[0]), *([1] * (x.dim() - 1)))[:n] for x in xs)


def export_onnx(module: nn.Module, example_input: Any, path: str | Path, *, opset: int = 17,
                check: bool = True, atol: float = 1e-3) -> OnnxExport:
    """Write `module` as ONNX to `path` with a dynamic batch axis (axis 0 of
    every input and output).

    example_input: a tensor (or tuple) the module accepts, batch first.
    check: run the file in ONNX Runtime on the example batch and on a batch
    of another size and compare with PyTorch; a difference above `atol`
    raises (and leaves no file). Returns an `OnnxExport`.
    """
    if not isinstance(module, nn.Module):
        raise UserError(f"export_onnx takes a torch.nn.Module, got {type(module).__name__}")
    xs = _inputs(example_input)
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name like model.onnx")
    net = baked_copy(module)
    with torch.no_grad():
        outs = _flat_outputs(net(*xs))
    in_names = ["input"] if len(xs) == 1 else [f"input_{i}" for i in range(len(xs))]
    out_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    dynamic = {n: {0: "batch"} for n in [*in_names, *out_names]}
    sizes = (xs[0].shape[0], xs[0].shape[0] + 3)
    diff: list[float | None] = [None]

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(net, xs, tmp, input_names=in_names, output_names=out_names, dynamic_axes=dynamic,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        if check:
            diff[0] = _compare(net, tmp, xs, in_names, sizes, atol)

    write_atomic(path, write)
    params = sum(p.numel() for p in net.parameters())
    return OnnxExport(path=str(path), bytes=path.stat().st_size, params=params, opset=opset,
                      batch_sizes=sizes if diff[0] is not None else (), max_abs_diff=diff[0])


def _compare(net: nn.Module, file: str, xs: tuple[torch.Tensor, ...], in_names: list[str],
             sizes: tuple[int, ...], atol: float) -> float | None:
    """max |ORT - PyTorch| over batches of `sizes` rows; raises above `atol`."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(file, opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    for n in sizes:
        batch = _batch(xs, n)
        with torch.no_grad():
            want = _flat_outputs(net(*batch))
        got = sess.run(None, {k: x.detach().cpu().numpy() for k, x in zip(in_names, batch, strict=True)})
        for w, g in zip(want, got, strict=True):
            if tuple(w.shape) != tuple(g.shape):
                raise RuntimeError(f"ONNX output shape {g.shape} differs from PyTorch's {tuple(w.shape)}")
            worst = max(worst, float(np.max(np.abs(w.detach().cpu().numpy().astype(np.float64) - g))))
    if worst > atol:
        raise RuntimeError(f"ONNX Runtime output differs from PyTorch by {worst:.3g} (> {atol}); "
                           "the module uses an op the exporter does not translate faithfully")
    return worst

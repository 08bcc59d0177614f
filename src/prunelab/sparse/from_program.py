"""A `torch.export` program -> a prunelab spec and weights the sparse runtime runs.

    spec, weights = spec_from_program(torch.export.export(net.eval(), (x,)))
    spec, weights = spec_from_module(net, x)     # the same, exporting a (baked) copy of `net`

The runtime has Linear, Conv2d (square kernel, one stride and padding,
no dilation or groups), ReLU, MaxPool2d (square, no padding) and Flatten, run
one after another. The program's ATen graph must be that chain; BatchNorm in
eval mode right after a Conv2d or Linear is folded into its weights and
bias (w * g / sqrt(var + eps), a zero stays zero), and dropout in eval mode,
clone and contiguous are dropped. Anything else raises `UserError` listing
every op the runtime lacks. torch is imported inside the functions: this
package's modules never import it at load time.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.models.spec import Layer, ModelSpec

_IDENTITY = {"aten.clone.default", "aten.contiguous.default", "aten.alias.default", "aten.detach.default",
             "aten.dropout.default"}
_KNOWN = {"aten.conv2d.default", "aten.convolution.default", "aten.linear.default", "aten.relu.default",
          "aten.relu_.default", "aten.max_pool2d.default", "aten.flatten.using_ints", "aten.view.default",
          "aten.reshape.default", "aten._unsafe_view.default", "aten.batch_norm.default", *_IDENTITY}
SUPPORTED = ("aten.linear", "aten.conv2d", "aten.convolution (2-D)", "aten.relu", "aten.max_pool2d",
             "aten.flatten / view / reshape to (batch, features)", "aten.batch_norm (eval, after conv/linear)",
             "aten.dropout (eval)")


def _op(node: Any) -> str:
    return str(node.target).removeprefix("torch.ops.")


def _ints(value: Any, n: int = 2) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    vals = tuple(int(v) for v in value)
    return vals * n if len(vals) == 1 else vals


def _layer_name(fqn: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", fqn.removesuffix(".weight")) or "layer"
    if not base[0].isalpha() and base[0] != "_":
        base = "l_" + base
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def spec_from_program(program: Any, arch: str = "exported") -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The spec and float32 weights of an `ExportedProgram` that is a chain of
    runtime ops; `UserError` naming every unsupported op otherwise."""
    import torch

    sig = program.graph_signature
    tensors: dict[str, torch.Tensor] = {}
    lifted = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
              **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    state = {**program.state_dict, **program.constants}
    user_inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name not in lifted]
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in lifted:
            tensors[node.name] = state[lifted[node.name]].detach()
    if len(user_inputs) != 1:
        raise UserError(f"the module takes {len(user_inputs)} inputs; the sparse runtime runs one batch of images")
    x_node = user_inputs[0]
    unsupported: list[str] = []
    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    taken: set[str] = set()
    current = x_node
    last_weighted: tuple[Any, str] | None = None  # (node, layer name) of the conv/linear that made `current`
    counts: dict[str, int] = {}

    def simple(kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        name = kind + str(counts[kind])
        while name in taken:
            counts[kind] += 1
            name = kind + str(counts[kind])
        taken.add(name)
        layers.append(Layer(kind, name, {}))

    def tensor(arg: Any, what: str) -> torch.Tensor | None:
        if arg is None:
            return None
        if getattr(arg, "name", None) not in tensors:
            raise _Skip(f"{what} computed inside the graph")
        return tensors[arg.name]

    for node in program.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        op = _op(node)
        try:
            if node.op != "call_function" or op not in _KNOWN:
                raise _Skip("" if node.op == "call_function" else node.op)
            if not node.args or node.args[0] is not current:
                raise _Skip("off the main chain: the runtime runs one chain of layers, no branches")
            a = list(node.args) + [None] * 9
            kw = node.kwargs
            if op in ("aten.conv2d.default", "aten.convolution.default"):
                w, b = tensor(a[1], "conv weight"), tensor(a[2], "conv bias")
                assert w is not None
                if op == "aten.convolution.default":
                    stride, padding, dilation, transposed, groups = a[3], a[4], a[5], a[6], a[8]
                else:
                    stride = kw.get("stride", a[3] or [1])
                    padding = kw.get("padding", a[4] if a[4] is not None else [0])
                    dilation = kw.get("dilation", a[5] or [1])
                    transposed, groups = False, kw.get("groups", a[6] or 1)
                if w.dim() != 4 or transposed:
                    raise _Skip("not a 2-D convolution")
                st, pd, dl = _ints(stride), _ints(padding), _ints(dilation)
                if w.shape[2] != w.shape[3] or len(set(st)) != 1 or len(set(pd)) != 1 or set(dl) != {1} \
                        or int(groups) != 1:
                    raise _Skip("non-square kernel, uneven stride/padding, dilation or groups")
                name = _layer_name(_fqn(lifted, a[1]), taken)
                layers.append(Layer("conv2d", name, {"in_channels": int(w.shape[1]), "out_channels": int(w.shape[0]),
                                                     "kernel_size": int(w.shape[2]), "stride": st[0],
                                                     "padding": pd[0], "bias": b is not None}))
                weights[f"{name}.weight"] = w.float().numpy().copy()
                if b is not None:
                    weights[f"{name}.bias"] = b.float().numpy().copy()
                last_weighted = (node, name)
            elif op == "aten.linear.default":
                w, b = tensor(a[1], "linear weight"), tensor(a[2], "linear bias")
                assert w is not None
                name = _layer_name(_fqn(lifted, a[1]), taken)
                layers.append(Layer("linear", name, {"in_features": int(w.shape[1]), "out_features": int(w.shape[0]),
                                                     "bias": b is not None}))
                weights[f"{name}.weight"] = w.float().numpy().copy()
                if b is not None:
                    weights[f"{name}.bias"] = b.float().numpy().copy()
                last_weighted = (node, name)
            elif op in ("aten.relu.default", "aten.relu_.default"):
                simple("relu")
            elif op == "aten.max_pool2d.default":
                k = _ints(a[1])
                s = _ints(a[2]) if a[2] else k
                pd = _ints(a[3] if a[3] is not None else 0)
                dl = _ints(a[4] if a[4] is not None else 1)
                if len(set(k)) != 1 or len(set(s)) != 1 or set(pd) != {0} or set(dl) != {1} or a[5]:
                    raise _Skip("non-square, padded, dilated or ceil-mode pooling")
                counts["pool"] = counts.get("pool", 0) + 1
                name = _layer_name(f"pool{counts['pool']}", taken)
                layers.append(Layer("maxpool2d", name, {"kernel_size": k[0], "stride": s[0]}))
            elif op in ("aten.flatten.using_ints", "aten.view.default", "aten.reshape.default",
                        "aten._unsafe_view.default"):
                shape_in = tuple(current.meta["val"].shape)
                shape_out = tuple(node.meta["val"].shape)
                if shape_out == shape_in:
                    pass
                elif len(shape_out) == 2 and len(shape_in) >= 2:
                    simple("flatten")
                else:
                    raise _Skip(f"reshape {shape_in} -> {shape_out}")
            elif op == "aten.batch_norm.default":
                if last_weighted is None or last_weighted[0] is not current or len(current.users) != 1 or a[5]:
                    raise _Skip("BatchNorm not right after a conv/linear, or in training mode")
                _fold(weights, last_weighted[1], tensor(a[1], "bn weight"), tensor(a[2], "bn bias"),
                      tensor(a[3], "running mean"), tensor(a[4], "running var"), float(a[7]))
                layers[-1] = Layer(layers[-1].kind, layers[-1].name, {**layers[-1].args, "bias": True})
            elif op in _IDENTITY:
                if op == "aten.dropout.default" and a[2]:
                    raise _Skip("dropout in training mode")
            else:
                raise _Skip("")
        except _Skip as why:
            unsupported.append(op + (f" ({why})" if str(why) else ""))
        current = node  # judge the next op against this one, so each problem is reported once
    out_nodes = [n for n in program.graph.nodes if n.op == "output"]
    outs: Any = out_nodes[0].args[0] if out_nodes else ()
    if not unsupported and (len(outs) != 1 or outs[0] is not current):
        unsupported.append("outputs other than the last layer's")
    if unsupported:
        raise UserError("the module uses ops the prunelab sparse runtime does not have: "
                        + ", ".join(sorted(set(unsupported))) + f". It runs: {', '.join(SUPPORTED)}. "
                        "Export it to ONNX instead (prunelab.export_onnx / --format onnx)")
    shape_x = tuple(int(d) for d in x_node.meta["val"].shape[1:])
    shape_y = tuple(outs[0].meta["val"].shape)
    if len(shape_y) != 2:
        raise UserError(f"the module returns shape {shape_y}; the sparse runtime needs (batch, classes) scores")
    spec = ModelSpec(input_shape=shape_x, classes=int(shape_y[1]), layers=tuple(layers), arch=arch)
    spec.output_shapes()  # the chain's sizes, checked the runtime's way
    return spec, weights


class _Skip(Exception):
    """An op the runtime cannot run, with why."""


def _fqn(lifted: dict[str, str], node: Any) -> str:
    return lifted.get(getattr(node, "name", ""), getattr(node, "name", "layer"))


def _fold(weights: dict[str, np.ndarray], name: str, gamma: Any, beta: Any, mean: Any, var: Any, eps: float) -> None:
    """Fold eval-mode BatchNorm y = (x - mean) / sqrt(var + eps) * gamma + beta into layer `name`."""
    if mean is None or var is None:
        raise _Skip("BatchNorm without running statistics")
    m = mean.double().numpy()
    scale = 1.0 / np.sqrt(var.double().numpy() + eps)
    if gamma is not None:
        scale = scale * gamma.double().numpy()
    w = weights[f"{name}.weight"].astype(np.float64)
    b = weights.get(f"{name}.bias", np.zeros(w.shape[0])).astype(np.float64)
    weights[f"{name}.weight"] = (w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    shift = beta.double().numpy() if beta is not None else 0.0
    weights[f"{name}.bias"] = ((b - m) * scale + shift).astype(np.float32)


def spec_from_module(module: Any, example_input: Any,
                     arch: str = "exported") -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """Export a copy of `module` (eval mode, pruning masks baked in) with
    `torch.export` at `example_input` and convert it (`spec_from_program`)."""
    import torch

    from prunelab.onnx_export import baked_copy

    if not isinstance(module, torch.nn.Module):
        raise UserError(f"export_module takes a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise UserError("example_input must be one batch tensor, e.g. torch.zeros(1, 1, 28, 28)")
    net = baked_copy(module)
    try:
        program = torch.export.export(net, (example_input,))
    except Exception as exc:  # torch.export raises many types; the user needs the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"torch.export could not capture the module at this example input ({first}); "
                        "the sparse runtime needs a module torch.export can trace") from None
    return spec_from_program(program, arch)

"""Structured pruning of any module: remove whole channels and neurons with
Torch-Pruning's dependency graph, to an exact count.

Torch-Pruning traces the module on an example input and groups the layers
whose channels must go together (a conv, its BatchNorm, the next layer's
input channels, every branch of a residual add, the slices of a concat).
prunelab adds the exact count: a group of n channels loses exactly
round(s * n) of them (`scope="layer"`), or the lowest round(s * N) of the
N channels of all groups together go (`scope="global"`, group-mean
normalised scores), and no group ever loses its last channel.

Layers whose outputs reach the module's output (the classifier) are never
shrunk: that would change what the module returns.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from prunelab.errors import UserError
from prunelab.prune.engine.criteria import Criterion
from prunelab.prune.masks import lowest_k, prune_count

PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)


@dataclass(frozen=True)
class GroupCut:
    """One dependency group: its root layer, channel count, channels removed."""

    root: str
    channels: int
    removed: tuple[int, ...]


def _import_tp() -> Any:
    try:
        import torch_pruning as tp
    except ImportError:
        raise UserError("method='structured' needs Torch-Pruning: pip install torch-pruning") from None
    return tp


def _feeds_output(node: Any) -> bool:
    """True when `node`'s channels reach the graph output without passing
    through another Linear/Conv (which would consume them as inputs)."""
    stack, seen = [node], {id(node)}
    while stack:
        n = stack.pop()
        if not n.outputs:
            return True
        for out in n.outputs:
            if id(out) in seen or isinstance(out.module, PRUNABLE):
                continue
            seen.add(id(out))
            stack.append(out)
    return False


def channels_to_remove(scores: Sequence[np.ndarray], sparsity: float, scope: str) -> list[np.ndarray]:
    """Channel indices to remove per group (scores: one 1-d array per group,
    lowest first), exact counts, >= 1 channel left each: round(s * n) of each
    group's n ("layer"), or the lowest round(s * N) of all N together, skipping
    a group's last channel ("global"). Also used for the hidden units of
    spec models (`prunelab.prune.structured.select_units`)."""
    if scope == "layer":
        return [lowest_k(s, min(prune_count(sparsity, s.size), s.size - 1)) for s in scores]
    sizes = [s.size for s in scores]
    total = sum(sizes)
    k = prune_count(sparsity, total)
    if k > total - len(sizes):
        raise UserError(f"structured sparsity {sparsity} would remove every channel of some layer "
                        f"(at most {(total - len(sizes)) / total:.3f} here); lower the sparsity")
    flat = np.concatenate(scores)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    offsets = np.cumsum([0, *sizes])
    left = np.asarray(sizes)
    picked: list[list[int]] = [[] for _ in sizes]
    for i in np.argsort(flat, kind="stable"):
        if k == 0:
            break
        g = owner[i]
        if left[g] > 1:
            picked[g].append(int(i - offsets[g]))
            left[g] -= 1
            k -= 1
    return [np.asarray(sorted(p), dtype=np.int64) for p in picked]


def prune_channels(
    module: nn.Module,
    sparsity: float,
    *,
    example_input: Any,
    criterion: Criterion,
    scope: str,
    ignore: Sequence[nn.Module],
    seed: int,
) -> list[GroupCut]:
    """Remove channels of `module` in place; returns one `GroupCut` per group.

    example_input: a tensor (or tuple of tensors) the module accepts, used
    once to trace the graph (BatchNorm statistics are left untouched).
    """
    tp = _import_tp()
    names = {m: n for n, m in module.named_modules()}
    dg = _trace(tp, module, example_input)
    outputs = [m for m, node in dg.module2node.items() if isinstance(m, PRUNABLE) and _feeds_output(node)]
    groups = list(dg.get_all_groups(ignored_layers=[*outputs, *ignore], root_module_types=PRUNABLE))
    if not groups:
        raise UserError("nothing to prune structurally: every Linear/Conv layer feeds the output or is ignored")
    scores = [criterion.group_scores(g, seed + i, normalize=scope == "global").numpy() for i, g in enumerate(groups)]
    plan = [(names[g[0].dep.target.module], len(g[0][1]), idxs)
            for g, idxs in zip(groups, channels_to_remove(scores, sparsity, scope), strict=True)]
    with torch.no_grad():
        want = _shapes(module, example_input)
    # Dry run on a copy first: Torch-Pruning follows most graphs, but not all (1.6 mis-maps a concat
    # that is flattened into a Linear); the user's module is only cut once the copy still works.
    trial = copy.deepcopy(module)
    try:
        _cut(tp, trial, plan, example_input)
        with torch.no_grad():
            got = _shapes(trial, example_input)
    except (UserError, RuntimeError) as exc:  # a broken cut fails the next trace or the forward pass
        got = [f"an error: {str(exc).splitlines()[0][:200]}"]
    if got != want:
        raise UserError(f"structured pruning breaks this module (outputs {want} became {got}); it uses a pattern "
                        "Torch-Pruning does not follow, e.g. a concat flattened into a Linear. The module is "
                        "unchanged: ignore= the layers that feed that pattern, or use method='magnitude'")
    _cut(tp, module, plan, example_input)
    return [GroupCut(root=name, channels=channels, removed=tuple(int(i) for i in idxs))
            for name, channels, idxs in plan]


def _cut(tp: Any, module: nn.Module, plan: Sequence[tuple[str, int, np.ndarray]], example_input: Any) -> None:
    """Remove the planned channels (root layer name, channels, indices) from `module`."""
    layers = dict(module.named_modules())
    dg = None
    for name, _, idxs in plan:
        if not idxs.size:
            continue
        # Re-trace before each cut: Torch-Pruning's concat/flatten index maps come from the traced
        # shapes, and a cut in one branch shifts the offsets another group sees.
        dg = _trace(tp, module, example_input)
        root = layers[name]
        dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, idxs.tolist()).prune()


def _trace(tp: Any, module: nn.Module, example_input: Any) -> Any:
    was_training = module.training
    module.eval()  # tracing runs a forward pass: keep BatchNorm running stats as they are
    try:
        return tp.DependencyGraph().build_dependency(module, example_inputs=example_input, verbose=False)
    except Exception as exc:  # Torch-Pruning raises many types while tracing an unsupported module
        raise UserError(f"Torch-Pruning could not trace the module on example_input ({type(exc).__name__}: "
                        f"{exc}); check that module(example_input) runs") from None
    finally:
        module.train(was_training)


def _shapes(module: nn.Module, example_input: Any) -> list[Any]:
    was_training = module.training
    module.eval()
    try:
        out = module(*example_input) if isinstance(example_input, (tuple, list)) else module(example_input)
    finally:
        module.train(was_training)
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__ for o in outs]

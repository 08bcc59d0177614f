"""Spec surgery: remove whole units (Linear rows, conv filters) from a stored model.

A *unit* is one output of a hidden weight layer. Removing unit j of layer L
deletes row/filter j of L (and its bias) and the matching input
columns/channels of the next weight layer N, giving a child spec with
smaller sizes: a smaller dense network, stored as arrays and rebuilt from
JSON like any other model. The removed unit's output is not simply dropped:
with its incoming weights gone it would output the constant act(b_j), so
that constant's contribution is folded into N's bias. When a unit's
incoming weights are already all zero (or its outgoing weights are),
removal is therefore exact (`shrink`).

Torch-free (numpy over a `Model`'s arrays), so that `prunelab.export` can
shrink artifacts without torch. Which units structured pruning removes is
decided in `prunelab.prune.structured`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.models.model import Model
from prunelab.models.spec import Layer, ModelSpec


@dataclass(frozen=True)
class Link:
    """Hidden weight layer `layer` feeding weight layer `next` through `between`
    (relu / maxpool2d / flatten). block: inputs of `next` per unit of `layer`
    (H*W when a conv feeds a Linear through flatten, else 1)."""

    layer: Layer
    next: Layer
    between: tuple[Layer, ...]
    block: int


def links(spec: ModelSpec) -> list[Link]:
    """Every hidden weight layer with the layer it feeds, in order."""
    idx = [i for i, la in enumerate(spec.layers) if la.has_weights]
    out = []
    for a, b in zip(idx, idx[1:], strict=False):
        layer, nxt = spec.layers[a], spec.layers[b]
        between = tuple(spec.layers[a + 1 : b])
        if any(la.kind not in ("relu", "maxpool2d", "flatten") for la in between):  # pragma: no cover
            raise UserError(f"cannot remove units between {layer.name} and {nxt.name}")
        units = unit_count(layer)
        n_in = nxt.args["in_features"] if nxt.kind == "linear" else nxt.args["in_channels"]
        out.append(Link(layer, nxt, between, n_in // units))
    return out


def unit_count(layer: Layer) -> int:
    """Outputs of a weight layer: out_features (Linear) or out_channels (conv)."""
    return int(layer.args["out_features"] if layer.kind == "linear" else layer.args["out_channels"])


def _through(between: Iterable[Layer], v: np.ndarray) -> np.ndarray:
    """The value a constant unit output `v` has after relu/maxpool/flatten."""
    for la in between:
        if la.kind == "relu":
            v = np.maximum(v, 0.0)
    return v


def remove_units(model: Model, keep: Mapping[str, np.ndarray]) -> Model:
    """A child with only the `keep` units of each named hidden layer.

    Removed units' constant outputs act(b_j) are folded into the next
    layer's bias (exact for Linear next layers and unpadded convs). Masks
    are sliced along. Returns a new Model with a smaller spec; meta empty.
    """
    spec = model.spec
    weights = {k: np.array(v, dtype=np.float32, copy=True) for k, v in model.weights.items()}
    masks = {k: np.array(v, dtype=bool, copy=True) for k, v in model.masks.items()}
    layers = {la.name: la for la in spec.layers}
    for link in links(spec):
        name, nxt = link.layer.name, link.next.name
        if name not in keep:
            continue
        units = unit_count(layers[name])
        idx = np.unique(np.asarray(keep[name], dtype=np.int64))
        if idx.size == 0 or idx[0] < 0 or idx[-1] >= units:
            raise UserError(f"layer {name}: keep indices must be in [0, {units}) and not empty")
        gone = np.setdiff1d(np.arange(units), idx)
        wn, bn = f"{nxt}.weight", f"{nxt}.bias"
        w_next = weights[wn].astype(np.float64)
        if gone.size:
            bias = weights.get(f"{name}.bias")
            v = _through(link.between, bias[gone].astype(np.float64)) if bias is not None else np.zeros(gone.size)
            if bn in weights and np.any(v != 0):
                if link.next.kind == "linear":
                    cols = w_next.reshape(w_next.shape[0], -1, link.block)[:, gone, :].sum(axis=2)
                else:
                    cols = w_next[:, gone].sum(axis=(2, 3))
                weights[bn] = (weights[bn].astype(np.float64) + cols @ v).astype(np.float32)
        for key in (f"{name}.weight", f"{name}.bias"):
            if key in weights:
                weights[key] = weights[key][idx]
            if key in masks:
                masks[key] = masks[key][idx]
        for store in (weights, masks):
            if wn in store:
                a = store[wn]
                if link.next.kind == "linear":
                    a = a.reshape(a.shape[0], -1, link.block)[:, idx, :].reshape(a.shape[0], -1)
                else:
                    a = a[:, idx]
                store[wn] = np.ascontiguousarray(a)
        la = layers[name]
        key = "out_features" if la.kind == "linear" else "out_channels"
        layers[name] = replace(la, args={**la.args, key: int(idx.size)})
        nl = layers[nxt]
        if nl.kind == "linear":
            layers[nxt] = replace(nl, args={**nl.args, "in_features": int(idx.size) * link.block})
        else:
            layers[nxt] = replace(nl, args={**nl.args, "in_channels": int(idx.size)})
        # later links must see the updated sizes of `nxt`
        spec = replace(spec, layers=tuple(layers[la.name] for la in spec.layers))
    spec = ModelSpec.from_dict(spec.to_dict())  # validates that the sizes chain
    masks = {k: m for k, m in masks.items() if not m.all()}
    return Model(spec=spec, weights=weights, masks=masks, meta={})


def dead_units(model: Model) -> dict[str, np.ndarray]:
    """layer name -> units whose removal cannot change the output: incoming
    weights all zero (and a foldable constant), or outgoing weights all zero."""
    out = {}
    w = model.weights
    for link in links(model.spec):
        name, nxt = link.layer.name, link.next
        win = np.asarray(w[f"{name}.weight"])
        row_zero = ~win.reshape(win.shape[0], -1).any(axis=1)
        wn = np.asarray(w[f"{nxt.name}.weight"])
        if nxt.kind == "linear":
            col_zero = ~wn.reshape(wn.shape[0], -1, link.block).any(axis=(0, 2))
        else:
            col_zero = ~wn.any(axis=(0, 2, 3))
        bias = w.get(f"{name}.bias")
        const = _through(link.between, np.asarray(bias, dtype=np.float64)) if bias is not None else 0.0
        exact_fold = f"{nxt.name}.bias" in w and (nxt.kind == "linear" or nxt.args.get("padding", 0) == 0)
        foldable = np.full(row_zero.shape, exact_fold) | (np.asarray(const) == 0)
        out[name] = np.flatnonzero(col_zero | (row_zero & foldable))
    return out


def shrink(model: Model) -> Model:
    """Remove every dead unit (repeatedly, since removing one can kill another):
    a smaller dense child predicting what `model` predicts."""
    current = model
    while True:
        dead = {n: d for n, d in dead_units(current).items() if d.size}
        if not dead:
            return current
        keep = {}
        sizes = {la.name: unit_count(la) for la in current.spec.weight_layers()}
        for n, d in dead.items():
            k = np.setdiff1d(np.arange(sizes[n]), d)
            keep[n] = k if k.size else np.array([0])  # a layer keeps at least one unit
        if all(keep[n].size == sizes[n] for n in keep):
            return current
        current = remove_units(current, keep)


def units_removed(parent: ModelSpec, child: ModelSpec) -> dict[str, Any]:
    """Fraction of hidden units removed overall ('fraction') and per layer ('layers')."""
    p = {la.name: unit_count(la) for la in parent.weight_layers()[:-1]}
    c = {la.name: unit_count(la) for la in child.weight_layers()[:-1]}
    total = sum(p.values())
    return {"fraction": (total - sum(c.get(n, 0) for n in p)) / total if total else 0.0,
            "layers": {n: 1.0 - c.get(n, 0) / p[n] for n in p}}

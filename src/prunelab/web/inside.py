"""What the "Look inside" page draws: numbers computed from a model's arrays.

Pure functions over a `Model`'s weights and masks (numpy only): per-layer
sparsity, weight histograms on shared bins (so a parent and its pruned child
can be overlaid), and the first layer's kept connections per input pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prunelab.models.model import Model


def kept(model: Model, name: str) -> np.ndarray:
    """bool array, True where weight `name` is kept (its mask, or non-zero when dense)."""
    mask = model.masks.get(name)
    return mask.astype(bool) if mask is not None else model.weights[name] != 0


def layer_table(model: Model) -> list[dict[str, Any]]:
    """One row per weight layer: name, kind, shape, weights, nonzero, sparsity in [0, 1]."""
    rows = []
    for layer in model.spec.weight_layers():
        name = f"{layer.name}.weight"
        w = model.weights[name]
        nz = int(np.count_nonzero(w))
        rows.append({"layer": layer.name, "kind": layer.kind, "shape": list(w.shape), "weights": int(w.size),
                     "nonzero": nz, "sparsity": 1.0 - nz / w.size if w.size else 0.0})
    return rows


def histograms(model: Model, other: Model | None = None, bins: int = 41) -> dict[str, dict[str, Any]]:
    """Per weight layer: counts of the non-zero weights of `model` (and `other`)
    over the same `bins` equal-width bins spanning +-(99.9th percentile |w|)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in model.spec.weight_layers():
        name = f"{layer.name}.weight"
        mine = model.weights[name][model.weights[name] != 0]
        theirs = None
        if other is not None and name in other.weights:
            ow = other.weights[name]
            theirs = ow[ow != 0]
        both = mine if theirs is None else np.concatenate([mine, theirs])
        lim = float(np.percentile(np.abs(both), 99.9)) if both.size else 1.0
        lim = lim or 1.0
        edges = np.linspace(-lim, lim, bins + 1)
        entry: dict[str, Any] = {"edges": edges.tolist(),
                                 "counts": np.histogram(np.clip(mine, -lim, lim), edges)[0].tolist()}
        if theirs is not None:
            entry["other_counts"] = np.histogram(np.clip(theirs, -lim, lim), edges)[0].tolist()
        out[layer.name] = entry
    return out


def first_layer_maps(model: Model, units: int = 8) -> dict[str, Any]:
    """The first weight layer seen from the input.

    Linear on a flattened (1, H, W) image: `kept_fraction` (H, W) is the
    fraction of units still connected to each pixel (the digit-centred band
    after magnitude pruning), `units` the kept masks of the first `units`
    neurons as (H, W) 0/1 maps; `magnitude` (H, W) and `unit_magnitudes`
    are the mean |w| per pixel and each unit's |w|, scaled to [0, 1] (what a
    dense model shows). Conv: `kernels` are the first filters' kept masks
    (k, k), input channel 0, and `kernel_magnitudes` their |w| scaled.
    `dense` is True when the layer has no zero weight.
    """
    layers = model.spec.weight_layers()
    if not layers:
        return {"kind": None}
    first = layers[0]
    name = f"{first.name}.weight"
    keep = kept(model, name)
    c, *hw = model.spec.input_shape
    if first.kind == "linear" and len(hw) == 2 and keep.shape[1] == c * hw[0] * hw[1]:
        h, w = hw
        per_pixel = keep.reshape(keep.shape[0], c, h, w)[:, 0]  # (units, H, W)
        mag = np.abs(model.weights[name]).reshape(keep.shape[0], c, h, w)[:, 0]  # (units, H, W)
        return {"kind": "linear", "layer": first.name, "height": h, "width": w, "dense": bool(keep.all()),
                "kept_fraction": per_pixel.mean(axis=0).round(4).tolist(),
                "units": [m.astype(np.uint8).tolist() for m in per_pixel[:units]],
                "magnitude": _scaled(mag.mean(axis=0)).tolist(),
                "unit_magnitudes": [_scaled(m).tolist() for m in mag[:units]]}
    if first.kind == "conv2d":
        mag = np.abs(model.weights[name])
        return {"kind": "conv2d", "layer": first.name, "dense": bool(keep.all()),
                "kernels": [k[0].astype(np.uint8).tolist() for k in keep[: units * 2]],
                "kernel_magnitudes": [_scaled(k[0]).tolist() for k in mag[: units * 2]],
                "kept_fraction_per_filter": keep.reshape(keep.shape[0], -1).mean(axis=1).round(4).tolist()}
    return {"kind": first.kind, "layer": first.name}


def _scaled(a: np.ndarray) -> np.ndarray:
    """Non-negative array divided by its maximum (all zeros stay zeros), rounded for JSON."""
    top = float(a.max()) if a.size else 0.0
    return (a / top if top > 0 else a).round(4)

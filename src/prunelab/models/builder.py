"""Spec -> torch module, and back. The only place a network is constructed."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from prunelab.models.spec import ModelSpec


def build(spec: ModelSpec) -> nn.Sequential:
    """A fresh `nn.Sequential` whose submodule names are the spec's layer names."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in spec.layers:
        a = layer.args
        if layer.kind == "flatten":
            modules[layer.name] = nn.Flatten()
        elif layer.kind == "relu":
            modules[layer.name] = nn.ReLU()
        elif layer.kind == "linear":
            modules[layer.name] = nn.Linear(a["in_features"], a["out_features"], bias=a["bias"])
        elif layer.kind == "conv2d":
            modules[layer.name] = nn.Conv2d(a["in_channels"], a["out_channels"], a["kernel_size"],
                                            stride=a["stride"], padding=a["padding"], bias=a["bias"])
        elif layer.kind == "maxpool2d":
            modules[layer.name] = nn.MaxPool2d(a["kernel_size"], stride=a["stride"] or a["kernel_size"])
        else:  # pragma: no cover - spec validation rejects unknown kinds
            raise AssertionError(layer.kind)
    return nn.Sequential(modules)


def load_weights(module: nn.Sequential, weights: dict[str, np.ndarray]) -> nn.Sequential:
    """Copy numpy weights (keys like 'fc1.weight') into `module`, strictly."""
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    module.load_state_dict(state, strict=True)
    return module


def get_weights(module: nn.Module) -> dict[str, np.ndarray]:
    """float32 numpy copies of every parameter and buffer."""
    return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in module.state_dict().items()}

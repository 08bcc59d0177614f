"""`Model`: a spec, its weights and (for pruned models) its masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from prunelab.models.spec import ModelSpec

if TYPE_CHECKING:
    from torch import nn


class RegistryRecord:
    """What every stored model has beside its arrays: `meta`, the registry record (id, name,
    parent, metrics, ...), and the id and name read from it."""

    meta: dict[str, Any]

    @property
    def id(self) -> str | None:
        return self.meta.get("id")

    @property
    def name(self) -> str | None:
        return self.meta.get("name")


@dataclass
class Model(RegistryRecord):
    """A network as data. `weights` maps 'fc1.weight' etc. to float32 arrays;
    `masks` maps weight names to bool arrays (True = kept), empty when dense;
    `meta` holds the registry record (id, name, parent, metrics, ...)."""

    spec: ModelSpec
    weights: dict[str, np.ndarray]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_torch(self) -> nn.Sequential:
        """Rebuild the torch module from the spec and load the weights."""
        from prunelab.models.builder import build, load_weights

        return load_weights(build(self.spec), self.weights)

    def weight_names(self) -> list[str]:
        """Names of the prunable weight tensors ('fc1.weight', 'conv1.weight', ...)."""
        return [f"{layer.name}.weight" for layer in self.spec.weight_layers()]

    def nonzero(self) -> int:
        """Non-zero parameters, weights and biases."""
        return int(sum(np.count_nonzero(v) for v in self.weights.values()))

    def params(self) -> int:
        return self.spec.num_params()

    def sparsity(self) -> float:
        """Fraction of prunable weights that are exactly zero."""
        names = self.weight_names()
        total = sum(self.weights[n].size for n in names)
        zeros = sum(self.weights[n].size - np.count_nonzero(self.weights[n]) for n in names)
        return zeros / total if total else 0.0

    def __repr__(self) -> str:
        return (f"Model(id={self.id!r}, arch={self.spec.arch!r}, params={self.params()}, "
                f"sparsity={self.sparsity():.3f})")

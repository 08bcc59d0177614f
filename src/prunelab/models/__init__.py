"""Model specs (pure JSON, no torch), presets, and the spec -> torch builder.

`prunelab.models.build` and friends import torch lazily, so reading a spec
never needs it.
"""

from typing import Any

from prunelab.models.model import Model
from prunelab.models.presets import cnn_spec, create_spec, list_presets, mlp_spec
from prunelab.models.spec import Layer, ModelSpec


def build(spec: ModelSpec) -> Any:
    """Build a `torch.nn.Sequential` from a spec (imports torch)."""
    from prunelab.models.builder import build as _build

    return _build(spec)


__all__ = ["Layer", "Model", "ModelSpec", "build", "cnn_spec", "create_spec", "list_presets", "mlp_spec"]

"""Pruning: magnitude masks (global or per layer), structured removal of
neurons and filters, one-shot / gradual / lottery schedules, fine-tuning
with the zeros held at zero, and per-layer sensitivity scans.

    import prunelab
    result = prunelab.prune("my-model", sparsity=0.9)      # PruneResult, child stored
    result = prunelab.prune(model, sparsity=0.5, method="structured")
    masks = prunelab.prune.global_magnitude_masks(weights, 0.9)

The module is callable: `prunelab.prune(...)` is `prunelab.prune.api.prune`.
"""

from prunelab.callable_module import make_callable
from prunelab.prune.api import (
    METHODS,
    SCOPES,
    PruneResult,
    compute_masks,
    list_methods,
    list_scopes,
    prune,
    train_config,
)
from prunelab.prune.finetune import DEFAULT_RECIPE, Recipe
from prunelab.prune.masks import (
    check_sparsity,
    global_magnitude_masks,
    layer_magnitude_masks,
    magnitude_mask,
    mask_sparsity,
    per_layer_sparsity,
    random_masks,
)
from prunelab.prune.schedules import gradual_sparsity, list_schedules, lottery_rounds
from prunelab.prune.structured import remove_units, select_units, shrink, unit_scores

__all__ = [
    "DEFAULT_RECIPE", "METHODS", "SCOPES", "PruneResult", "Recipe", "check_sparsity", "compute_masks",
    "global_magnitude_masks", "gradual_sparsity", "layer_magnitude_masks", "list_methods", "list_schedules",
    "list_scopes", "lottery_rounds", "magnitude_mask", "mask_sparsity", "per_layer_sparsity", "prune",
    "random_masks", "remove_units", "select_units", "shrink", "train_config", "unit_scores",
]

make_callable(__name__, prune)

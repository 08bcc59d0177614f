"""Pruning: one engine over any torch module (`prunelab.prune.engine`:
criteria, schedules, `prune_module`), and its client for prunelab's own
stored models, `prunelab.prune(...)`: prune, fine-tune with the zeros held
at zero, store the child; structured removal of neurons and filters; per-layer
sensitivity scans; the exact-count mask functions underneath.

    import prunelab
    result = prunelab.prune("my-model", sparsity=0.9)      # PruneResult, child stored
    result = prunelab.prune(model, sparsity=0.5, method="structured")
    result = prunelab.prune(model, PruneSettings(sparsity=0.95, schedule="oneshot"))
    masks = prunelab.prune.global_magnitude_masks(weights, 0.9)

The module is callable: `prunelab.prune(...)` is `prunelab.prune.api.prune`.
"""

from prunelab.callable_module import make_callable
from prunelab.prune.api import (
    METHODS,
    SCOPES,
    PruneResult,
    PruneSettings,
    list_methods,
    list_scopes,
    prune,
    train_config,
)
from prunelab.prune.engine import list_criteria, list_schedules
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
from prunelab.prune.schedules import gradual_sparsity, lottery_rounds
from prunelab.prune.structured import remove_units, select_units, shrink

__all__ = [
    "DEFAULT_RECIPE", "METHODS", "SCOPES", "PruneResult", "PruneSettings", "Recipe", "check_sparsity",
    "global_magnitude_masks", "gradual_sparsity", "layer_magnitude_masks", "list_criteria", "list_methods",
    "list_schedules", "list_scopes", "lottery_rounds", "magnitude_mask", "mask_sparsity", "per_layer_sparsity",
    "prune", "random_masks", "remove_units", "select_units", "shrink", "train_config",
]

make_callable(__name__, prune)

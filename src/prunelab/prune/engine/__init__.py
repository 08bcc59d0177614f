"""The pruning engine over any `torch.nn.Module`: criteria (what goes first),
schedules (when), and `prune_module` (how: masks held by parametrization, or
whole channels removed with Torch-Pruning's dependency graph).

    from prunelab.prune.engine import prune_module, Gradual, list_criteria, list_schedules
    pruning = prune_module(net, 0.9, schedule=Gradual(steps=1000))

`prunelab.prune_module` is `prunelab.prune.engine.prune_module`.
"""

from prunelab.prune.engine.criteria import CRITERIA, Criterion, get_criterion, list_criteria
from prunelab.prune.engine.pruning import (
    METHODS,
    SCOPES,
    LayerRow,
    PruneSettings,
    Pruning,
    Report,
    WeightMask,
    list_methods,
    list_scopes,
    prune_module,
    target_layers,
)
from prunelab.prune.engine.schedules import (
    SCHEDULES,
    Gradual,
    Lottery,
    OneShot,
    Schedule,
    list_schedules,
    make_schedule,
)

__all__ = [
    "CRITERIA", "METHODS", "SCHEDULES", "SCOPES", "Criterion", "Gradual", "LayerRow", "Lottery", "OneShot",
    "PruneSettings", "Pruning", "Report", "Schedule", "WeightMask", "get_criterion", "list_criteria",
    "list_methods", "list_schedules", "list_scopes", "make_schedule", "prune_module", "target_layers",
]

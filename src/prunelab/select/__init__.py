"""Training-data pruning: keep the samples that matter, honour the budget, measure it.

    import prunelab
    sel = prunelab.select(X, y, keep=0.3)              # Selection(indices, scores, report)
    sel = prunelab.select(X, y)                        # auto: picks strategy and fraction
    prunelab.select.list_strategies()                  # ['random', 'cluster', ...]
    res = prunelab.select.Reservoir(cap=10_000)        # incremental store under a cap
    X_k, y_k = prunelab.select.ClusterSelector(keep=0.3).fit_resample(X, y)
"""

from prunelab.callable_module import make_callable
from prunelab.select.api import Selection, select
from prunelab.select.auto import AutoSelector, profile
from prunelab.select.base import BaseSelector
from prunelab.select.budget import Floor, allocate, apply_floors, requested_count
from prunelab.select.report import SelectionReport
from prunelab.select.reservoir import Reservoir
from prunelab.select.selectors import (
    ClusterSelector,
    CondenseSelector,
    DiversitySelector,
    ImportanceSelector,
    PrototypeSelector,
    RandomSelector,
)
from prunelab.select.strategies import describe_strategies, get_selector, list_strategies

__all__ = [
    "AutoSelector", "BaseSelector", "ClusterSelector", "CondenseSelector", "DiversitySelector", "Floor",
    "ImportanceSelector", "PrototypeSelector", "RandomSelector", "Reservoir", "Selection", "SelectionReport",
    "allocate", "apply_floors", "describe_strategies", "get_selector", "list_strategies", "profile",
    "requested_count", "select",
]

make_callable(__name__, select)

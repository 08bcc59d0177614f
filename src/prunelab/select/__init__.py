"""Training-data pruning: keep the samples that matter, honour the budget, measure it.

    import prunelab
    sel = prunelab.select(X, y, keep=0.3)              # Selection(indices, scores, report)
    sel = prunelab.select(X, y)                        # auto: measures, picks strategy and fraction
    prunelab.select.list_strategies()                  # ['random', 'cluster', ...]
    res = prunelab.select.Reservoir(cap=10_000)        # incremental store under a cap
    X_k, y_k = prunelab.select.ClusterSelector(keep=0.3).fit_resample(X, y)
    res = prunelab.select.select_dataset("shards/", target="label", keep=0.3, engine="local",
                                         out="kept/")  # Parquet shards beyond memory (local or ray)

One module per strategy; each registers itself with `@register` (`prunelab.select.base`).
Importing them here, in this order, fills the registry and fixes the order of `list_strategies()`.
"""

from prunelab.callable_module import make_callable
from prunelab.select.base import (
    BaseSelector,
    ParameterError,
    describe_strategies,
    get_selector,
    list_strategies,
    plain_strategies,
    register,
)

from prunelab.select.random import RandomSelector  # isort: skip  (registration order)
from prunelab.select.cluster import ClusterSelector  # isort: skip
from prunelab.select.importance import ImportanceSelector  # isort: skip
from prunelab.select.diversity import DiversitySelector  # isort: skip
from prunelab.select.condense import CondenseSelector  # isort: skip
from prunelab.select.prototype import PrototypeSelector  # isort: skip
from prunelab.select.auto import AutoSelector  # isort: skip
from prunelab.select.api import Selection, select  # noqa: E402
from prunelab.select.budget import Floor, allocate, apply_floors, requested_count  # noqa: E402
from prunelab.select.engines import list_engines, select_dataset  # noqa: E402
from prunelab.select.report import SelectionReport  # noqa: E402
from prunelab.select.reservoir import Reservoir  # noqa: E402
from prunelab.select.search import SearchResult  # noqa: E402
from prunelab.select.streaming import PassBar, StreamReport, StreamResult  # noqa: E402

__all__ = [
    "AutoSelector", "BaseSelector", "ClusterSelector", "CondenseSelector", "DiversitySelector", "Floor",
    "ImportanceSelector", "ParameterError", "PrototypeSelector", "RandomSelector", "Reservoir", "SearchResult",
    "Selection", "SelectionReport", "allocate", "apply_floors", "describe_strategies", "get_selector",
    "list_strategies", "plain_strategies", "register", "requested_count", "select",
    "list_engines", "select_dataset", "PassBar", "StreamReport", "StreamResult",
]

make_callable(__name__, select)

"""Let a module also be called as a function.

The public API promises both `prunelab.prune(model, sparsity=0.9)` and
`prunelab.prune.global_masks(...)`; `prunelab.select(X, y)` and
`prunelab.select.Reservoir(...)`. A module whose class defines `__call__`
gives both without a second name for the same thing.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, func: Callable[..., Any]) -> None:
    """Make `module_name` callable: calling it calls `func`."""

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule

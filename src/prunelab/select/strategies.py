"""Registry of selection strategies: pick by name, list them, build a selector."""

from __future__ import annotations

from typing import Any

from prunelab.errors import UserError
from prunelab.select.auto import AutoSelector
from prunelab.select.base import BaseSelector
from prunelab.select.selectors import (
    ClusterSelector,
    CondenseSelector,
    DiversitySelector,
    ImportanceSelector,
    PrototypeSelector,
    RandomSelector,
)

STRATEGIES: dict[str, type[BaseSelector]] = {
    cls.name: cls
    for cls in (RandomSelector, ClusterSelector, ImportanceSelector, DiversitySelector, CondenseSelector,
                PrototypeSelector, AutoSelector)
}


def list_strategies() -> list[str]:
    """Names accepted by `select(strategy=...)` and `prunelab select --strategy`."""
    return list(STRATEGIES)


def describe_strategies() -> dict[str, str]:
    return {name: cls.description for name, cls in STRATEGIES.items()}


def get_selector(name: str, **params: Any) -> BaseSelector:
    """A selector instance for strategy `name` with the given parameters."""
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    valid = cls._param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise UserError(f"unknown option(s) {unknown} for strategy {name!r}; valid: {valid}")
    return cls(**params)

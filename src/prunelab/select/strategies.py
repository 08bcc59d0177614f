"""The strategy registry by name (filled by `@register` in `prunelab.select.base`).

`STRATEGIES` is the live registry mapping (name -> selector class); `list_strategies()`,
`describe_strategies()` and `get_selector()` read it. Kept as a module so
`from prunelab.select.strategies import get_selector` keeps working.
"""

from prunelab.select.base import REGISTRY as STRATEGIES
from prunelab.select.base import describe_strategies, get_selector, list_strategies, plain_strategies

__all__ = ["STRATEGIES", "describe_strategies", "get_selector", "list_strategies", "plain_strategies"]

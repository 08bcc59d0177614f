"""Pass/fail thresholds. They are arguments with documented defaults; the code never widens them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from prunelab.errors import UserError


@dataclass(frozen=True)
class Thresholds:
    """max_loss_pp: accuracy loss (percentage points vs the full store) allowed for `auto` and for
    the best strategy at keep 30% (default 2.0). min_auto_saving: memory fraction `auto` must save
    on run-history stores (default 0.30; on records with no redundancy it may save less).
    min_gain_pp: best non-random strategy over random at keep 30% on history stores (0.5).
    mnist_min_gain_pp: best non-random subset over the random subset at keep 30% (0.3).
    mnist_max_loss_pp: loss of the best subset at keep 50% vs the full set (0.3).
    min_keep: samples a 100-sample homogeneous store must keep (20)."""

    max_loss_pp: float = 2.0
    min_auto_saving: float = 0.30
    min_gain_pp: float = 0.5
    mnist_min_gain_pp: float = 0.3
    mnist_max_loss_pp: float = 0.3
    min_keep: int = 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"threshold {name} must be a finite number >= 0, got {value!r}")
        if self.min_auto_saving > 1:
            raise UserError(f"min_auto_saving is a fraction in [0, 1], got {self.min_auto_saving}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Check:
    """One pass/fail verdict: `value` compared against `threshold` (see `rule`)."""

    name: str
    scope: str
    passed: bool
    value: float | None
    threshold: float | None
    rule: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"Check({mark} {self.name} [{self.scope}] {self.detail})"

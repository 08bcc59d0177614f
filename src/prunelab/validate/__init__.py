"""Scenario runner for training-data pruning: measures, judges against thresholds, can fail.

    import prunelab
    res = prunelab.validate(suite="workloads", seeds=5, out="validate-out")
    res.passed, res.failed, res.checks, res.scenarios

Suites: `workloads` (synthetic cost-model stores, k-NN downstream; see workload_suite) and
`mnist` (the same MLP trained on subsets at keep 10/20/30/50/100%; see mnist_suite).
Thresholds are `Thresholds` arguments; the runner never widens them.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunelab.callable_module import make_callable
from prunelab.errors import UserError
from prunelab.validate.checks import Check, Thresholds

SUITES = ("workloads", "mnist", "all")


@dataclass
class ValidationResult:
    suites: list[str]
    scenarios: list[dict[str, Any]]
    checks: list[Check]
    seconds: float
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"suites": self.suites, "scenarios": self.scenarios, "checks": [c.to_dict() for c in self.checks],
                "passed": self.passed, "failed": self.failed, "seconds": self.seconds, "paths": self.paths}

    def __repr__(self) -> str:
        return (f"ValidationResult(suites={self.suites}, scenarios={len(self.scenarios)}, passed={self.passed}, "
                f"failed={self.failed}, seconds={self.seconds:.0f})")


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} python {platform.python_version()}"


def validate(suite: str = "all", out: str | Path | None = None, seeds: int = 5, quick: bool = False,
             thresholds: Thresholds | None = None, mnist_seeds: int = 1, mnist_epochs: int | None = None,
             threads: int = 1, progress: Any = None) -> ValidationResult:
    """Run `suite` ('workloads', 'mnist' or 'all'); write JSON/Markdown/HTML + plots to `out` if given.

    seeds: workloads seeds (default 5); mnist_seeds: MLP seeds (default 1); quick: small sizes,
    2 seeds at most, and a 2,000-image / 1-epoch mnist run; threads: torch threads for mnist."""
    if suite not in SUITES:
        raise UserError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UserError(f"seeds must be a positive integer, got {seeds!r}")
    if mnist_seeds < 1:
        raise UserError(f"mnist_seeds must be a positive integer, got {mnist_seeds!r}")
    th = thresholds or Thresholds()
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} exists and is not a folder; give a folder for the report")
    if quick:
        seeds = min(seeds, 2)
    t0 = time.perf_counter()
    suites = ["workloads", "mnist"] if suite == "all" else [suite]
    scenarios: list[dict[str, Any]] = []
    checks: list[Check] = []
    if "workloads" in suites:
        from prunelab.validate import workload_suite

        rows, cks = workload_suite.run(seeds=seeds, quick=quick, thresholds=th, progress=progress)
        scenarios += rows
        checks += cks
    if "mnist" in suites:
        from prunelab.validate import mnist_suite

        rows, cks = mnist_suite.run(seeds=mnist_seeds, quick=quick, thresholds=th, epochs=mnist_epochs,
                                    threads=threads, progress=progress)
        scenarios += rows
        checks += cks
    result = ValidationResult(suites=suites, scenarios=scenarios, checks=checks,
                              seconds=time.perf_counter() - t0)
    if out is not None:
        from prunelab.validate import report

        payload = {**result.to_dict(), "seeds": seeds, "quick": quick, "thresholds": th.to_dict(),
                   "machine": machine()}
        result.paths = report.write(payload, Path(out))
    return result


__all__ = ["Check", "SUITES", "Thresholds", "ValidationResult", "validate"]

make_callable(__name__, validate)

"""Verdicts. Two kinds, listed apart so that a pass count cannot hide checks that cannot fail:

- **invariants**: what the library guarantees by construction (exact counts, the `min_keep`
  floor, no empty class, valid indices). They fail only on a bug.
- **quality**: measured claims that the data can refute (auto at 30 % against random and the
  full store, auto's own fraction: loss and memory saved). Thresholds are arguments with the
  issue's Done-when values as defaults; the code never widens them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prunelab.errors import UserError

INVARIANT, QUALITY = "invariant", "quality"


@dataclass(frozen=True)
class Thresholds:
    """max_loss_pp: points (accuracy %, or R^2 x 100) auto may lose against the full store, at
    the fixed fraction and at its own (default 1.0). min_gain_pp: auto at the fixed fraction
    minus random at it (default 0.5; negative allows auto below random). min_auto_saving: share
    of the fitted predictor's bytes auto's own fraction must save on stores redundant by
    construction (0.5). min_kept_nonredundant: share of rows auto's own fraction must keep on
    stores with no repeats (0.9: "keeps everything, or nearly"). mnist_max_loss_pp: MLP points
    auto at 30 % may lose against the full set (1.0). min_keep: the floor checked (20)."""

    max_loss_pp: float = 1.0
    min_gain_pp: float = 0.5
    min_auto_saving: float = 0.5
    min_kept_nonredundant: float = 0.9
    mnist_max_loss_pp: float = 1.0
    min_keep: int = 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"threshold {name} must be a finite number, got {value!r}")
            if name != "min_gain_pp" and value < 0:
                raise UserError(f"threshold {name} must be >= 0, got {value!r}")
        for name in ("min_auto_saving", "min_kept_nonredundant"):
            if getattr(self, name) > 1:
                raise UserError(f"{name} is a fraction in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One verdict: `value` compared against `threshold` by `rule`; kind 'invariant' or 'quality'."""

    name: str
    scope: str
    passed: bool
    value: float | None
    threshold: float | None
    rule: str
    detail: str = ""
    kind: str = QUALITY

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"Check({mark} {self.kind} {self.name} [{self.scope}] {self.detail})"


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def quality_checks(rows: list[dict[str, Any]], th: Thresholds) -> list[Check]:
    """Per (family, dataset, task): means over seeds (module docstring)."""
    out: list[Check] = []
    by: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("quality", True) and r["family"] != "mnist":
            by[(r["family"], r["dataset"], r["task"])][r["method"]].append(r)
    for (family, dataset, task), m in by.items():
        scope = f"{family} {dataset} {task}"
        if not m.get("auto") or not m.get("random"):
            continue
        seeds = len({r["seed"] for r in m["auto"]})
        unit = "pp" if "%" in m["auto"][0]["metric"] else "points"
        full, rnd, auto = _mean(m["auto"], "score_full"), _mean(m["random"], "score"), _mean(m["auto"], "score")
        keep = m["auto"][0]["keep"]
        chosen = sorted({r["strategy"] for r in m["auto"]})
        gain = auto - rnd
        out.append(Check("auto_keep_vs_random", scope, gain >= th.min_gain_pp, gain, th.min_gain_pp,
                         f"auto at keep {keep:.0%} - random at keep {keep:.0%} ({unit}) >= threshold",
                         f"auto {auto:.2f} vs random {rnd:.2f} (mean of {seeds} seeds; auto ran {', '.join(chosen)})"))
        loss = full - auto
        if m["auto"][0]["redundant"] is not False:  # no 30 % of independent records can match them all
            out.append(Check("auto_keep_vs_full", scope, loss <= th.max_loss_pp, loss, th.max_loss_pp,
                             f"full - auto at keep {keep:.0%} ({unit}) <= threshold",
                             f"auto {auto:.2f} vs full {full:.2f}"))
        af = m.get("auto-fraction")
        if not af:
            continue
        score, kept = _mean(af, "score"), _mean(af, "kept_fraction")
        saving, rows_saving = _mean(af, "model_saving"), _mean(af, "rows_saving")
        loss = full - score
        out.append(Check("auto_fraction_loss", scope, loss <= th.max_loss_pp, loss, th.max_loss_pp,
                         f"full - auto at its own fraction ({unit}) <= threshold",
                         f"auto kept {kept:.1%}: {score:.2f} vs full {full:.2f}"))
        redundant = af[0]["redundant"]
        if redundant is True:
            out.append(Check("auto_fraction_saving", scope, saving >= th.min_auto_saving, saving,
                             th.min_auto_saving,
                             "fitted predictor's bytes saved by auto's own fraction >= threshold (store with repeats)",
                             f"predictor {int(_mean(af, 'model_bytes_full'))} -> {int(_mean(af, 'model_bytes'))} B, "
                             f"rows saved {rows_saving:.1%}"))
        elif redundant is False:
            out.append(Check("auto_fraction_keeps_nonredundant", scope, kept >= th.min_kept_nonredundant, kept,
                             th.min_kept_nonredundant,
                             "share of rows auto keeps on a store with no repeats >= threshold",
                             f"kept {kept:.1%}, predictor saved {saving:.1%}"))
    return out


def invariant_checks(rows: list[dict[str, Any]], th: Thresholds) -> list[Check]:
    """Per family, over every selection made."""
    out: list[Check] = []
    fams = sorted({r["family"] for r in rows if "requested_count" in r})
    for fam in fams:
        sel = [r for r in rows if r["family"] == fam and "requested_count" in r and r["method"] != "best-on-validation"]
        if not sel:
            continue
        exact = [r for r in sel if not r["floors"]]
        wrong = [r for r in exact if r["kept_count"] != r["requested_count"]]
        out.append(Check("exact_counts", fam, not wrong, float(len(wrong)), 0.0,
                         "kept == requested wherever no floor applied",
                         f"{len(exact)} selections without a floor, {len(wrong)} off", INVARIANT))
        low = [r for r in sel if r["kept_count"] < min(th.min_keep, r["size"])]
        out.append(Check("min_keep_floor", fam, not low, float(min(r["kept_count"] for r in sel)),
                         float(th.min_keep), "every selection keeps >= min(min_keep, rows)",
                         f"{len(sel)} selections, {len(low)} below", INVARIANT))
        cls = [r for r in sel if r.get("classes_total")]
        empty = [r for r in cls if r["classes_kept"] < r["classes_total"]]
        if cls:
            out.append(Check("no_empty_class", fam, not empty, float(len(empty)), 0.0,
                             "every class of the training part keeps at least one sample",
                             f"{len(cls)} classification selections, {len(empty)} lost a class", INVARIANT))
        bad = [r for r in sel if not r.get("indices_ok", True)]
        out.append(Check("valid_indices", fam, not bad, float(len(bad)), 0.0,
                         "kept indices are sorted, unique and inside the store",
                         f"{len(sel)} selections, {len(bad)} invalid", INVARIANT))
    return out


def checks(rows: list[dict[str, Any]], th: Thresholds) -> list[Check]:
    """Invariants first, then quality checks, of the k-NN families' rows."""
    return invariant_checks(rows, th) + quality_checks(rows, th)

"""`auto`: measure which strategy and fraction keep the downstream score, then apply them.

Nothing in the decision is a constant fitted to a data set: `auto` holds out part of the store
it is given (by default unseen groups of near duplicates and repeats of known ones, weighed
equally), runs every registered plain strategy, `random` included, over a grid of fractions on
the training parts, fits the downstream estimator on what each keeps and scores it on the
held-out parts (`prunelab.select.search` has the procedure). At each fraction the strategy is
the one with the best mean held-out score, `random` included. Without `keep` / `keep_count`
the fraction is fail-safe: the smallest whose upper (1 - `alpha`) confidence bound on the loss
against the full store, paired per held-out workload, stays within `tolerance`; when none
does, everything is kept. With a budget it picks only the strategy. The choice is then
applied to the whole store.
`report_.decisions["search"]` holds the measured table, the full store's score, the cost and
the reason.
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from prunelab.select.base import (
    REGISTRY,
    BaseSelector,
    ParameterError,
    get_selector,
    plain_strategies,
    register,
    seed_of,
    standardize,
    warm_imports,
)
from prunelab.select.report import measure
from prunelab.select.search import SearchResult, SearchSettings, run_search
from prunelab.select.strata import check_inputs, detect_task, make_strata

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
"""The default grid: fractions a user would ask for, spaced about evenly on a log scale from 5%
(below it the `min_keep` floor dominates small stores) to everything. Not fitted to any data."""


@register
class AutoSelector(BaseSelector):
    """Measures every plain strategy against random on held-out parts of the store and applies the choice.

    keep / keep_count: a budget (then only the strategy is chosen), or None for both (the
    fraction is chosen too). estimator: the downstream scikit-learn estimator to score (default
    k-NN with `n_neighbors`, classifier or regressor by task). scoring: None (the estimator's
    `score`: accuracy for classifiers, R^2 for regressors), a scikit-learn scoring name, or
    'snapped_accuracy' for regression targets that are choices from a grid (the best n_jobs /
    chunksize of a run history): the share of held-out rows whose prediction, moved to the
    nearest target value of the training part, is right in every output.
    tolerance: the score drop allowed against the full store, in score units (0.01 = 1 pp of
    accuracy). fractions: the grid; strategies: names to try (default every plain one). folds x
    repeats: stratified splits; holdout: 'mixed' (default: unseen groups and repeats of known ones,
    weighed equally), 'rows' or 'groups'; alpha: level of the loss's confidence bound (0.05). max_rows:
    rows the search runs on (a stratified sample above). max_seconds: the search's time budget.
    group_radius: near-duplicate radius in units of the median pair distance (the definition of
    "the same workload").
    """

    name = "auto"
    description = ("measures every strategy against random on held-out workloads, picks strategy and fraction, "
                   "explains why")
    searches = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSelector._parameter_constraints,
        "estimator": [HasMethods(["fit", "score"]), None],
        "scoring": [str, callable, None],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "tolerance": [Interval(Real, 0, None, closed="left")],
        "fractions": [tuple, list],
        "strategies": [tuple, list, None],
        "folds": [Interval(Integral, 2, None, closed="left")],
        "repeats": [Interval(Integral, 1, None, closed="left")],
        "max_rows": [Interval(Integral, 10, None, closed="left")],
        "max_seconds": [Interval(Real, 0, None, closed="neither")],
        "group_radius": [Interval(Real, 0, None, closed="left")],
        "holdout": [StrOptions({"mixed", "rows", "groups"})],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "callback": [callable, None],
    }

    def __init__(self, keep: float | None = None, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True,
                 estimator: Any = None, scoring: Any = None, n_neighbors: int = 5, tolerance: float = 0.01,
                 fractions: tuple[float, ...] = FRACTIONS, strategies: tuple[str, ...] | None = None,
                 folds: int = 3, repeats: int = 2, max_rows: int = 4000, max_seconds: float = 60.0,
                 group_radius: float = 0.1, holdout: str = "mixed", alpha: float = 0.05,
                 callback: Any = None) -> None:
        super().__init__(keep, keep_count=keep_count, min_keep=min_keep, task=task, random_state=random_state,
                         trace_memory=trace_memory)
        self.estimator = estimator
        self.scoring = scoring
        self.n_neighbors = n_neighbors
        self.tolerance = tolerance
        self.fractions = fractions
        self.strategies = strategies
        self.folds = folds
        self.repeats = repeats
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.group_radius = group_radius
        self.holdout = holdout
        self.alpha = alpha
        self.callback = callback

    def _candidates(self) -> tuple[str, ...]:
        plain = plain_strategies()
        if self.strategies is None:
            return tuple(plain)
        names = tuple(self.strategies)
        bad = [s for s in names if s not in plain]
        if bad or not names:
            raise ParameterError(f"The 'strategies' parameter of AutoSelector must name strategies from "
                                 f"{plain}. Got {list(names)!r} instead.")
        return names

    def _grid(self) -> tuple[float, ...]:
        fr = tuple(self.fractions)
        ok = all(isinstance(f, (int, float, np.number)) and not isinstance(f, bool) and 0 < f <= 1 for f in fr)
        if not fr or not ok:
            raise ParameterError(f"The 'fractions' parameter of AutoSelector must be fractions in (0, 1]. "
                                 f"Got {self.fractions!r} instead.")
        return tuple(float(f) for f in fr)

    def fit(self, X: Any, y: Any = None, *, timestamps: Any = None, scores: Any = None) -> AutoSelector:
        """Search, then select with the chosen strategy and fraction; sets `indices_`, `scores_`,
        `report_`, `search_` (a SearchResult), `selector_` (the fitted chosen selector)."""
        self._check_params()
        candidates, grid = self._candidates(), self._grid()
        warm_imports()
        seed = seed_of(self.random_state)
        with measure(self.trace_memory) as m:
            Xa, ya, ts, sc = check_inputs(X, y, timestamps, scores)
            n = len(Xa)
            task = detect_task(ya, self.task)
            given = self.keep if self.keep_count is None else min(1.0, self.keep_count / n)
            result = self._search(Xa, ya, ts, sc, task, seed, candidates, grid, given)
            strategy = result.strategy
            if strategy is None:  # keep everything, or a budget that could not be measured
                strategy = "random"
            keep = None if self.keep_count is not None else (given if given is not None else result.fraction or 1.0)
            inner = get_selector(strategy, keep=keep, keep_count=self.keep_count, min_keep=self.min_keep,
                                 task=task, random_state=self.random_state, trace_memory=False)
            inner.fit(Xa, ya, timestamps=ts, scores=sc)
        self.search_ = result
        self.selector_ = inner
        self.indices_ = inner.indices_
        self.scores_ = inner.scores_
        self.n_features_in_ = inner.n_features_in_
        report = inner.report_
        label = result.strategy if result.strategy is not None else ("all" if given is None else "random")
        report.strategy = f"auto:{label}"
        report.seconds = m.seconds
        report.peak_bytes = m.peak_bytes
        report.decisions = {"strategy": result.strategy, "keep": keep, "keep_count": self.keep_count,
                            "reason": result.reason, "search": result.to_dict(), **report.decisions}
        report.params = {**self._report_params(), "inner": report.params}
        self.report_ = report
        return self

    def _search(self, X: np.ndarray, y: np.ndarray | None, ts: np.ndarray | None, sc: np.ndarray | None,
                task: str, seed: int, candidates: tuple[str, ...], grid: tuple[float, ...],
                given: float | None) -> SearchResult:
        settings = SearchSettings(fractions=grid, strategies=candidates, folds=int(self.folds),
                                  repeats=int(self.repeats), tolerance=float(self.tolerance),
                                  max_rows=int(self.max_rows), max_seconds=float(self.max_seconds),
                                  group_radius=float(self.group_radius), holdout=self.holdout,
                                  alpha=float(self.alpha),
                                  n_neighbors=int(self.n_neighbors),
                                  min_keep=int(self.min_keep), seed=seed)
        if y is None or task == "none":
            what = "kept everything" if given is None else f"used random (the unbiased baseline) at {given:.0%}"
            return SearchResult(strategy=None, fraction=None if given is not None else 1.0,
                                reason=f"no labels or targets, so no downstream score to measure: {what}",
                                metric="none", estimator="none")
        if given is not None and given >= 1.0:
            return SearchResult(strategy="random", fraction=1.0, reason="the budget keeps every row",
                                metric="none", estimator="none")
        strata = make_strata(y, task, len(X))
        Z = standardize(X)

        def make(name: str, fraction: float) -> BaseSelector:
            return REGISTRY[name](keep=fraction, min_keep=self.min_keep, task=task, random_state=seed,
                                  trace_memory=False)

        result = run_search(X, y, Z, strata.codes, task, settings, make, self.estimator, self.scoring,
                            given=given, timestamps=ts, scores=sc, callback=self.callback)
        if result.strategy is None and given is not None:  # measured nothing at the budget
            return replace(result, reason=result.reason + f": used random (the unbiased baseline) at {given:.0%}")
        return result

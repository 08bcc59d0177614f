"""The measurement behind `auto`: which strategy and fraction keep the downstream score.

On the store it is given (or a stratified sample of at most `max_rows` rows of it):

1. **Groups.** Rows are grouped into near-duplicate groups, the definition of "the same
   workload": identical rows, and rows linked by a chain of k-NN edges shorter than
   `group_radius` (0.1) x the median distance between random pairs of rows, on z-scored
   features. A tenth of the typical distance between two rows is a definition (repeats of one
   workload differ by jitter, two workloads by much more), not a value fitted to any data set.
   The report gives their number and the largest.
2. **Splits.** `repeats` x `folds` stratified splits (scikit-learn's `StratifiedGroupKFold` on
   classes or target-quantile strata, a different shuffle per repeat). `holdout="rows"`
   (default): rows are held out at random, so the held-out part mixes new runs of workloads the
   training part has seen with workloads it has not, in the store's own proportions (a held-out
   row whose group has no other row is an unseen workload; the share of such rows estimates the
   chance that the next run is a new workload, Good-Turing's N1/n). `holdout="groups"`: whole
   groups are held out, so only unseen workloads are scored (for deployments that never see a
   known workload again); with heavy-tailed repeat counts one group can fill a fold, which
   makes this estimate noisy.
3. **Grid.** On each training part: the downstream estimator fitted on all of it (the full
   store's score), then every strategy at every fraction of the grid, from the largest down;
   the estimator (default: scikit-learn k-NN with the caller's `n_neighbors`, classifier or
   regressor; any scikit-learn estimator can be given) is fitted on the kept rows and scored
   on the held-out part with `estimator.score` (accuracy for classifiers, R^2 averaged over
   target columns for regressors) or with a scikit-learn `scoring` name. A fraction whose kept
   count equals the previous one's on every split (the `min_keep` / class floors) reuses its
   scores instead of refitting identical selections.
4. **Decision.** Scores are compared paired, split by split: d = score - full store's score.
   Without a budget: walk the grid from the largest fraction down while the best strategy's
   mean d minus one standard error of d stays >= -`tolerance`; the last fraction reached and
   that strategy win. The standard error is there because the walk takes the best of several
   strategies at each fraction, which on noisy folds is optimistic (a store too small to
   measure a 1 pp difference keeps everything rather than pruning on luck); a fraction that
   fails ends the walk (a smaller fraction passing after a failing one is treated as noise of
   the folds, not searched for). With a budget: the strategy with the best mean score at that
   fraction. Ties go to the earlier strategy in the registry.
   A store with fewer rows than 1 / `tolerance` (100 at 1 pp) is not searched without a
   budget: one held-out row moves an accuracy by more than the tolerance, so everything is kept.
5. **Cost.** The search stops when `max_seconds` have passed (checked before every fit) and
   decides on what it measured; the report records seconds, fits and whether it stopped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunelab.progress import Callback, Event
from prunelab.select.budget import allocate, apply_floors, requested_count
from prunelab.select.geometry import near_groups, pair_median


@dataclass(frozen=True)
class SearchSettings:
    """What the search measures. fractions: grid in (0, 1); strategies: names to try; folds x
    repeats grouped splits; tolerance: allowed drop of the mean held-out score (score units);
    max_rows: rows the search runs on (a stratified sample above); max_seconds: time budget;
    group_radius: near-duplicate radius in units of the median pair distance."""

    fractions: tuple[float, ...]
    strategies: tuple[str, ...]
    folds: int = 3
    repeats: int = 2
    tolerance: float = 0.01
    max_rows: int = 4000
    max_seconds: float = 60.0
    group_radius: float = 0.1
    holdout: str = "rows"
    n_neighbors: int = 5
    min_keep: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Cell:
    """Held-out scores of one strategy at one fraction, one per split (same splits as the full store)."""

    strategy: str
    fraction: float
    scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

    def versus(self, full: tuple[float, ...]) -> tuple[float, float]:
        """(mean, standard error) of the paired differences score - full store's score over the splits."""
        d = np.asarray(self.scores) - np.asarray(full)
        se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        return float(d.mean()), se

    def lower(self, full: tuple[float, ...]) -> float:
        """The paired difference to the full store minus one standard error."""
        mean, se = self.versus(full)
        return mean - se

    def to_dict(self, full: tuple[float, ...]) -> dict[str, Any]:
        vs, se = self.versus(full) if full else (float("nan"), float("nan"))
        return {"strategy": self.strategy, "fraction": self.fraction, "mean": self.mean, "std": self.std,
                "folds": len(self.scores), "vs_full": vs, "vs_full_se": se}


@dataclass(frozen=True)
class SearchResult:
    """The measured table, the choice and why. strategy None = keep everything (or not measured)."""

    strategy: str | None
    fraction: float | None
    reason: str
    metric: str
    estimator: str
    full: tuple[float, ...] = ()
    cells: tuple[Cell, ...] = ()
    rows: int = 0
    groups: int = 0
    largest_group: int = 0
    splits: int = 0
    seconds: float = 0.0
    selector_fits: int = 0
    estimator_fits: int = 0
    stopped: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def full_mean(self) -> float | None:
        return float(np.mean(self.full)) if self.full else None

    def to_dict(self) -> dict[str, Any]:
        full = self.full_mean
        return {
            "strategy": self.strategy, "fraction": self.fraction, "reason": self.reason,
            "metric": self.metric, "estimator": self.estimator,
            "full": None if full is None else {"mean": full, "std": float(np.std(self.full)),
                                               "folds": len(self.full)},
            "table": [c.to_dict(self.full) for c in self.cells],
            "rows": self.rows, "groups": self.groups, "largest_group": self.largest_group,
            "splits": self.splits,
            "cost": {"seconds": self.seconds, "selector_fits": self.selector_fits,
                     "estimator_fits": self.estimator_fits, "stopped_by_time_budget": self.stopped},
            "settings": self.settings,
        }


def workload_groups(Z: np.ndarray, radius: float, seed: int) -> np.ndarray:
    """Near-duplicate group per row of standardized Z (n, d); see the module docstring."""
    scale = pair_median(Z, np.random.default_rng(seed))
    return near_groups(Z, radius * scale)


def search_sample(codes: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices: all rows, or `max_rows` of them split over the strata (codes (n,)) by
    largest remainder (at least one per stratum) and drawn uniformly inside each."""
    n = len(codes)
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    sizes = np.bincount(codes)
    quotas = allocate(sizes, max(max_rows, int((sizes > 0).sum())), lower=1)
    picked = [rng.choice(np.flatnonzero(codes == s), size=int(q), replace=False)
              for s, q in enumerate(quotas) if q > 0]
    return np.sort(np.concatenate(picked))


def grouped_splits(codes: np.ndarray, groups: np.ndarray | None, folds: int, repeats: int,
                   seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs: `repeats` runs of k-fold stratified on `codes` with
    k = min(folds, groups, largest stratum), whole groups held out (StratifiedGroupKFold), or
    single rows when `groups` is None (StratifiedKFold). Empty when k < 2."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n_units = len(codes) if groups is None else len(np.unique(groups))
    k = min(folds, n_units, int(np.bincount(codes).max()))  # scikit-learn needs a class with >= k rows
    if k < 2:
        return []
    out: list[tuple[np.ndarray, np.ndarray]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
        for r in range(repeats):
            cv: Any
            if groups is None:
                cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + r)
            else:
                cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + r)
            for train, test in cv.split(np.zeros(len(codes)), codes, groups):
                if len(train) and len(test):
                    out.append((train, test))
    return out


def kept_count(n: int, fraction: float, min_keep: int, n_classes: int) -> int:
    """Rows a selector keeps of n at `fraction` after the floors (min_keep, one per class)."""
    return apply_floors(requested_count(n, fraction), n, min_keep, n_classes)[0]


def default_estimator(task: str, n_neighbors: int) -> Any:
    """The downstream model measured by default: scikit-learn k-NN (uniform weights)."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    if task == "classification":
        return KNeighborsClassifier(n_neighbors=n_neighbors)
    return KNeighborsRegressor(n_neighbors=n_neighbors)


def fit_score(estimator: Any, X: np.ndarray, y: np.ndarray, train: np.ndarray, X_test: np.ndarray,
              y_test: np.ndarray, scorer: Callable[..., float] | None) -> float:
    """Held-out score of a clone of `estimator` fitted on rows `train`; a k-NN whose k exceeds
    the rows it is given uses all of them."""
    from sklearn.base import clone

    est = clone(estimator)
    params = est.get_params(deep=False)
    if "n_neighbors" in params and isinstance(params["n_neighbors"], (int, np.integer)):
        est.set_params(n_neighbors=max(1, min(int(params["n_neighbors"]), len(train))))
    est.fit(X[train], y[train])
    return float(scorer(est, X_test, y_test) if scorer is not None else est.score(X_test, y_test))


def run_search(X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, task: str,
               settings: SearchSettings, make_selector: Callable[[str, float], Any], estimator: Any,
               scoring: Any = None, given: float | None = None, timestamps: np.ndarray | None = None,
               scores: np.ndarray | None = None, callback: Callback | None = None) -> SearchResult:
    """Measure the grid (or, with `given`, every strategy at that one fraction) and decide.

    X (n, d) features as given, y (n,) or (n, t), Z standardized X, codes (n,) strata;
    make_selector(name, fraction) -> an unfitted selector; estimator: the downstream model
    (None: k-NN); scoring: None (estimator.score) or a scikit-learn scoring name / callable;
    callback: progress events (phase 'search', one step per fit; total_steps is the whole
    grid, an upper bound since the walk may stop early)."""
    from sklearn.metrics import check_scoring

    t0 = time.perf_counter()
    deadline = t0 + settings.max_seconds
    est = estimator if estimator is not None else default_estimator(task, settings.n_neighbors)
    scorer = None if scoring is None else check_scoring(est, scoring=scoring)
    metric = (scoring if isinstance(scoring, str) else getattr(scoring, "__name__", "scorer")) if scoring \
        else ("accuracy" if estimator is None and task == "classification"
              else "r2" if estimator is None else f"{type(est).__name__}.score")
    described = {"fractions": list(settings.fractions), "strategies": list(settings.strategies),
                 "folds": settings.folds, "repeats": settings.repeats, "tolerance": settings.tolerance,
                 "max_rows": settings.max_rows, "max_seconds": settings.max_seconds,
                 "group_radius": settings.group_radius, "holdout": settings.holdout}

    rows = search_sample(codes, settings.max_rows, settings.seed)
    Xs, ys, Zs, cs = X[rows], y[rows], Z[rows], codes[rows]
    ts = None if timestamps is None else timestamps[rows]
    sc = None if scores is None else scores[rows]
    groups = workload_groups(Zs, settings.group_radius, settings.seed)
    sizes = np.bincount(groups)
    splits = grouped_splits(cs, groups if settings.holdout == "groups" else None, settings.folds,
                            settings.repeats, settings.seed)
    n_groups, largest = int((sizes > 0).sum()), int(sizes.max())
    if not splits:
        return SearchResult(strategy=None, fraction=None, metric=metric, estimator=repr(est), rows=len(rows),
                            groups=n_groups, largest_group=largest,
                            reason=f"{len(rows)} rows ({n_groups} groups of near duplicates) "
                            "are too few to hold out a part, so nothing was measured", settings=described,
                            seconds=time.perf_counter() - t0)
    if given is None and settings.tolerance > 0 and len(rows) * settings.tolerance < 1:
        # each repeat holds out every row once: with fewer than 1 / tolerance rows, one held-out
        # row moves an accuracy by more than the tolerance, so "within tolerance" cannot be shown
        return SearchResult(strategy=None, fraction=1.0, metric=metric, estimator=repr(est), rows=len(rows),
                            groups=n_groups, largest_group=largest, splits=len(splits), settings=described,
                            reason=f"{len(rows)} rows are fewer than 1 / tolerance = {1 / settings.tolerance:g}: one "
                            f"held-out row moves the score by more than {settings.tolerance:g}, so a loss within "
                            "tolerance cannot be measured: kept everything", seconds=time.perf_counter() - t0)

    classes = task == "classification"
    fits = {"selector": 0, "estimator": 0}
    stopped = False

    def in_time() -> bool:
        nonlocal stopped
        if time.perf_counter() > deadline:
            stopped = True
        return not stopped

    grid = [given] if given is not None else sorted({f for f in settings.fractions if 0 < f < 1}, reverse=True)
    cb = callback or (lambda e: None)
    total = len(splits) * (1 + len(grid) * len(settings.strategies))

    def fitted(what: str) -> None:
        done = fits["estimator"]
        cb(Event("batch", phase="search", step=done, total_steps=total, seconds=time.perf_counter() - t0,
                 message=f"{what} ({settings.max_seconds:g} s budget)"))

    cb(Event("start", phase="search", total_steps=total))
    full: list[float] = []
    for train, test in splits:
        if not in_time():
            break
        full.append(fit_score(est, Xs, ys, train, Xs[test], ys[test], scorer))
        fits["estimator"] += 1
        fitted("full store")
    if len(full) < len(splits):
        full = []
    cells: list[Cell] = []
    reached: list[float] = []  # fractions whose best strategy stayed within tolerance, in walk order
    previous: tuple[tuple[int, ...], list[Cell]] | None = None
    for frac in grid if full else []:
        at_f: list[Cell] = []
        counts = tuple(kept_count(len(train), frac, settings.min_keep,
                                  len(np.unique(cs[train])) if classes else 0) for train, _ in splits)
        if previous is not None and previous[0] == counts:
            # the floors give the same kept count on every split: the same selections, not refitted
            at_f = [Cell(c.strategy, frac, c.scores) for c in previous[1]]
        names = settings.strategies if not at_f else ()
        for name in names:
            fold_scores: list[float] = []
            for train, test in splits:
                if not in_time():
                    break
                sel = make_selector(name, frac)
                sel.fit(Xs[train], ys[train], timestamps=None if ts is None else ts[train],
                        scores=None if sc is None else sc[train])
                fits["selector"] += 1
                kept = train[sel.indices_]
                fold_scores.append(fit_score(est, Xs, ys, kept, Xs[test], ys[test], scorer))
                fits["estimator"] += 1
                fitted(f"{name} at {frac:.0%}")
            if len(fold_scores) == len(splits):
                at_f.append(Cell(name, frac, tuple(fold_scores)))
            if stopped:
                break
        cells += at_f
        previous = (counts, at_f)
        if len(at_f) < len(settings.strategies):  # the time budget cut this fraction short
            break
        if given is None:
            if max(c.lower(tuple(full)) for c in at_f) < -settings.tolerance:
                break
            reached.append(frac)
        if stopped:
            break
    # the walk may stop before the grid's end: the bar ends full at the fits that ran
    cb(Event("end", phase="search", step=fits["estimator"], total_steps=fits["estimator"]))
    complete = {f for f in grid if sum(c.fraction == f for c in cells) == len(settings.strategies)}
    strategy, fraction, reason = decide(full, cells, reached, grid, given, settings, metric, complete)
    if stopped:
        reason += (f"; the time budget (max_seconds={settings.max_seconds:g}) ran out after "
                   f"{fits['selector']} selector fits, so the rest of the grid was not measured")
    return SearchResult(strategy=strategy, fraction=fraction, reason=reason, metric=metric, estimator=repr(est),
                        full=tuple(full), cells=tuple(cells), rows=len(rows), groups=n_groups,
                        largest_group=largest, splits=len(splits), seconds=time.perf_counter() - t0,
                        selector_fits=fits["selector"], estimator_fits=fits["estimator"], stopped=stopped,
                        settings=described)


def decide(full: list[float], cells: list[Cell], reached: list[float], grid: list[float], given: float | None,
           settings: SearchSettings, metric: str,
           complete: set[float] | None = None) -> tuple[str | None, float | None, str]:
    """(strategy or None, fraction or None, one-sentence reason) from what was measured;
    `complete`: fractions where every strategy was measured (default: all with a cell)."""
    complete = {c.fraction for c in cells} if complete is None else complete
    folds = f"{len(full)} held-out folds of " + ("random rows" if settings.holdout == "rows" else "whole groups")
    if not full:
        return None, None, "the full store could not be scored within the time budget: nothing was measured"
    ref = float(np.mean(full))
    tol = settings.tolerance

    def best(frac: float, key: Callable[[Cell], float] = lambda c: c.lower(tuple(full))) -> Cell | None:
        at = [c for c in cells if c.fraction == frac]
        return max(at, key=key) if at else None  # max keeps the first of equal keys


    if given is not None:
        top = best(given, key=lambda c: c.mean)
        if top is None:
            return None, given, f"no strategy could be measured at {given:.0%}"
        partial = "" if given in complete else " (not every strategy was measured)"
        others = sorted((c for c in cells if c.fraction == given and c is not top), key=lambda c: -c.mean)
        runner = f"; next {others[0].strategy} {others[0].mean:.4f}" if others else ""
        return (top.strategy, given, f"at the requested {given:.0%}, {top.strategy} scored best "
                f"({top.mean:.4f} {metric} against {ref:.4f} for the full store, mean of {folds}{runner}){partial}")
    if not reached and grid and grid[0] not in complete:
        return (None, 1.0, f"the time budget ran out before every strategy was measured at {grid[0]:.0%} "
                f"(full store {ref:.4f} {metric}, mean of {folds}): kept everything")
    if not reached:
        first = grid[0] if grid else None
        top = best(first) if first is not None else None
        detail = (f" (best at {first:.0%}: {top.strategy} {top.mean:.4f})" if top is not None and first is not None
                  else "")
        return (None, 1.0, f"no strategy at the largest fraction tried came within {tol:g} of the full store's "
                f"{ref:.4f} {metric} by one standard error{detail}, mean of {folds}: kept everything")
    frac = reached[-1]
    top = best(frac)
    assert top is not None
    smaller = [f for f in grid if f < frac]
    if smaller:
        nxt = best(smaller[0])
        why_stop = (f"and at {smaller[0]:.0%} the best ({nxt.strategy} {nxt.mean:.4f}) was not"
                    if nxt is not None and smaller[0] in complete
                    else f"and {smaller[0]:.0%} was not measured for every strategy")
    else:
        why_stop = "the smallest fraction tried"
    vs, se = top.versus(tuple(full))
    return (top.strategy, frac, f"{top.strategy} at {frac:.0%} scored {top.mean:.4f} {metric}, {vs:+.4f} +- {se:.4f} "
            f"against the full store's {ref:.4f} (mean of {folds}), within {tol:g} by one standard error, {why_stop}")

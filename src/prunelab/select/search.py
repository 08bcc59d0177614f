"""The measurement behind `auto`: which strategy and fraction keep the downstream score.

On the store it is given (or a stratified sample of at most `max_rows` rows of it):

1. **Groups.** Rows are grouped into near-duplicate groups, the definition of "the same
   workload": identical rows, and rows linked by a chain of k-NN edges shorter than
   `group_radius` (0.1) x the median distance between random pairs of rows, on z-scored
   features. A tenth of the typical distance between two rows is a definition (repeats of one
   workload differ by jitter, two workloads by much more), not a value fitted to any data set.
   The report gives their number and the largest.
2. **Splits.** `repeats` x `folds` splits, each with a training part of about (1 - 1/folds) of
   the rows and a held-out part of the rest. `holdout="mixed"` (default): half of the held-out
   budget is whole groups (2 x folds folds of groups, stratified on each group's most common
   class or target-quantile stratum: workloads the training part never saw), the other half
   single rows of groups that keep at least one row in the training part (new runs of known
   workloads); a split's score is the mean of the two parts' scores, so seen and unseen
   workloads weigh the same whatever the store's repeat counts (a store without repeats has
   only the unseen part). In the unseen part every workload counts once (sample weight 1 / its
   rows): a workload never seen is one workload, however often it was recorded; otherwise the
   one heavy group a fold happens to hold out decides the fold's score. `holdout="rows"`: rows
   held out at random (`StratifiedKFold`), which on a store where a few workloads recur
   hundreds of times scores almost only repeats, so pruning that forgets rare workloads looks
   free. `holdout="groups"`: only unseen workloads,
   each counting once (for deployments that never see a known workload again).
3. **Grid.** On each training part: the downstream estimator fitted on all of it (the full
   store's score), then every strategy at every fraction of the grid, from the largest down;
   `random` is always among them (it is the baseline every other strategy must beat). The
   estimator (default: scikit-learn k-NN with the caller's `n_neighbors`, classifier or
   regressor; any scikit-learn estimator can be given) is fitted on the kept rows and scored
   on the held-out part with `estimator.score` (accuracy for classifiers, R^2 averaged over
   target columns for regressors), with `SNAPPED` (regression targets that are choices from a
   grid: the share of rows whose prediction, snapped to the training part's target values, is
   right in every column; it decomposes like accuracy) or with a scikit-learn `scoring` name.
   A fraction whose kept
   count equals the previous one's on every split (the `min_keep` / class floors) reuses its
   scores instead of refitting identical selections.
4. **Decision.** One strategy rule for both modes, and a fail-safe walk for the fraction.
   - *Strategy at a fraction*: the best mean held-out score, `random` included (ties go to
     random); the report gives its paired gain over random +- the corrected resampled standard
     error of Nadeau & Bengio (2003), se = sd(d) * sqrt(1/J + n_held_out/n_train) over the J
     splits. Chosen among five rules on development seeds 0-9 (benchmarks/select_rules.py,
     `select:rules`): a test against random (random unless beaten by t x se, Bonferroni over
     the strategies) met ">= random + 0.5 pp and >= full - 1 pp" at 30% in 38 of 140 cells,
     the best mean in 67, and no data set x task lost more than 0.5 pp on its 10-seed mean.
   - *Fraction* (no budget): walk the grid from the largest fraction down while the strategy
     chosen there loses at most `tolerance` against the full store at the upper one-sided
     (1 - alpha) confidence bound (alpha 0.05, the textbook level). The loss is paired per
     held-out unit: each unseen workload and each held-out run of a known one is one unit,
     its difference averaged over the repeats that held it out, and the bound is mean +
     t x sd / sqrt(units) per kind of unit, the two kinds weighed equally (`pooled_loss`).
     It counts the noise of which workloads are held out, not that of the training parts;
     with a scorer that does not decompose over rows (a `scoring` name, an estimator without
     accuracy / R^2 `score`) the bound falls back to the per-split corrected se above. The
     last fraction reached wins; a fraction that fails ends the walk (a fixed-sequence test:
     no fraction is taken because it passed by luck after a smaller one failed). When the
     largest fraction fails, everything is kept and the reason says so.
   - How the walk was chosen: on development seeds 0-4 (histories, scikit-learn and workload
     families; benchmarks/select_fraction_rules.py, `select:fraction-rules`), eight walks
     (strategy by the test against random or by the best mean; fraction by the per-split
     bound, the per-unit bound, the point estimate, or the point estimate with no detectable
     loss) replayed on the same measured tables; the criterion, fixed before the numbers were
     seen, was the fraction checks of `prunelab validate` passed. Best mean + per-unit bound
     passed 28 of 40 (the walk used before, test + per-split bound, 27) and kept 80% of the
     rows on average instead of 97%, with one data set x task losing more than 1 pp (2.1);
     the point estimates passed 20-26 and lost more than 1 pp on 7-9 of 22.
   - With a budget: only the strategy at that fraction.
   A store with fewer rows than 1 / `tolerance` (100 at 1 pp) is not searched without a
   budget: one held-out row moves an accuracy by more than the tolerance, so everything is kept.
5. **Cost.** The search stops when `max_seconds` have passed (checked before every fit) and
   decides on what it measured; the report records seconds, fits and whether it stopped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.progress import Callback, Event
from prunelab.select.budget import allocate, apply_floors, requested_count
from prunelab.select.geometry import near_groups, pair_median


@dataclass(frozen=True)
class SearchSettings:
    """What the search measures. fractions: grid in (0, 1); strategies: names to try (random is
    added when missing: it is the baseline); folds x repeats splits; tolerance: allowed drop of
    the mean held-out score (score units); alpha: level of the loss's one-sided bound
    (module docstring); max_rows: rows the search runs on (a stratified sample above); max_seconds:
    time budget; group_radius: near-duplicate radius in units of the median pair distance;
    holdout: 'mixed' | 'rows' | 'groups'."""

    fractions: tuple[float, ...]
    strategies: tuple[str, ...]
    folds: int = 3
    repeats: int = 2
    tolerance: float = 0.01
    alpha: float = 0.05
    max_rows: int = 4000
    max_seconds: float = 60.0
    group_radius: float = 0.1
    holdout: str = "mixed"
    n_neighbors: int = 5
    min_keep: int = 20
    seed: int = 0


HOLDOUTS = ("mixed", "rows", "groups")
BASELINE = "random"


def paired(d: np.ndarray, held_out_ratio: float) -> tuple[float, float]:
    """(mean, corrected standard error) of paired differences d (J,) over J resampled splits;
    held_out_ratio: mean n_held_out / n_train of the splits. Nadeau & Bengio (2003):
    se = sd(d) * sqrt(1/J + held_out_ratio); inf when J < 2 (no noise estimate)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return (float(d.mean()) if len(d) else float("nan")), float("inf")
    return float(d.mean()), float(np.std(d, ddof=1) * np.sqrt(1.0 / len(d) + held_out_ratio))


def critical(alpha: float, splits: int) -> float:
    """One-sided Student-t quantile t(1 - alpha, splits - 1); inf with fewer than 2 splits."""
    from scipy.stats import t

    return float(t.ppf(1.0 - alpha, splits - 1)) if splits >= 2 else float("inf")


Units = tuple[tuple[np.ndarray, np.ndarray], ...]
"""One split's held-out parts, each as (unit ids (u,), score contributions (u,)): the part's score
is the mean of its contributions. A unit is a held-out workload (a whole group, in the parts that
count every group once) or a held-out row."""


def pooled_loss(full: tuple[Units, ...], other: tuple[Units, ...]) -> tuple[float, float, int]:
    """(mean, standard error, units) of the loss full - other over the held-out units of every
    split, paired unit by unit (module docstring, step 4). Per part kind (unseen workloads, known
    rows): each unit's differences are averaged over the splits that held it out (repeats hold a
    unit out more than once: one unit, one value), then mean and sd / sqrt(units); the parts
    weigh equally, as in a split's score."""
    kinds = max(len(u) for u in full)
    means, variances, counts = [], [], []
    for k in range(kinds):
        ids = [a[k][0] for a in full if len(a) > k]
        diff = [a[k][1] - b[k][1] for a, b in zip(full, other, strict=True) if len(a) > k]
        uniq, inverse = np.unique(np.concatenate(ids), return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate(diff), minlength=len(uniq))
        per_unit = total / np.bincount(inverse, minlength=len(uniq))
        means.append(float(per_unit.mean()))
        variances.append(float(per_unit.var(ddof=1)) / len(per_unit) if len(per_unit) > 1 else float("inf"))
        counts.append(len(per_unit))
    return float(np.mean(means)), float(np.sqrt(np.sum(variances))) / kinds, int(min(counts))


def contributions(kind: str, y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None,
                  ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit ids (u,), contributions (u,)) of one held-out part whose mean is the part's score as
    scikit-learn's `score` gives it with these sample weights: accuracy for kind 'classifier'
    (exact match of every output), R^2 averaged over outputs for 'regressor'. y, pred (m,) or
    (m, t); weights (m,) or None; ids (m,) the unit of each row."""
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    uniq, inverse = np.unique(ids, return_inverse=True)
    units = len(uniq)

    def per_unit(values: np.ndarray) -> np.ndarray:  # units x sum over the unit's rows of w * values
        return units * np.bincount(inverse, weights=w * values, minlength=units)

    if kind == "classifier":
        right = (pred == y) if y.ndim == 1 else (pred == y).all(axis=1)
        return uniq, per_unit(right.astype(float)) / w.sum()
    Y = y.reshape(len(y), -1).astype(float)
    P = pred.reshape(len(y), -1).astype(float)
    out = np.zeros(units)
    for t in range(Y.shape[1]):
        err = (Y[:, t] - P[:, t]) ** 2
        sst = float(np.sum(w * (Y[:, t] - np.average(Y[:, t], weights=w)) ** 2))
        if sst > 0:
            out += 1.0 - per_unit(err) / sst
        else:  # scikit-learn's convention for a constant target: 1 if predicted exactly, else 0
            out += 1.0 if float(np.sum(w * err)) == 0 else 0.0
    return uniq, out / Y.shape[1]


SNAPPED = "snapped_accuracy"  # a scoring name of prunelab's own, beside scikit-learn's


def snap(pred: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each output of `pred` (m,) or (m, t) moved to the nearest value that its column takes in
    `targets` (n,) or (n, t) (ties to the smaller): a regression prediction read as a choice
    from the values seen in training, e.g. log2 n_jobs from {0, 1, 2, 3}."""
    P = pred.reshape(len(pred), -1).astype(float)
    T = targets.reshape(len(targets), -1)
    out = np.empty_like(P)
    for j in range(P.shape[1]):
        values = np.unique(T[:, j]).astype(float)
        hi = np.clip(np.searchsorted(values, P[:, j]), 0, len(values) - 1)
        lo = np.clip(hi - 1, 0, len(values) - 1)
        out[:, j] = np.where(np.abs(P[:, j] - values[lo]) <= np.abs(values[hi] - P[:, j]), values[lo], values[hi])
    return out.reshape(pred.shape)


@dataclass(frozen=True)
class Cell:
    """Held-out scores of one strategy at one fraction, one per split (same splits as the full
    store); units: per split, the per-unit contributions behind each score (empty when the scorer
    does not decompose over held-out rows)."""

    strategy: str
    fraction: float
    scores: tuple[float, ...]
    units: tuple[Units, ...] = field(default=(), compare=False, repr=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

    def versus(self, other: tuple[float, ...], held_out_ratio: float = 0.0) -> tuple[float, float]:
        """(mean, corrected standard error) of the paired differences score - other's score."""
        return paired(np.asarray(self.scores) - np.asarray(other), held_out_ratio)

    def loss(self, full: tuple[float, ...], held_out_ratio: float,
             full_units: tuple[Units, ...] = ()) -> tuple[float, float, int]:
        """(mean, standard error, sample size) of the loss full - score: paired per held-out unit
        when both sides carry units (`pooled_loss`), else per split with the corrected se."""
        if full_units and len(self.units) == len(full_units):
            return pooled_loss(full_units, self.units)
        mean, se = paired(np.asarray(full) - np.asarray(self.scores), held_out_ratio)
        return mean, se, len(self.scores)

    def loss_bound(self, full: tuple[float, ...], held_out_ratio: float, alpha: float,
                   full_units: tuple[Units, ...] = ()) -> float:
        """Upper one-sided (1 - alpha) confidence bound of the loss full - score."""
        mean, se, n = self.loss(full, held_out_ratio, full_units)
        return mean + critical(alpha, n) * se if se > 0 else mean

    def to_dict(self, full: tuple[float, ...], held_out_ratio: float = 0.0) -> dict[str, Any]:
        vs, se = self.versus(full, held_out_ratio) if full else (float("nan"), float("nan"))
        return {"strategy": self.strategy, "fraction": self.fraction, "mean": self.mean, "std": self.std,
                "folds": len(self.scores), "vs_full": vs, "vs_full_se": se}


@dataclass(frozen=True)
class Pick:
    """The strategy chosen at one fraction: `cell`, and against random the paired mean gain, its
    corrected standard error and the bar it had to clear (t x se); gain/bar nan for random itself."""

    cell: Cell
    gain: float
    se: float
    bar: float
    runner: Cell | None = None
    rule: str = "test"  # "test": random unless beaten beyond the noise; "best": best mean

    def describe(self, metric: str) -> str:
        if self.rule == "best" and not (self.cell.strategy == BASELINE and self.runner is None):
            if self.cell.strategy == BASELINE:
                runner = self.runner.strategy if self.runner is not None else "?"
                return (f"random, the best mean held-out score (next {runner} "
                        f"{self.gain:+.4f} +- {self.se:.4f} {metric} against it)")
            if np.isnan(self.gain):
                return f"{self.cell.strategy}, the best mean held-out score (random not measured)"
            return (f"{self.cell.strategy}, the best mean held-out score ({self.gain:+.4f} +- {self.se:.4f} "
                    f"{metric} over random)")
        if self.cell.strategy == BASELINE:
            if self.runner is None:
                return "random (nothing else measured)"
            return (f"random: no strategy beat it by more than the fold noise (best {self.runner.strategy} "
                    f"{self.gain:+.4f} {metric}, needed > {self.bar:.4f})")
        return f"{self.cell.strategy}, which beat random by {self.gain:+.4f} {metric} (> {self.bar:.4f} needed)"


def pick(at_f: list[Cell], alpha: float, held_out_ratio: float) -> Pick | None:
    """Random unless another strategy beats it on the paired splits: the walk's strategy rule
    before `best` replaced it (module docstring, step 4); kept for the rule comparisons."""
    if not at_f:
        return None
    base = next((c for c in at_f if c.strategy == BASELINE), None)
    others = [c for c in at_f if c is not base]
    if base is None:  # random could not be measured: the best mean, flagged by a nan bar
        top = max(at_f, key=lambda c: c.mean)
        return Pick(top, float("nan"), float("nan"), float("nan"))
    if not others:
        return Pick(base, float("nan"), float("nan"), float("nan"))
    t = critical(alpha / len(others), len(base.scores))
    tested = []
    for c in others:
        gain, se = c.versus(base.scores, held_out_ratio)
        tested.append((c, gain, se, t * se if se > 0 else 0.0))
    winners = [x for x in tested if x[1] > x[3] and x[1] > 0]
    if winners:
        c, gain, se, bar = max(winners, key=lambda x: x[1])  # max keeps the first of equal gains
        return Pick(c, gain, se, bar)
    c, gain, se, bar = max(tested, key=lambda x: x[1] - x[3])
    return Pick(base, gain, se, bar, runner=c)


def best(at_f: list[Cell], held_out_ratio: float) -> Pick | None:
    """The best mean held-out score at one fraction, random included, ties to random (module
    docstring, step 4: the rule with a budget); gain / se: the pick's (or, when random wins, the
    runner-up's) paired difference to random."""
    if not at_f:
        return None
    base = next((c for c in at_f if c.strategy == BASELINE), None)
    top = max(at_f, key=lambda c: (c.mean, c is base))
    if base is None:
        return Pick(top, float("nan"), float("nan"), float("nan"), rule="best")
    others = [c for c in at_f if c is not base]
    if top is not base:
        gain, se = top.versus(base.scores, held_out_ratio)
        return Pick(top, gain, se, float("nan"), rule="best")
    if not others:
        return Pick(base, float("nan"), float("nan"), float("nan"), rule="best")
    runner = max(others, key=lambda c: c.mean)
    gain, se = runner.versus(base.scores, held_out_ratio)
    return Pick(base, gain, se, float("nan"), runner=runner, rule="best")


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
    held_out_ratio: float = 0.0
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
            "table": [c.to_dict(self.full, self.held_out_ratio) for c in self.cells],
            "rows": self.rows, "groups": self.groups, "largest_group": self.largest_group,
            "splits": self.splits, "held_out_ratio": self.held_out_ratio,
            "cost": {"seconds": self.seconds, "selector_fits": self.selector_fits,
                     "estimator_fits": self.estimator_fits, "stopped_by_time_budget": self.stopped},
            "settings": self.settings,
        }


Part = tuple[np.ndarray, "np.ndarray | None"]
"""One held-out part: row indices and their sample weights (None: every row counts once)."""
Split = tuple[np.ndarray, tuple[Part, ...]]
"""(training rows, held-out parts): one part (rows or groups) or two (unseen groups, known rows)."""


def per_group(groups: np.ndarray) -> np.ndarray:
    """Sample weights (m,) that make every group of the rows `groups` (m,) count once: 1 / its rows."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


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
    k = min(folds, groups, largest stratum), single rows held out (StratifiedKFold) when `groups`
    is None, else whole groups: StratifiedKFold over the groups, each labelled with its most
    common stratum (scikit-learn's StratifiedGroupKFold balances the strata better but loops in
    Python over every group and fold: seconds per split on a store of 4,000 runs seen once).
    Empty when k < 2."""
    from sklearn.model_selection import StratifiedKFold

    if groups is None:
        unit_codes, member = codes, None
    else:
        uniq, member = np.unique(groups, return_inverse=True)
        # most common stratum per group: counts of (group, stratum) pairs, argmax per group
        table = np.zeros((len(uniq), int(codes.max()) + 1), dtype=np.int64)
        np.add.at(table, (member, codes), 1)
        unit_codes = table.argmax(1)
    k = min(folds, len(unit_codes), int(np.bincount(unit_codes).max()))  # scikit-learn needs a stratum of >= k
    if k < 2:
        return []
    out: list[tuple[np.ndarray, np.ndarray]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
        for r in range(repeats):
            cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + r)
            for _, held in cv.split(np.zeros(len(unit_codes)), unit_codes):
                test = held if member is None else np.flatnonzero(np.isin(member, held))
                train = np.setdiff1d(np.arange(len(codes)), test, assume_unique=True)
                if len(train) and len(test):
                    out.append((train, test))
    return out


def mixed_splits(codes: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int) -> list[Split]:
    """(train, (unseen, known)) splits of the `mixed` hold-out (module docstring): per repeat,
    `folds` of the 2 x folds grouped folds are held out whole (unseen), and as many single rows
    of the other groups, never a group's last row in the training part (known). Each split's
    held-out budget is about n / folds, like a k-fold on rows. `known` is empty on a store
    without repeats."""
    halves = grouped_splits(codes, groups, 2 * folds, repeats, seed)
    per_repeat = len(halves) // max(repeats, 1)
    out: list[Split] = []
    for i, (rest, unseen) in enumerate(halves):
        if per_repeat and i % per_repeat >= folds:  # folds of the 2k per repeat: the other half stays in training
            continue
        rng = np.random.default_rng([seed, i])
        g = groups[rest]
        order = rng.permutation(len(rest))
        first = np.zeros(len(rest), dtype=bool)  # one anchor row per group stays in training
        _, at = np.unique(g[order], return_index=True)
        first[order[at]] = True
        eligible = np.flatnonzero(~first)
        take = min(len(eligible), len(unseen))
        known = np.sort(rest[rng.choice(eligible, size=take, replace=False)]) if take else rest[:0]
        train = np.setdiff1d(rest, known, assume_unique=True)
        part = (unseen, per_group(groups[unseen]))
        out.append((train, (part,) if take == 0 else (part, (known, None))))
    return out


def make_splits(codes: np.ndarray, groups: np.ndarray, settings: SearchSettings) -> list[Split]:
    """The splits of `settings.holdout` (module docstring, step 2); `mixed` on a store of too few
    groups to hold any out whole falls back to rows."""
    if settings.holdout == "mixed":
        out = mixed_splits(codes, groups, settings.folds, settings.repeats, settings.seed)
        if out:
            return out
        # too few groups to hold any out whole (say, one workload recorded many times): rows
    pairs = grouped_splits(codes, groups if settings.holdout == "groups" else None, settings.folds,
                           settings.repeats, settings.seed)
    if settings.holdout == "groups":
        return [(train, ((test, per_group(groups[test])),)) for train, test in pairs]
    return [(train, ((test, None),)) for train, test in pairs]


def kept_count(n: int, fraction: float, min_keep: int, n_classes: int) -> int:
    """Rows a selector keeps of n at `fraction` after the floors (min_keep, one per class)."""
    return apply_floors(requested_count(n, fraction), n, min_keep, n_classes)[0]


def default_estimator(task: str, n_neighbors: int) -> Any:
    """The downstream model measured by default: scikit-learn k-NN (uniform weights)."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    if task == "classification":
        return KNeighborsClassifier(n_neighbors=n_neighbors)
    return KNeighborsRegressor(n_neighbors=n_neighbors)


def unit_kind(estimator: Any, scorer: Any) -> str | None:
    """'classifier' / 'regressor' when the score decomposes over held-out rows: no `scoring`
    given and a scikit-learn classifier or regressor, whose `score` is by scikit-learn's
    convention accuracy or R^2 (an estimator that breaks the convention is scored by its
    contributions all the same); else None (the per-split bound is used)."""
    from sklearn.base import is_classifier, is_regressor

    if scorer is not None:
        return None
    return "classifier" if is_classifier(estimator) else "regressor" if is_regressor(estimator) else None


def fit_score(estimator: Any, X: np.ndarray, y: np.ndarray, train: np.ndarray, parts: tuple[Part, ...],
              scorer: Callable[..., float] | None, groups: np.ndarray | None = None, snapped: bool = False
              ) -> tuple[float, Units | None]:
    """(score, units): the mean over the held-out `parts` (row indices into X, y and sample
    weights) of the score of a clone of `estimator` fitted on rows `train`, and with `groups` (the
    near-duplicate group of every row) when the score decomposes (`unit_kind`), the per-unit
    contributions behind it (a weighted part's units are its groups, an unweighted part's its
    rows). snapped: the score is `SNAPPED`, the share of held-out rows whose prediction, snapped
    to the training part's target values, is right in every output. A k-NN whose k exceeds the
    rows it is given uses all of them. An estimator whose `score` takes no sample_weight scores
    rows unweighted."""
    from sklearn.base import clone

    est = clone(estimator)
    params = est.get_params(deep=False)
    if "n_neighbors" in params and isinstance(params["n_neighbors"], (int, np.integer)):
        est.set_params(n_neighbors=max(1, min(int(params["n_neighbors"]), len(train))))
    est.fit(X[train], y[train])

    def predict(rows: np.ndarray) -> np.ndarray:
        return snap(est.predict(X[rows]), y[train]) if snapped else est.predict(X[rows])

    kind = "classifier" if snapped else unit_kind(est, scorer) if groups is not None else None
    if kind is not None:  # exact match once snapped: an accuracy
        units = tuple(contributions(kind, y[p], predict(p), w, p if w is None or groups is None else groups[p])
                      for p, w in parts)
        return float(np.mean([c.mean() for _, c in units])), units if groups is not None else None
    scores = []
    for p, w in parts:
        score = scorer if scorer is not None else (lambda e, Xp, yp, **kw: e.score(Xp, yp, **kw))
        try:
            scores.append(float(score(est, X[p], y[p], **({} if w is None else {"sample_weight": w}))))
        except TypeError:  # a score() without sample_weight
            scores.append(float(score(est, X[p], y[p])))
    return float(np.mean(scores)), None


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
    if BASELINE not in settings.strategies:
        settings = replace(settings, strategies=(BASELINE, *settings.strategies))
    est = estimator if estimator is not None else default_estimator(task, settings.n_neighbors)
    snapped = isinstance(scoring, str) and scoring == SNAPPED
    if snapped and task != "regression":
        raise UserError(f"scoring {SNAPPED!r} reads regression predictions as choices from the target values; "
                        f"this store's task is {task}: leave scoring unset (accuracy), or pass task='regression' "
                        "(--task regression) to treat the targets as numbers")
    try:
        scorer = None if scoring is None or snapped else check_scoring(est, scoring=scoring)
    except ValueError as e:
        raise UserError(f"unknown scoring {scoring!r}: use {SNAPPED!r} or a scikit-learn scoring name "
                        "(sklearn.metrics.get_scorer_names())") from e
    metric = (scoring if isinstance(scoring, str) else getattr(scoring, "__name__", "scorer")) if scoring \
        else ("accuracy" if estimator is None and task == "classification"
              else "r2" if estimator is None else f"{type(est).__name__}.score")
    described = {"fractions": list(settings.fractions), "strategies": list(settings.strategies),
                 "folds": settings.folds, "repeats": settings.repeats, "tolerance": settings.tolerance,
                 "alpha": settings.alpha, "max_rows": settings.max_rows, "max_seconds": settings.max_seconds,
                 "group_radius": settings.group_radius, "holdout": settings.holdout}

    rows = search_sample(codes, settings.max_rows, settings.seed)
    Xs, ys, Zs, cs = X[rows], y[rows], Z[rows], codes[rows]
    ts = None if timestamps is None else timestamps[rows]
    sc = None if scores is None else scores[rows]
    groups = workload_groups(Zs, settings.group_radius, settings.seed)
    sizes = np.bincount(groups)
    splits = make_splits(cs, groups, settings)
    n_groups, largest = int((sizes > 0).sum()), int(sizes.max())
    ratio = float(np.mean([sum(len(p) for p, _ in parts) / len(train) for train, parts in splits])) if splits else 0.0
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
                            held_out_ratio=ratio,
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
    full_units: list[Units] = []
    for train, parts in splits:
        if not in_time():
            break
        score, units = fit_score(est, Xs, ys, train, parts, scorer, groups, snapped)
        full.append(score)
        if units is not None:
            full_units.append(units)
        fits["estimator"] += 1
        fitted("full store")
    if len(full) < len(splits):
        full = []
    per_unit = tuple(full_units) if len(full_units) == len(full) else ()
    cells: list[Cell] = []
    reached: list[float] = []  # fractions whose chosen strategy stayed within tolerance, in walk order
    previous: tuple[tuple[int, ...], list[Cell]] | None = None
    for frac in grid if full else []:
        at_f: list[Cell] = []
        counts = tuple(kept_count(len(train), frac, settings.min_keep,
                                  len(np.unique(cs[train])) if classes else 0) for train, _ in splits)
        if previous is not None and previous[0] == counts:
            # the floors give the same kept count on every split: the same selections, not refitted
            at_f = [Cell(c.strategy, frac, c.scores, c.units) for c in previous[1]]
        names = settings.strategies if not at_f else ()
        for name in names:
            fold_scores: list[float] = []
            fold_units: list[Units] = []
            for train, parts in splits:
                if not in_time():
                    break
                sel = make_selector(name, frac)
                sel.fit(Xs[train], ys[train], timestamps=None if ts is None else ts[train],
                        scores=None if sc is None else sc[train])
                fits["selector"] += 1
                kept = train[sel.indices_]
                score, units = fit_score(est, Xs, ys, kept, parts, scorer, groups, snapped)
                fold_scores.append(score)
                if units is not None:
                    fold_units.append(units)
                fits["estimator"] += 1
                fitted(f"{name} at {frac:.0%}")
            if len(fold_scores) == len(splits):
                at_f.append(Cell(name, frac, tuple(fold_scores),
                                 tuple(fold_units) if len(fold_units) == len(fold_scores) else ()))
            if stopped:
                break
        cells += at_f
        previous = (counts, at_f)
        if len(at_f) < len(settings.strategies):  # the time budget cut this fraction short
            break
        if given is None:
            chosen = best(at_f, ratio)
            if chosen is None or chosen.cell.loss_bound(tuple(full), ratio, settings.alpha,
                                                        per_unit) > settings.tolerance:
                break
            reached.append(frac)
        if stopped:
            break
    # the walk may stop before the grid's end: the bar ends full at the fits that ran
    cb(Event("end", phase="search", step=fits["estimator"], total_steps=fits["estimator"]))
    complete = {f for f in grid if sum(c.fraction == f for c in cells) == len(settings.strategies)}
    strategy, fraction, reason = decide(full, cells, reached, grid, given, settings, metric, complete, ratio,
                                        per_unit)
    if stopped:
        reason += (f"; the time budget (max_seconds={settings.max_seconds:g}) ran out after "
                   f"{fits['selector']} selector fits, so the rest of the grid was not measured")
    return SearchResult(strategy=strategy, fraction=fraction, reason=reason, metric=metric, estimator=repr(est),
                        full=tuple(full), cells=tuple(cells), rows=len(rows), groups=n_groups,
                        largest_group=largest, splits=len(splits), held_out_ratio=ratio,
                        seconds=time.perf_counter() - t0, selector_fits=fits["selector"],
                        estimator_fits=fits["estimator"], stopped=stopped, settings=described)


def decide(full: list[float], cells: list[Cell], reached: list[float], grid: list[float], given: float | None,
           settings: SearchSettings, metric: str, complete: set[float] | None = None,
           held_out_ratio: float = 0.5, full_units: tuple[Units, ...] = ()) -> tuple[str | None, float | None, str]:
    """(strategy or None, fraction or None, one-sentence reason) from what was measured;
    `complete`: fractions where every strategy was measured (default: all with a cell);
    held_out_ratio: n_held_out / n_train of the splits (for the corrected standard error);
    full_units: the full store's per-unit contributions: losses and their bounds are then
    paired per held-out unit (cells without units fall back to the per-split se)."""
    complete = {c.fraction for c in cells} if complete is None else complete
    kind = {"rows": "random rows", "groups": "whole groups",
            "mixed": "unseen groups and repeats of known ones, weighed equally"}.get(settings.holdout, settings.holdout)
    folds = f"{len(full)} held-out folds of {kind}"
    over = (f"paired per held-out unit over {folds}" if full_units
            else f"over {folds}, corrected standard error")
    if not full:
        return None, None, "the full store could not be scored within the time budget: nothing was measured"
    ref = float(np.mean(full))
    tol, alpha = settings.tolerance, settings.alpha
    level = f"{1 - alpha:.0%}"

    def chosen(frac: float) -> Pick | None:
        return best([c for c in cells if c.fraction == frac], held_out_ratio)

    if given is not None:
        top = best([c for c in cells if c.fraction == given], held_out_ratio)
        if top is None:
            return None, given, f"no strategy could be measured at {given:.0%}"
        partial = "" if given in complete else " (not every strategy was measured)"
        return (top.cell.strategy, given, f"at the requested {given:.0%}: {top.describe(metric)}, paired over "
                f"{folds} (full store {ref:.4f}){partial}")
    if not reached and grid and grid[0] not in complete:
        return (None, 1.0, f"the time budget ran out before every strategy was measured at {grid[0]:.0%} "
                f"(full store {ref:.4f} {metric}, mean of {folds}): kept everything")
    if not reached:
        first = grid[0] if grid else None
        top = chosen(first) if first is not None else None
        if top is None or first is None:
            return None, 1.0, f"no fraction below 100% was measured: kept everything (full store {ref:.4f} {metric})"
        bound = top.cell.loss_bound(tuple(full), held_out_ratio, alpha, full_units)
        return (None, 1.0, f"kept everything: even at {first:.0%}, the largest fraction tried, the loss against "
                f"the full store's {ref:.4f} {metric} may reach {bound:.4f} ({level} bound {over}), more than "
                f"the tolerance {tol:g}, with {top.describe(metric)}")
    frac = reached[-1]
    top = chosen(frac)
    assert top is not None
    smaller = [f for f in grid if f < frac]
    if smaller:
        nxt = chosen(smaller[0])
        why_stop = (f"at {smaller[0]:.0%} ({nxt.cell.strategy}) the bound was "
                    f"{nxt.cell.loss_bound(tuple(full), held_out_ratio, alpha, full_units):.4f}"
                    if nxt is not None and smaller[0] in complete
                    else f"{smaller[0]:.0%} was not measured for every strategy")
    else:
        why_stop = "it is the smallest fraction tried"
    loss, se, _ = top.cell.loss(tuple(full), held_out_ratio, full_units)
    return (top.cell.strategy, frac, f"kept {frac:.0%} with {top.describe(metric)}: it loses {loss:+.4f} +- "
            f"{se:.4f} {metric} against the full store's {ref:.4f} ({over}), within {tol:g} at the {level} "
            f"bound, and {why_stop}")

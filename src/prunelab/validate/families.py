"""Data families for `prunelab validate`: each yields Cells (one store, one task, one seed).

- `histories`: run-history stores with heavy-tailed repeat counts (prunelab.data.histories),
  written apart from the built-in generator; classification (best n_jobs) and regression
  (log2 n_jobs, log2 chunksize; scored as the share of held-out runs whose snapped config is the
  best one).
- `sklearn`: the real tabular data sets that ship inside scikit-learn (digits, breast_cancer,
  wine; diabetes for regression, scored as R^2 x 100), a stratified 30 % hold-out per seed
  (diabetes: stratified on target quintiles), features standardized with the training part's
  mean and sd (what a k-NN user does first).
- `workloads`: the built-in generator (prunelab.data.workloads), run-history and independent
  records, plus a 100-sample homogeneous store used for the floors only.

`redundant` says, by construction and independently of prunelab, whether a store holds repeats:
True for run-history stores, False for stores of runs each recorded once, None (unknown) for the
real data sets. Only it decides which of the auto-fraction checks applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.select.search import SNAPPED

FAMILIES = ("histories", "sklearn", "workloads")
HISTORY_DATASETS = ("zipf-log", "zipf-log-noise20", "lognormal-raw", "lognormal-log-imbalanced-noise10",
                    "once-log")
HISTORY_QUICK = ("zipf-log", "once-log")
SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "diabetes")
SKLEARN_QUICK = ("wine", "diabetes")


@dataclass
class Cell:
    """One scenario: a training part (X, y) and a held-out part, for one task and seed.

    X: float (n, d); y: int (n,) classes or float (n,) / (n, t) targets; score(pred, y_test) ->
    float in "points" (accuracy % or R^2 x 100); keep: the fixed fraction compared (0.3);
    quality: False for stores used only for the invariants (floors); scoring: what `auto` is told
    to score held-out rows with, the cell's own metric where scikit-learn's default is not it
    (`snapped_accuracy` for best-config targets; None: accuracy or R^2)."""

    family: str
    dataset: str
    task: str
    seed: int
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    score: Callable[[np.ndarray, np.ndarray], float]
    metric: str
    redundant: bool | None
    timestamps: np.ndarray | None = None
    keep: float = 0.3
    quality: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    scoring: str | None = None

    @property
    def scope(self) -> str:
        return f"{self.family} {self.dataset} {self.task}"

    @property
    def auto_options(self) -> dict[str, Any]:
        """Keyword arguments `prunelab.select(strategy="auto")` gets on this cell: its scoring."""
        return {"scoring": self.scoring} if self.scoring else {}

    def __repr__(self) -> str:
        return (f"Cell({self.scope!r}, seed={self.seed}, train={len(self.X)}, test={len(self.X_test)}, "
                f"redundant={self.redundant})")


def accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of correct predictions, in percent."""
    return 100.0 * float(np.mean(pred == true))


def r2_points(pred: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination x 100 (can be negative)."""
    from sklearn.metrics import r2_score

    return 100.0 * float(r2_score(true, pred))


def history_spec(name: str) -> Any:
    """The HistorySpec of a dataset name like 'lognormal-log-imbalanced-noise10'."""
    from prunelab.data.histories import HistorySpec

    parts = name.split("-")
    if len(parts) < 2:
        raise UserError(f"unknown history dataset {name!r}; choose from {', '.join(HISTORY_DATASETS)}")
    noise = next((int(p[5:]) / 100 for p in parts[2:] if p.startswith("noise")), 0.0)
    return HistorySpec(repeats=parts[0], scale=parts[1], label_noise=noise, imbalanced="imbalanced" in parts)


def history_cells(datasets: tuple[str, ...], seeds: list[int], n: int, test_size: int) -> Iterator[Cell]:
    from prunelab.data.histories import config_accuracy, make_history

    for name in datasets:
        spec = history_spec(name)
        for seed in seeds:
            d = make_history(spec, n=n, seed=seed, test_size=test_size)
            info = {"repeat_share": d.repeat_share, "workloads": int(len(np.unique(d.groups))),
                    "max_repeats": int(np.bincount(d.groups).max()), "test_known_share": float(d.test_known.mean())}
            redundant = spec.repeats != "once"
            yield Cell("histories", name, "classification", seed, d.X, d.y_class, d.X_test, d.y_test_class,
                       accuracy, "accuracy %", redundant, d.timestamps, info=info)
            yield Cell("histories", name, "regression", seed, d.X, d.y_reg, d.X_test, d.y_test_reg,
                       lambda p, t: 100.0 * config_accuracy(p, t), "best-config %", redundant, d.timestamps,
                       info=info, scoring=SNAPPED)


def load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(X float64, y, task) of a data set shipped inside scikit-learn (no download)."""
    from sklearn import datasets

    loaders = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
               "wine": datasets.load_wine, "diabetes": datasets.load_diabetes}
    if name not in loaders:
        raise UserError(f"unknown scikit-learn data set {name!r}; choose from {', '.join(loaders)}")
    bunch = loaders[name]()
    task = "regression" if name == "diabetes" else "classification"
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), task


def stratified_holdout(y: np.ndarray, task: str, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices); regression stratifies on target quintiles."""
    from sklearn.model_selection import train_test_split

    strata = y if task == "classification" else np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8]))
    tr, te = train_test_split(np.arange(len(y)), test_size=test_share, random_state=seed, stratify=strata)
    return np.sort(tr), np.sort(te)


def sklearn_cells(datasets: tuple[str, ...], seeds: list[int], test_share: float = 0.3) -> Iterator[Cell]:
    for name in datasets:
        X, y, task = load_sklearn(name)
        for seed in seeds:
            tr, te = stratified_holdout(y, task, test_share, seed)
            mu, sd = X[tr].mean(0), X[tr].std(0)
            sd = np.where(sd > 0, sd, 1.0)
            Z = (X - mu) / sd
            if task == "classification":
                yield Cell("sklearn", name, task, seed, Z[tr], y[tr].astype(np.int64), Z[te], y[te].astype(np.int64),
                           accuracy, "accuracy %", None)
            else:
                yield Cell("sklearn", name, task, seed, Z[tr], y[tr].astype(np.float64), Z[te],
                           y[te].astype(np.float64), r2_points, "R^2 x 100", None)


def workload_cells(sizes: tuple[int, ...], seeds: list[int], test_size: int) -> Iterator[Cell]:
    from prunelab.data.workloads import config_accuracy, make_store

    for store in ("history", "records"):
        for n in sizes:
            for seed in seeds:
                d = make_store(store, n, seed=seed, test_size=test_size)
                name = f"{store}-{n}"
                yield Cell("workloads", name, "classification", seed, d.X.astype(np.float64), d.y_class,
                           d.X_test.astype(np.float64), d.y_test_class, accuracy, "accuracy %", store == "history",
                           d.timestamps)
                yield Cell("workloads", name, "regression", seed, d.X.astype(np.float64), d.y_reg,
                           d.X_test.astype(np.float64), d.y_test_reg, lambda p, t: 100.0 * config_accuracy(p, t),
                           "best-config %", store == "history", d.timestamps, scoring=SNAPPED)
    for seed in seeds:
        d = make_store("homogeneous", 100, seed=seed, test_size=test_size)
        yield Cell("workloads", "homogeneous-100", "classification", seed, d.X.astype(np.float64), d.y_class,
                   d.X_test.astype(np.float64), d.y_test_class, accuracy, "accuracy %", None, d.timestamps,
                   keep=0.1, quality=False)


def cells(family: str, seeds: list[int], quick: bool, datasets: tuple[str, ...] | None = None) -> Iterator[Cell]:
    """The cells of one family; `datasets` narrows to those names (unknown names are an error)."""
    if family == "histories":
        names = HISTORY_QUICK if quick else HISTORY_DATASETS
        chosen = _narrow(names, HISTORY_DATASETS, datasets)
        yield from history_cells(chosen, seeds, n=600 if quick else 4000, test_size=300 if quick else 1000)
    elif family == "sklearn":
        chosen = _narrow(SKLEARN_QUICK if quick else SKLEARN_DATASETS, SKLEARN_DATASETS, datasets)
        yield from sklearn_cells(chosen, seeds)
    elif family == "workloads":
        if datasets:
            raise UserError("--datasets applies to the histories and sklearn suites, not workloads")
        yield from workload_cells((100, 1000) if quick else (100, 1000, 10_000), seeds,
                                  test_size=500 if quick else 2000)
    else:
        raise UserError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


def _narrow(default: tuple[str, ...], known: tuple[str, ...], wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    if not wanted:
        return default
    allowed = set(known) | set(default)
    return tuple(w for w in wanted if w in allowed)

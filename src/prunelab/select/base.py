"""The selector contract every strategy follows (scikit-learn and imbalanced-learn style).

`__init__` only stores its arguments; `fit(X, y=None, timestamps=None,
scores=None)` validates, computes the exact budget (floors recorded), splits
it across strata by largest remainder, lets the strategy pick inside each
stratum, and sets `indices_` (sorted int64), `scores_` (float64 (n,): how
much the strategy valued each sample, higher = kept first) and `report_`.
`fit_resample(X, y)` returns the kept rows, so selectors drop into
imbalanced-learn pipelines.

Every selector is a `sklearn.base.BaseEstimator` and passes scikit-learn's
`check_estimator`. Parameters are declared in `_parameter_constraints`
(scikit-learn's `_param_validation`) and checked at `fit`; a bad value raises
`ParameterError`, which is both our `UserError` (CLI: exit 2) and scikit-learn's
`InvalidParameterError`.

The registry: a strategy class is decorated with `@register`; `list_strategies()`,
`describe_strategies()` and `get_selector(name, **params)` read it. The strategy
modules are imported by `prunelab.select`, so the registry is full once the
package is imported, and no strategy module imports another's registry entry.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar, TypeVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions, validate_parameter_constraints

from prunelab.errors import UserError
from prunelab.select.budget import Floor, allocate, apply_floors, check_keep, requested_count
from prunelab.select.report import SelectionReport, kept_bytes, measure
from prunelab.select.strata import TASKS, Strata, check_inputs, detect_task, make_strata


class ParameterError(UserError, InvalidParameterError):
    """A selector parameter outside its declared range: a `UserError` for the CLI and web app,
    an `InvalidParameterError` (ValueError and TypeError) for scikit-learn."""


REGISTRY: dict[str, type[BaseSelector]] = {}
"""Strategy name -> selector class, in registration (import) order."""

S = TypeVar("S", bound="type[BaseSelector]")


def register(cls: S) -> S:
    """Class decorator: add a selector class to the registry under its `name`."""
    name = cls.name
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"strategy {name!r} is registered twice ({REGISTRY[name].__name__}, {cls.__name__})")
    REGISTRY[name] = cls
    return cls


def list_strategies() -> list[str]:
    """Names accepted by `select(strategy=...)` and `prunelab select --strategy`."""
    return list(REGISTRY)


def describe_strategies() -> dict[str, str]:
    """Strategy name -> one-line description."""
    return {name: cls.description for name, cls in REGISTRY.items()}


def plain_strategies() -> list[str]:
    """Registered strategies that select by themselves (every one but those that search over others)."""
    return [name for name, cls in REGISTRY.items() if not cls.searches]


def check_strategy(name: Any) -> str:
    """`name` when it is a registered strategy; otherwise a UserError listing the choices."""
    if name not in REGISTRY:
        raise UserError(f"unknown strategy {name!r}; choose from {', '.join(REGISTRY)}")
    return str(name)


def get_selector(name: str, **params: Any) -> BaseSelector:
    """A selector instance for strategy `name` with the given parameters."""
    cls = REGISTRY[check_strategy(name)]
    valid = sorted(cls._get_param_names())
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise UserError(f"unknown option(s) {unknown} for strategy {name!r}; valid: {valid}")
    return cls(**params)


def seed_of(random_state: Any) -> int:
    """An int seed from `random_state` (an int is used as is; None or a RandomState draws one)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@dataclass
class Context:
    """What a strategy sees: features X, standardized features Z (float32 (n, d), computed on
    first use), labels, strata, budget."""

    X: np.ndarray
    y: np.ndarray | None
    timestamps: np.ndarray | None
    scores: np.ndarray | None
    task: str
    strata: Strata
    count: int
    keep_fraction: float
    rng: np.random.Generator
    seed: int
    notes: list[str]
    clusters: int = 0
    _Z: np.ndarray | None = None

    @property
    def Z(self) -> np.ndarray:
        if self._Z is None:
            self._Z = standardize(self.X)
        return self._Z

    @Z.setter
    def Z(self, value: np.ndarray) -> None:
        self._Z = value


def standardize(X: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Column z-scores as float32 (n, d); constant columns become 0. Chunked to bound temporaries.

    The sums run on X - X[0] (a large common offset would cancel the variance away) and, when
    the squares overflow float64 (|x| above ~1e154), on (X - X[0]) / max|X - X[0]| per column,
    so huge but finite features give z-scores, not NaN."""
    n, d = X.shape
    shift = X[0].astype(np.float64)
    span: np.ndarray | None = None  # per-column divisor, only when the plain sums overflow

    def moments() -> tuple[np.ndarray, np.ndarray]:
        mean, sq = np.zeros(d), np.zeros(d)
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(0, n, chunk):
                block = X[i : i + chunk].astype(np.float64) - shift
                if span is not None:
                    block /= span
                mean += block.sum(0)
                sq += (block * block).sum(0)
        return mean / n, sq / n

    mean, sq = moments()
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(sq))):  # rare: rescale and sum again
        with np.errstate(over="ignore", invalid="ignore"):
            lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
            if not (np.all(np.isfinite(hi - shift)) and np.all(np.isfinite(shift - lo))):
                shift = np.zeros(d)  # |x| near 1e308: even X - X[0] overflows
            span = np.maximum(np.abs(hi - shift), np.abs(lo - shift))
        span[~(span > 0)] = 1.0
        mean, sq = moments()
    unit = np.ones(d) if span is None else span
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    std[std * unit < 1e-12] = 1.0  # constant column: z = 0
    # z = (x - center) / scale in the input's units (float32 inputs stay float32 when that fits)
    with np.errstate(over="ignore"):
        center, scale = shift + mean * unit, std * unit
        c32, s32 = center.astype(np.float32), scale.astype(np.float32)
    fast32 = X.dtype == np.float32 and bool(np.all(np.isfinite(c32)) and np.all(np.isfinite(s32)) and np.all(s32 > 0))
    fast64 = bool(np.all(np.isfinite(center)) and np.all(np.isfinite(scale)))
    out = np.empty(X.shape, dtype=np.float32)
    for i in range(0, n, chunk):
        src = X[i : i + chunk]
        if fast32:
            out[i : i + chunk] = (src - c32) / s32
        elif fast64:
            out[i : i + chunk] = (src.astype(np.float64, copy=False) - center) / scale
        else:
            out[i : i + chunk] = ((src.astype(np.float64) - shift) / unit - mean) / std
    return out


class BaseSelector(BaseEstimator):
    """Base class: keep a fraction (`keep`) or a count (`keep_count`) with floors.

    Parameters: keep float in (0, 1] (default 0.3), keep_count int >= 1
    (overrides keep), min_keep int >= 1 (default 20), task
    'auto'|'classification'|'regression'|'none', random_state int (or None /
    a RandomState), trace_memory bool (record the tracemalloc peak; small overhead).
    """

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    searches: ClassVar[bool] = False  # True for selectors that measure other strategies (auto)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "keep": [Interval(Real, 0, 1, closed="right"), None],
        "keep_count": [Interval(Integral, 1, None, closed="left"), None],
        "min_keep": [Interval(Integral, 1, None, closed="left")],
        "task": [StrOptions(set(TASKS))],
        "random_state": ["random_state"],
        "trace_memory": ["boolean"],
    }

    def __init__(self, keep: float | None = 0.3, *, keep_count: int | None = None, min_keep: int = 20,
                 task: str = "auto", random_state: int = 0, trace_memory: bool = True) -> None:
        self.keep = keep
        self.keep_count = keep_count
        self.min_keep = min_keep
        self.task = task
        self.random_state = random_state
        self.trace_memory = trace_memory

    def _check_params(self) -> None:
        """scikit-learn's declarative check of every parameter against `_parameter_constraints`;
        raises `ParameterError` naming the allowed values and the value received."""
        try:
            validate_parameter_constraints(self._parameter_constraints, self.get_params(deep=False),
                                           caller_name=type(self).__name__)
        except InvalidParameterError as exc:
            raise ParameterError(str(exc)) from None
        check_keep(self.keep, self.keep_count)  # not both

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # unlabelled data is selected too
        tags.target_tags.multi_output = True  # (n, t) regression targets
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    # fitting ---------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, timestamps: Any = None, scores: Any = None) -> BaseSelector:
        """Select; sets `indices_`, `scores_`, `report_`, `n_features_in_`. Returns self."""
        self._check_params()
        keep = self.keep if self.keep_count is None else None
        if keep is None and self.keep_count is None:
            raise UserError("give keep (a fraction in (0, 1]) or keep_count")
        warm_imports()
        with measure(self.trace_memory) as m:
            Xa, ya, ts, sc = check_inputs(X, y, timestamps, scores)
            n = len(Xa)
            task = detect_task(ya, self.task)
            strata = make_strata(ya, task, n)
            requested = requested_count(n, keep, self.keep_count)
            seed = seed_of(self.random_state)
            count, floors = apply_floors(requested, n, self.min_keep, len(strata.labels) if strata.is_class else 0)
            ctx = Context(X=Xa, y=ya, timestamps=ts, scores=sc, task=task, strata=strata,
                          count=count, keep_fraction=count / n, rng=np.random.default_rng(seed),
                          seed=seed, notes=[])
            with warnings.catch_warnings(), _thread_limit(n):
                warnings.simplefilter("ignore")  # k-means on duplicate points warns about convergence
                self._prepare(ctx)
                indices, values, quotas, extra_floors = self._select(ctx)
            ctx._Z = None  # free the standardized copy inside the measured window
        floors += extra_floors
        indices = np.sort(np.asarray(indices, dtype=np.int64))
        if len(indices) != count or len(np.unique(indices)) != count:
            raise RuntimeError(f"{self.name} picked {len(indices)} samples (unique {len(np.unique(indices))}), "
                               f"budget {count}")
        before, after = kept_bytes([Xa, ya, ts, sc], indices)
        kept_per = np.bincount(strata.codes[indices], minlength=len(strata.labels))
        self.n_features_in_ = Xa.shape[1]
        self.indices_ = indices
        self.scores_ = np.asarray(values, dtype=np.float64)
        self.report_ = SelectionReport(
            strategy=self.name, task=task, original_count=n, requested_count=requested, kept_count=count,
            floors=floors,
            strata=[{"stratum": lab, "available": int(a), "kept": int(k)}
                    for lab, a, k in zip(strata.labels, strata.sizes, kept_per, strict=True)],
            clusters=ctx.clusters or None, bytes_before=before, bytes_after=after, peak_bytes=m.peak_bytes,
            seconds=m.seconds, decisions=self._decisions(), params=self._report_params(), notes=ctx.notes)
        return self

    def fit_resample(self, X: Any, y: Any = None, **fit_params: Any) -> tuple[Any, Any]:
        """Fit, then return (X[kept], y[kept]) (y is None when not given). Pandas inputs stay
        pandas (rows taken with `.iloc`), so the step fits in imbalanced-learn pipelines."""
        self.fit(X, y, **fit_params)
        return _take(X, self.indices_), (None if y is None else _take(y, self.indices_))

    def get_support(self) -> np.ndarray:
        """Boolean mask (n,) of kept samples."""
        mask = np.zeros(len(self.scores_), dtype=bool)
        mask[self.indices_] = True
        return mask

    # strategy hooks --------------------------------------------------------------------------------
    def _select(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Floor]]:
        """Allocate the budget to strata, then `_pick` inside each. Returns (indices, scores, quotas, floors)."""
        sizes = ctx.strata.sizes
        quotas = allocate(sizes, ctx.count, lower=1 if ctx.strata.is_class else 0)
        values = np.zeros(len(ctx.X), dtype=np.float64)
        order = np.argsort(ctx.strata.codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)])
        picked = []
        for s, q in enumerate(quotas):
            idx = order[starts[s] : starts[s + 1]]
            if len(idx) == 0 or q == 0:
                continue
            chosen, vals = self._pick(ctx, idx, int(q))
            values[idx] = vals
            picked.append(np.asarray(chosen, dtype=np.int64))
        return np.concatenate(picked), values, quotas, []

    def _prepare(self, ctx: Context) -> None:
        """Global work before per-stratum picking (quick models, neighbour graphs)."""

    def _pick(self, ctx: Context, idx: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
        """Choose `quota` of the sample indices `idx`; return (chosen, score per idx)."""
        raise NotImplementedError

    def _decisions(self) -> dict[str, Any]:
        return {}

    def _report_params(self) -> dict[str, Any]:
        # how to run (memory tracing, a progress callback) is not what was selected
        return {k: v for k, v in self.get_params(deep=False).items() if k not in ("trace_memory", "callback")}


def _take(a: Any, indices: np.ndarray) -> Any:
    """Rows `indices` of an array, list or pandas object."""
    if hasattr(a, "iloc"):
        return a.iloc[indices]
    return np.asarray(a)[indices]


def warm_imports() -> None:
    """Import scikit-learn's pieces before the measured window, so a report's seconds and
    tracemalloc peak are the selection's, not the first import's."""
    import sklearn.cluster  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    _controller()


def _thread_limit(n: int) -> Any:
    """One native thread for small inputs: OpenMP start-up and contention on a shared machine cost
    more than the work (a 3,000-row k-means took 1.4 s with 2 threads under load, 0.1 s with 1)."""
    from contextlib import nullcontext

    if n >= 100_000:
        return nullcontext()
    return _controller().limit(limits=1)  # applies now, restored on exit


_CONTROLLER: Any = None


def _controller() -> Any:
    global _CONTROLLER
    if _CONTROLLER is None:  # inspecting the loaded native libraries costs ~0.1 s: do it once
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def top_k(idx: np.ndarray, key: np.ndarray, quota: int) -> np.ndarray:
    """The `quota` entries of `idx` with the largest `key` (ties broken by position)."""
    if quota >= len(idx):
        return idx
    if quota <= 0:
        return idx[:0]
    part = np.argpartition(-key, quota - 1)[:quota]
    return idx[part]

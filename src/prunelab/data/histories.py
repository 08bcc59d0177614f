"""Run-history stores with heavy-tailed repeat counts: a second, independent synthetic family.

Written from first principles, separately from `prunelab.data.workloads` (different cost model,
features, grid, repeat structure and held-out mix), so that a validation on it says something
about data prunelab was not designed on. Nothing here was adjusted after looking at how
prunelab's selectors score on it.

A *workload* is a batch job run through a process pool (joblib / multiprocessing style):
`n_items` items of `ms_per_item` compute each, a serial phase of `serial_ms` (read input, merge),
`mb_per_item` of memory per in-flight item, a per-chunk dispatch cost `dispatch_ms`, on a machine
with `cores` cores and `ram_gb` of memory. Its run time for `n_jobs` = P workers and
`chunksize` = s (`run_time_ms`):

    chunks = ceil(n / s); waves = ceil(chunks / P)
    speed  = min(P, cores) + 0.25 * clip(P - cores, 0, cores)   # hyper-threads add 25 %, more add 0
    work   = waves * min(s, n) * ms_per_item * P / speed          # the slowest wave decides
    feed   = chunks * (dispatch_ms + 2 ms/MB * min(s, n) * mb_per_item)   # the parent feeds serially
    T      = serial_ms + 40 ms * P (spawn) + max(work, feed)
    T     *= 1 + 4 * max(0, in_flight_mb / ram_mb - 1)        # swapping, in_flight = P (150 MB + 2 s mb)

The recorded label of a run is the argmin of *measured* timings (each config's time times a
log-normal 10 % noise), optionally with explicit label noise (a share of runs recorded with a
random config: a busy machine, a misconfigured run). The held-out label is the noise-free best
config of that run's true parameters.

Repeat counts per workload are heavy-tailed: `zipf` (a = 1.6) or `lognormal` (sigma = 1.8),
capped at 500, or `once` (every workload recorded once: no redundancy). Workloads are drawn until
the store has `n` runs. Every run re-measures its workload: n_items varies by 5 %, the measured
per-item, serial and dispatch times by 10 % (log-normal); memory per item, cores and RAM are fixed.

Held out: `test_size` runs, a `known_share` of them new runs of known workloads (drawn in
proportion to how often each was recorded: the future resembles the past) and the rest runs of
workloads never seen.

Feature scales: `log` (log10 of the positive quantities, log2 of cores and RAM) or `raw`
(the physical units as logged: items, ms, MB, GB: ranges spanning up to ten orders of magnitude).
`imbalanced=True` draws 80 % of the workloads from small, quick jobs, most of whose best
`n_jobs` is 1 (a store dominated by one class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelab.errors import UserError

N_JOBS = np.array([1, 2, 4, 8, 16, 32, 64])
CHUNKSIZES = np.array([1, 8, 64, 512, 4096])
FEATURES = ("n_items", "ms_per_item", "serial_ms", "mb_per_item", "dispatch_ms", "cores", "ram_gb")
REPEATS = ("zipf", "lognormal", "once")
SCALES = ("log", "raw")
MAX_REPEAT = 500
SPAWN_MS = 40.0
WORKER_MB = 150.0
FEED_MS_PER_MB = 2.0
TIMING_NOISE = 0.10


@dataclass(frozen=True)
class HistorySpec:
    """One store design. repeats: 'zipf' | 'lognormal' | 'once'; scale: 'log' | 'raw';
    label_noise: share of training runs recorded with a random config (0..1)."""

    repeats: str = "zipf"
    scale: str = "log"
    label_noise: float = 0.0
    imbalanced: bool = False

    def __post_init__(self) -> None:
        if self.repeats not in REPEATS:
            raise UserError(f"unknown repeats {self.repeats!r}; choose from {', '.join(REPEATS)}")
        if self.scale not in SCALES:
            raise UserError(f"unknown scale {self.scale!r}; choose from {', '.join(SCALES)}")
        if not 0.0 <= self.label_noise <= 1.0:
            raise UserError(f"label_noise is a share in [0, 1], got {self.label_noise}")

    @property
    def name(self) -> str:
        parts = [self.repeats, self.scale]
        if self.imbalanced:
            parts.append("imbalanced")
        if self.label_noise:
            parts.append(f"noise{round(100 * self.label_noise)}")
        return "-".join(parts)


@dataclass
class HistoryStore:
    """X: float64 (n, 7) FEATURES in the spec's scale; y_class: int64 (n,) index into N_JOBS;
    y_reg: float64 (n, 2) (log2 n_jobs, log2 chunksize); groups: int64 (n,) workload id;
    timestamps: float64 (n,) seconds since the store began. *_test: the held-out runs;
    test_known: bool (test_size,) True where the run repeats a workload of the store."""

    spec: HistorySpec
    X: np.ndarray
    y_class: np.ndarray
    y_reg: np.ndarray
    groups: np.ndarray
    timestamps: np.ndarray
    X_test: np.ndarray
    y_test_class: np.ndarray
    y_test_reg: np.ndarray
    test_known: np.ndarray

    @property
    def repeat_share(self) -> float:
        """Share of runs that repeat a workload already in the store (1 - distinct / n)."""
        return 1.0 - len(np.unique(self.groups)) / len(self.groups)

    def __repr__(self) -> str:
        return (f"HistoryStore({self.spec.name!r}, runs={len(self.X)}, workloads={len(np.unique(self.groups))}, "
                f"max repeats={np.bincount(self.groups).max()}, test={len(self.X_test)})")


def sample_workloads(n: int, rng: np.random.Generator, imbalanced: bool = False) -> np.ndarray:
    """(n, 7) true parameters in FEATURES order, physical units."""
    def logu(lo: float, hi: float, size: int) -> np.ndarray:
        return 10.0 ** rng.uniform(lo, hi, size)

    out = np.column_stack([
        logu(2, 7, n), logu(-3, 2, n), logu(0, 4, n), logu(-4, 0, n), logu(-1.3, 0.7, n),
        rng.choice([2, 4, 8, 16, 32, 64], size=n).astype(float),
        rng.choice([4, 8, 16, 32, 64, 128, 256], size=n).astype(float),
    ])
    if imbalanced:
        small = rng.random(n) < 0.8  # quick jobs: few, cheap items
        k = int(small.sum())
        out[small, 0] = logu(1, 3.5, k)
        out[small, 1] = logu(-3, -0.5, k)
    return out


def run_time_ms(params: np.ndarray) -> np.ndarray:
    """Cost model (module docstring): ms, shape (n, len(N_JOBS), len(CHUNKSIZES))."""
    n_items, ms_item, serial, mb_item, dispatch, cores, ram_gb = (params[:, i, None, None] for i in range(7))
    P = N_JOBS[None, :, None].astype(float)
    s = np.minimum(CHUNKSIZES[None, None, :].astype(float), n_items)
    chunks = np.ceil(n_items / s)
    waves = np.ceil(chunks / P)
    speed = np.minimum(P, cores) + 0.25 * np.clip(P - cores, 0.0, cores)
    work = waves * s * ms_item * P / speed
    feed = chunks * (dispatch + FEED_MS_PER_MB * s * mb_item)
    t = serial + SPAWN_MS * P + np.maximum(work, feed)
    in_flight = P * (WORKER_MB + 2.0 * s * mb_item)
    return t * (1.0 + 4.0 * np.maximum(0.0, in_flight / (ram_gb * 1024.0) - 1.0))


def best_config(params: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(index of the best n_jobs, (log2 n_jobs, log2 chunksize)); with rng, from measured timings."""
    t = run_time_ms(params)
    if rng is not None:
        t = t * np.exp(rng.normal(0.0, TIMING_NOISE, size=t.shape))
    flat = t.reshape(len(params), -1).argmin(1)
    pi, ci = np.unravel_index(flat, (len(N_JOBS), len(CHUNKSIZES)))
    return pi.astype(np.int64), np.column_stack([np.log2(N_JOBS[pi]), np.log2(CHUNKSIZES[ci])]).astype(float)


def repeat_counts(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Runs per workload, summing to exactly n (the last workload is cut)."""
    cap = max(1, min(MAX_REPEAT, n // 4))
    counts: list[int] = []
    total = 0
    while total < n:
        if kind == "once":
            c = 1
        elif kind == "zipf":
            c = int(min(rng.zipf(1.6), cap))
        else:
            c = int(min(np.ceil(np.exp(rng.normal(0.0, 1.8))), cap))
        c = min(c, n - total)
        counts.append(c)
        total += c
    return np.array(counts, dtype=np.int64)


def _measure(true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One run of each workload: its true parameters vary, and what is logged is measured."""
    run = true.copy()
    run[:, 0] = np.maximum(1.0, np.round(run[:, 0] * np.exp(rng.normal(0, 0.05, len(run)))))
    return run


def _logged(run: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = run.copy()
    for col in (1, 2, 4):  # measured times
        out[:, col] *= np.exp(rng.normal(0, 0.10, len(out)))
    return out


def _scaled(features: np.ndarray, scale: str) -> np.ndarray:
    if scale == "raw":
        return features.astype(np.float64)
    out = np.log10(features)
    out[:, 5:] = np.log2(features[:, 5:])
    return out


def make_history(spec: HistorySpec, n: int = 4000, seed: int = 0, test_size: int = 1000,
                 known_share: float = 0.5) -> HistoryStore:
    """A store of `n` runs and `test_size` held-out runs (module docstring)."""
    if n < 1 or test_size < 1:
        raise UserError(f"n and test_size must be positive, got {n} and {test_size}")
    if not 0.0 <= known_share <= 1.0:
        raise UserError(f"known_share is a share in [0, 1], got {known_share}")
    rng = np.random.default_rng(seed)
    counts = repeat_counts(spec.repeats, n, rng)
    workloads = sample_workloads(len(counts), rng, spec.imbalanced)
    groups = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    runs = _measure(workloads[groups], rng)
    y_class, y_reg = best_config(runs, rng)
    if spec.label_noise > 0:
        flip = rng.random(n) < spec.label_noise
        pi = rng.integers(0, len(N_JOBS), int(flip.sum()))
        ci = rng.integers(0, len(CHUNKSIZES), int(flip.sum()))
        y_class[flip] = pi
        y_reg[flip] = np.column_stack([np.log2(N_JOBS[pi]), np.log2(CHUNKSIZES[ci])])
    n_known = int(round(known_share * test_size))
    known = rng.choice(len(counts), size=n_known, p=counts / counts.sum())
    unseen = sample_workloads(test_size - n_known, rng, spec.imbalanced)
    test_runs = _measure(np.vstack([workloads[known], unseen]), rng)
    t_class, t_reg = best_config(test_runs)
    return HistoryStore(
        spec=spec, X=_scaled(_logged(runs, rng), spec.scale), y_class=y_class, y_reg=y_reg,
        groups=groups.astype(np.int64), timestamps=np.sort(rng.uniform(0, 90 * 86400, n)),
        X_test=_scaled(_logged(test_runs, rng), spec.scale), y_test_class=t_class, y_test_reg=t_reg,
        test_known=np.arange(test_size) < n_known)


def config_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of rows whose predicted (log2 n_jobs, log2 chunksize), snapped to the grid, is the best one."""
    lp, lc = np.log2(N_JOBS), np.log2(CHUNKSIZES)
    p = lp[np.abs(pred[:, :1] - lp[None, :]).argmin(1)]
    c = lc[np.abs(pred[:, 1:2] - lc[None, :]).argmin(1)]
    return float(np.mean((p == true[:, 0]) & (c == true[:, 1])))

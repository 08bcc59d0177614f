"""Synthetic records of parallel jobs whose best configuration comes from a cost model.

Each job is described by what a scheduler's predictor sees (FEATURES): item count, CPU and
I/O time per item, per-chunk overhead, cores, item size. Its run time for P workers and
chunk size s follows a cost model (`run_time_ms`): worker start-up, CPU work shared over
min(P, cores) with an oversubscription penalty, I/O overlapped over up to 32 workers,
per-chunk overhead, a last-chunk tail and a memory penalty when P x s items exceed 256 MiB.
The label is the best (P, s) on the grid: a class (the best worker count) and a regression
target (log2 P, log2 s). Labels therefore depend on the features, and nothing else.

Stores:
- `history`: a predictor's run history. Few distinct workloads recur many times (skewed
  frequencies); each run measures its features with jitter and picks the best config from
  noisy timings (8% log-normal per config), so near-ties flip. The held-out set is new runs of
  the same workloads, labelled with the noise-free best config (what a predictor should say).
- `records`: independent jobs, each seen once (no redundancy); held out: new independent jobs.
- `homogeneous`: one kind of job in a narrow range (mostly one label, a few rare ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelab.errors import UserError

WORKERS = np.array([1, 2, 4, 8, 16, 32, 64])
CHUNKS = np.array([1, 4, 16, 64, 256, 1024])
FEATURES = ("log10_items", "log10_cpu_ms", "log10_io_ms", "log10_overhead_ms", "log2_cores", "log10_item_kb")
KINDS = ("cpu", "io", "mixed")
STORES = ("history", "records", "homogeneous")
MEMORY_KB = 256 * 1024
SPAWN_MS = 50.0
IO_CONCURRENCY = 32


@dataclass
class WorkloadData:
    """Train store and held-out set. X: float32 (n, 6) FEATURES; y_class: int64 index into WORKERS;
    y_reg: float64 (n, 2) (log2 workers, log2 chunk); timestamps: seconds since the store began;
    groups: distinct-workload id per training row (history) or row number."""

    store: str
    X: np.ndarray
    y_class: np.ndarray
    y_reg: np.ndarray
    timestamps: np.ndarray
    groups: np.ndarray
    X_test: np.ndarray
    y_test_class: np.ndarray
    y_test_reg: np.ndarray

    def __repr__(self) -> str:
        return (f"WorkloadData({self.store!r}, train={len(self.X)}, test={len(self.X_test)}, "
                f"distinct={len(np.unique(self.groups))}, classes={len(np.unique(self.y_class))})")


def sample_jobs(n: int, rng: np.random.Generator, narrow: bool = False) -> np.ndarray:
    """(n, 6) job parameters in FEATURES units (log scales); three kinds mixed equally."""
    kind = rng.integers(0, 3, size=n)
    u = rng.uniform
    if narrow:  # one CPU-bound job family in a narrow range
        return np.column_stack([u(4.0, 4.6, n), u(0.6, 1.0, n), u(-1.5, -1.2, n), u(-0.2, 0.2, n),
                                np.full(n, 3.0), u(1.0, 1.5, n)])
    cpu = np.select([kind == 0, kind == 1], [u(0, 2, n), u(-2, 0, n)], u(-1, 1, n))
    io = np.select([kind == 0, kind == 1], [u(-2, -0.5, n), u(0.5, 2, n)], u(-0.5, 1, n))
    return np.column_stack([u(2, 6, n), cpu, io, u(-1, 1, n), rng.integers(1, 5, size=n).astype(float),
                            u(0, 3, n)])


def run_time_ms(jobs: np.ndarray) -> np.ndarray:
    """Cost model: run time in ms, shape (n, len(WORKERS), len(CHUNKS))."""
    items, cpu, io, over = (10.0 ** jobs[:, i] for i in range(4))
    cores = 2.0 ** jobs[:, 4]
    kb = 10.0 ** jobs[:, 5]
    P = WORKERS[None, :, None].astype(float)
    s = np.minimum(CHUNKS[None, None, :].astype(float), items[:, None, None])
    n_ = items[:, None, None]
    c_ = cores[:, None, None]
    cpu_par = np.minimum(P, c_)
    contention = 1.0 + 0.1 * np.maximum(P - c_, 0.0) / c_
    t = (SPAWN_MS * P
         + n_ * cpu[:, None, None] / cpu_par * contention
         + n_ * io[:, None, None] / np.minimum(P, IO_CONCURRENCY)
         + np.ceil(n_ / s) * over[:, None, None] / cpu_par
         + s * (cpu + io)[:, None, None])
    mem = P * s * kb[:, None, None]
    return t * np.where(mem > MEMORY_KB, mem / MEMORY_KB, 1.0)


def best_config(jobs: np.ndarray, rng: np.random.Generator | None = None,
                noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(class = index of the best worker count, (log2 P, log2 s)) from (noisy) timings."""
    t = run_time_ms(jobs)
    if rng is not None and noise > 0:
        t = t * np.exp(rng.normal(0.0, noise, size=t.shape))
    flat = t.reshape(len(jobs), -1).argmin(1)
    wi, ci = np.unravel_index(flat, (len(WORKERS), len(CHUNKS)))
    reg = np.column_stack([np.log2(WORKERS[wi]), np.log2(CHUNKS[ci])]).astype(np.float64)
    return wi.astype(np.int64), reg


def _jitter(jobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new run of the same job: item count and measured per-item times vary a little."""
    out = jobs.copy()
    out[:, 0] += rng.normal(0, 0.02, len(jobs))
    out[:, 1] += rng.normal(0, 0.03, len(jobs))
    out[:, 2] += rng.normal(0, 0.03, len(jobs))
    return out


def make_store(store: str, n: int, seed: int = 0, test_size: int = 2000, repeats: float = 20.0,
               noise: float = 0.08) -> WorkloadData:
    """A training store of `n` runs and a held-out set of `test_size` (see module docstring)."""
    if store not in STORES:
        raise UserError(f"unknown store {store!r}; choose from {', '.join(STORES)}")
    if n < 1 or test_size < 1:
        raise UserError("n and test_size must be positive")
    rng = np.random.default_rng(seed)
    if store == "history":
        distinct = max(3, int(round(n / repeats)))
        base = sample_jobs(distinct, rng)
        weights = rng.dirichlet(np.full(distinct, 2.0))
        groups = rng.choice(distinct, size=n, p=weights)
        jobs = _jitter(base[groups], rng)
        test_jobs = _jitter(base[rng.choice(distinct, size=test_size, p=weights)], rng)
    else:
        narrow = store == "homogeneous"
        jobs = sample_jobs(n, rng, narrow=narrow)
        groups = np.arange(n)
        test_jobs = sample_jobs(test_size, rng, narrow=narrow)
    y_class, y_reg = best_config(jobs, rng, noise)
    t_class, t_reg = best_config(test_jobs)
    timestamps = np.sort(rng.uniform(0, 30 * 86400, size=n))
    return WorkloadData(store=store, X=jobs.astype(np.float32), y_class=y_class, y_reg=y_reg,
                        timestamps=timestamps, groups=groups.astype(np.int64),
                        X_test=test_jobs.astype(np.float32), y_test_class=t_class, y_test_reg=t_reg)


def config_accuracy(pred_reg: np.ndarray, true_reg: np.ndarray) -> float:
    """Share of rows whose predicted (log2 P, log2 s), snapped to the grid, is the true config."""
    wp = np.log2(WORKERS)[np.abs(pred_reg[:, :1] - np.log2(WORKERS)[None, :]).argmin(1)]
    cp = np.log2(CHUNKS)[np.abs(pred_reg[:, 1:2] - np.log2(CHUNKS)[None, :]).argmin(1)]
    return float(np.mean((wp == true_reg[:, 0]) & (cp == true_reg[:, 1])))

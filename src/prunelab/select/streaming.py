"""Selection over Parquet shards that do not fit in memory: a few passes of small pure functions.

The passes (each a function of one `Chunk`, so an engine may run them in any order, anywhere):

1. `stats_pass`: per chunk, the sums and squared sums of the features (shifted by the first
   row, as `standardize` does in memory), the target values, and the rows of a fixed uniform
   sample (`sample_rows` rows chosen by global position from the seed, before reading).
   Combined in chunk order, they give the same z-score as the in-memory path, the strata
   (classes or target quantiles, from the targets: 8 bytes a row) and the exact budget with its
   floors. The cluster centres are fitted per stratum on the standardized sample with the model
   the in-memory path uses (KMeans up to 10k rows, MiniBatchKMeans above).
2. `score_pass` (cluster only): per row, its cluster (the fitted model's `predict`) and its
   distance to the centre.
3. `write_pass`: the kept rows of each chunk, every source column plus `_shard` and `_row`.

Between 2 and 3 the driver decides, from the per-row scores alone (12 bytes a row, never the
features), exactly which rows are kept: `allocate` splits the budget over strata (one per class
at least), `pick_in_clusters` inside each, as `ClusterSelector` does. `random` needs no
features at all: its keys are drawn per stratum in the same order as in memory.

Same selection as `prunelab.select` for the same seed: always for `random`; for `cluster`
whenever every row fits in the sample (n <= sample_rows). Above that the centres come from a
uniform sample instead of all rows; `benchmarks/select_scale.py` measures what that costs.
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from prunelab.data.shards import Chunk, ShardSet, column, features_of, lean_arrow_pool, read_batches, write_kept
from prunelab.errors import UserError
from prunelab.progress import Event
from prunelab.select.budget import allocate, apply_floors, check_keep, requested_count
from prunelab.select.report import SelectionReport
from prunelab.select.strata import Strata, detect_task, make_strata

STREAMING_STRATEGIES = ("random", "cluster")
"""Strategies whose decision needs only per-row scores; the others need every row in memory."""


@dataclass(frozen=True)
class StreamSettings:
    """What to select and how to read. keep / keep_count: the budget (as `prunelab.select`);
    n_clusters, max_clusters, spread: as `ClusterSelector`; sample_rows: rows the centres are
    fitted on (uniform, by seed; capped at `sample_bytes` of features); chunk_rows: rows per
    work unit (whole row groups); batch_rows: rows decoded at once (bounds memory)."""

    strategy: str = "cluster"
    keep: float | None = None
    keep_count: int | None = None
    min_keep: int = 20
    task: str = "auto"
    random_state: int = 0
    n_clusters: int | None = None
    max_clusters: int = 64
    spread: float = 0.5
    sample_rows: int = 100_000
    sample_bytes: int = 64 << 20
    chunk_rows: int = 1 << 17
    batch_rows: int = 1 << 14

    def __post_init__(self) -> None:
        if self.strategy not in STREAMING_STRATEGIES:
            raise UserError(f"strategy {self.strategy!r} needs every row in memory; with --engine local or ray "
                            f"choose {' or '.join(STREAMING_STRATEGIES)}, or use --engine memory")
        check_keep(self.keep, self.keep_count)
        for name in ("min_keep", "max_clusters", "sample_rows", "chunk_rows", "batch_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"{name} must be an integer >= 1, got {v!r}")
        if self.n_clusters is not None and (not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 1):
            raise UserError(f"n_clusters must be an integer >= 1, got {self.n_clusters!r}")
        if not (isinstance(self.spread, (int, float)) and 0.0 <= float(self.spread) <= 1.0):
            raise UserError(f"spread must be in [0, 1], got {self.spread!r}")

    @property
    def fraction(self) -> float | None:
        return 0.3 if self.keep is None and self.keep_count is None else self.keep


# pass 1: statistics, targets, sample ---------------------------------------------------------------
@dataclass
class ChunkStats:
    """Pass 1 over one chunk: feature sums (d,) and squared sums (d,) of x - shift (float64);
    the targets, losslessly and compactly: one column as its sorted distinct values `y_values`
    and each row's position in them `y_codes` (int32 (rows,)), several columns as float64
    `y_values` (rows, t) (then `y_codes` is None); the sampled rows (m, d)."""

    rows: int
    sums: np.ndarray | None
    squares: np.ndarray | None
    y_values: np.ndarray | None
    y_codes: np.ndarray | None
    sample: np.ndarray | None


def stats_pass(chunk: Chunk, shards: ShardSet, shift: np.ndarray | None, sample_at: np.ndarray,
               batch_rows: int) -> ChunkStats:
    """Pass 1 for one chunk. shift: the first row of the data set (None: features not needed);
    sample_at: sorted positions inside the chunk whose rows join the sample."""
    cols = ([*shards.features] if shift is not None else []) + [*shards.targets]
    d = len(shards.features)
    sums = np.zeros(d) if shift is not None else None
    squares = np.zeros(d) if shift is not None else None
    ys: list[np.ndarray] = []
    samples: list[np.ndarray] = []
    at = 0
    if not cols:
        return ChunkStats(chunk.rows, None, None, None, None, None)
    for batch in read_batches(chunk, cols, batch_rows):
        m = batch.num_rows
        if shift is not None and sums is not None and squares is not None:
            X = features_of(batch, shards, chunk.path)
            with np.errstate(over="ignore", invalid="ignore"):
                block = X.astype(np.float64) - shift
                sums += block.sum(0)
                block *= block
                squares += block.sum(0)
            del block
            lo, hi = np.searchsorted(sample_at, [at, at + m])
            if hi > lo:
                samples.append(X[sample_at[lo:hi] - at].copy())
        if shards.targets:
            t = [column(batch, c, chunk.path) for c in shards.targets]
            ys.append(t[0] if len(t) == 1 else np.stack(t, 1).astype(np.float64))
        at += m
    if at != chunk.rows:
        raise UserError(f"{chunk.path}: row groups {list(chunk.row_groups)} hold {at} rows but the footer says "
                        f"{chunk.rows}; the file is damaged: write it again")
    y_values = y_codes = None
    if ys:
        y = np.concatenate(ys)
        del ys
        if y.dtype.kind in "OUS":
            y = y.astype(str)
        if y.ndim == 1:
            y_values, inverse = np.unique(y, return_inverse=True)
            y_codes = inverse.astype(np.int16 if len(y_values) < 2**15 else np.int32).ravel()
        else:
            y_values = y
    sample = np.concatenate(samples) if samples else (np.empty((0, d), shards.x_dtype) if shift is not None else None)
    return ChunkStats(chunk.rows, sums, squares, y_values, y_codes, sample)


def combine_targets(parts: list[ChunkStats], n: int, task: str) -> Strata:
    """The strata of `make_strata` from pass 1's per-chunk targets (in chunk order). Classes take
    4 bytes a row (codes into the sorted distinct labels, never the labels themselves); a
    regression target is rebuilt as float64 for its quantiles."""
    if not parts or parts[0].y_values is None:
        return make_strata(None, detect_task(None, task), n)
    if parts[0].y_codes is None:  # several target columns: a regression target
        y = np.concatenate([p.y_values for p in parts if p.y_values is not None])
        return make_strata(y, detect_task(y, task), n)
    distinct = np.unique(np.concatenate([p.y_values for p in parts if p.y_values is not None]))
    # detect_task on the distinct values decides as it would on y (dtype, integral, how many distinct)
    probe = distinct if len(distinct) > 1 else np.repeat(distinct, 2)
    kind = "none" if task == "none" else _task_of(probe, distinct, n, task)
    if kind == "classification":
        codes = np.empty(n, dtype=np.int16 if len(distinct) < 2**15 else np.int32)
        at = 0
        for p in parts:
            assert p.y_values is not None and p.y_codes is not None
            codes[at : at + p.rows] = np.searchsorted(distinct, p.y_values).astype(codes.dtype)[p.y_codes]
            at += p.rows
        return Strata(codes, [str(v) for v in distinct], "classification", True)
    if kind == "none":
        return make_strata(None, "none", n)
    y = np.concatenate([p.y_values[p.y_codes] for p in parts if p.y_values is not None and p.y_codes is not None])
    return make_strata(y, detect_task(y, task), n)


def _task_of(probe: np.ndarray, distinct: np.ndarray, n: int, task: str) -> str:
    """detect_task for a 1-D target known by its distinct values (and n rows)."""
    if task != "auto":
        return detect_task(probe, task)
    if distinct.dtype.kind in "biuUSO":
        return "classification"
    integral = bool(np.all(np.mod(distinct, 1) == 0))
    return "classification" if integral and len(distinct) <= max(20, int(np.sqrt(n))) else "regression"


@dataclass(frozen=True)
class Standardizer:
    """z = (x - center) / scale, computed as `prunelab.select.base.standardize` does: in float32
    when the input is float32 and the float32 centre and scale are finite, else in float64."""

    center: np.ndarray
    scale: np.ndarray
    fast32: bool

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.fast32:
            return ((X - self.center.astype(np.float32)) / self.scale.astype(np.float32)).astype(np.float32, copy=False)
        return ((X.astype(np.float64, copy=False) - self.center) / self.scale).astype(np.float32)


def make_standardizer(sums: np.ndarray, squares: np.ndarray, n: int, shift: np.ndarray, x_dtype: str) -> Standardizer:
    """From pass 1's totals (float64 (d,) each) over n rows, shifted by the first row `shift`."""
    mean, sq = sums / n, squares / n
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(sq))):
        raise UserError("features too large to standardize while streaming (squares overflow float64); divide "
                        "the huge columns by a constant, or use --engine memory")
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    std[std < 1e-12] = 1.0  # constant column: z = 0
    center, scale = shift + mean, std
    c32, s32 = center.astype(np.float32), scale.astype(np.float32)
    fast32 = x_dtype == "float32" and bool(np.all(np.isfinite(c32)) and np.all(np.isfinite(s32)) and np.all(s32 > 0))
    return Standardizer(center, scale, fast32)


def sample_positions(n: int, sample_rows: int, seed: int) -> np.ndarray:
    """Sorted global row positions of the uniform sample (all rows when n <= sample_rows)."""
    if n <= sample_rows:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5A11])  # its own stream: the selection's rng is untouched
    return np.sort(rng.choice(n, size=sample_rows, replace=False)).astype(np.int64)


# centres --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StratumModel:
    """The centres of one stratum: a fitted scikit-learn k-means (`model`) or one centre (`centre`)."""

    stratum: int
    model: Any = None
    centre: np.ndarray | None = None

    @property
    def clusters(self) -> int:
        return 1 if self.model is None else int(self.model.n_clusters)

    def assign(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster int64 (m,), distance to its centre float64 (m,)) for standardized rows Z (m, d)."""
        from prunelab.select.geometry import row_dist

        if self.model is None:
            assert self.centre is not None
            labels = np.zeros(len(Z), dtype=np.int64)
            return labels, row_dist(Z, self.centre[None, :], labels)
        labels = self.model.predict(Z).astype(np.int64)
        return labels, row_dist(Z, self.model.cluster_centers_.astype(np.float32), labels)


def fit_centres(Zs: np.ndarray, k: int, stratum: int, seed: int) -> StratumModel:
    """Fit one stratum's centres on its standardized sample rows Zs (m, d) as `kmeans_partition`
    does on all of them: one centre (the mean) when k <= 1 or m <= 1, else k-means with min(k, m)."""
    from prunelab.select.geometry import kmeans_model

    m = len(Zs)
    if k <= 1 or m <= 1:
        centre = (Zs.mean(0, dtype=np.float64) if m else np.zeros(Zs.shape[1])).astype(np.float32)
        return StratumModel(stratum, centre=centre)
    model = kmeans_model(m, min(k, m), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means on duplicate points warns about convergence
        model.fit(Zs)
    return StratumModel(stratum, model=model)


# pass 2: scores ------------------------------------------------------------------------------------
def score_pass(chunk: Chunk, shards: ShardSet, standardizer: Standardizer, codes: np.ndarray,
               models: dict[int, StratumModel], batch_rows: int, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2 for one chunk: (cluster int16/int32 (rows,), distance (rows,)); rows of strata
    without a model (kept whole or not at all) get cluster -1. codes: stratum per row (rows,).
    exact: distances as float64 (the in-memory ordering, ties included); else float32, which
    halves the driver's per-row memory when the centres come from a sample anyway."""
    most = max((m.clusters for m in models.values()), default=1)
    labels = np.full(chunk.rows, -1, dtype=np.int16 if most < 2**15 else np.int32)
    dist = np.zeros(chunk.rows, dtype=np.float64 if exact else np.float32)
    at = 0
    for batch in read_batches(chunk, shards.features, batch_rows):
        m = batch.num_rows
        Z = standardizer(features_of(batch, shards, chunk.path))
        part = codes[at : at + m]
        for s in np.unique(part):
            model = models.get(int(s))
            if model is None:
                continue
            rows = np.flatnonzero(part == s)
            lab, dd = model.assign(Z[rows])
            labels[at + rows] = lab
            dist[at + rows] = dd
        at += m
    return labels, dist


# the decision ---------------------------------------------------------------------------------------
def decide_random(strata: Strata, quotas: np.ndarray, seed: int) -> np.ndarray:
    """`RandomSelector`'s picks: per stratum in order, keys from one generator, the top `quota`."""
    from prunelab.select.base import top_k

    rng = np.random.default_rng(seed)
    picked = []
    for s, q in enumerate(quotas):
        idx = np.flatnonzero(strata.codes == s)
        if len(idx) == 0 or q == 0:
            continue
        picked.append(top_k(idx, rng.random(len(idx)), int(q)))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def decide_cluster(strata: Strata, quotas: np.ndarray, labels: np.ndarray, dist: np.ndarray,
                   spread: float) -> tuple[np.ndarray, int]:
    """`ClusterSelector`'s picks from the per-row scores: (sorted kept rows, clusters used)."""
    from prunelab.select.cluster import pick_in_clusters

    picked, clusters = [], 0
    for s, q in enumerate(quotas):
        idx = np.flatnonzero(strata.codes == s)
        if len(idx) == 0 or q == 0:
            continue
        if q >= len(idx):
            picked.append(idx)
            continue
        lab = labels[idx].astype(np.int64)
        clusters += int(len(np.unique(lab)))
        picked.append(idx[pick_in_clusters(lab, dist[idx].astype(np.float64), int(q), spread)])
    return np.sort(np.concatenate(picked)).astype(np.int64), clusters


def cluster_count(settings: StreamSettings, size: int, quota: int) -> int:
    """Clusters for a stratum, as `ClusterSelector._cluster` decides."""
    from prunelab.select.geometry import auto_clusters

    if settings.n_clusters:
        return min(int(settings.n_clusters), quota)
    return auto_clusters(size, quota, settings.max_clusters)


# engines see this ------------------------------------------------------------------------------------
class Engine(Protocol):
    """Runs one pass: `fn(*item)` for every item (one per chunk), handing each result to
    `consume(index, result)` as it arrives; `peaks()` = peak RSS per process (bytes)."""

    name: str

    def map(self, fn: Callable[..., Any], items: list[tuple[Any, ...]], consume: Callable[[int, Any], None],
            rows: list[int], tick: Callable[[int], None]) -> None: ...

    def peaks(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def max_rss() -> int:
    """This process's peak resident set size in bytes (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def release_memory() -> None:
    """Hand freed memory back to the OS between passes: Python's cycles, glibc's heap (malloc_trim;
    freed scikit-learn and Arrow temporaries otherwise stay resident) and Arrow's pool. Measured
    on 4M rows: the driver's peak RSS drops by about 20 MiB."""
    import ctypes
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass


@dataclass(frozen=True)
class PassStat:
    """One pass over the shards: name, rows read, wall seconds, rows per second."""

    name: str
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_s": self.rows_per_s}


@dataclass(frozen=True)
class StreamReport:
    """A selection over shards: the usual `SelectionReport` plus how it ran. rows_read: rows
    decoded over all passes; passes: one `PassStat` each; peak_rss: peak resident memory per
    process (bytes; 'driver' and, on Ray, one entry per worker); wall_seconds: the whole run;
    shards, chunks: how the input was cut; out: where the kept rows went."""

    selection: SelectionReport
    engine: str
    rows_read: int
    passes: tuple[PassStat, ...]
    peak_rss: dict[str, int]
    wall_seconds: float
    shards: int
    chunks: int
    out: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {**self.selection.to_dict(), "engine": self.engine, "rows_read": self.rows_read,
                "passes": [p.to_dict() for p in self.passes], "peak_rss": self.peak_rss,
                "wall_seconds": self.wall_seconds, "shards": self.shards, "chunks": self.chunks, "out": self.out}

    def summary(self) -> str:
        workers = {k: v for k, v in self.peak_rss.items() if k != "driver"}
        lines = [self.selection.summary(),
                 f"engine {self.engine}: {self.shards} shard(s), {self.chunks} chunk(s), {len(self.passes)} pass(es), "
                 f"{self.rows_read:,} rows read, {self.wall_seconds:.1f} s; peak RSS driver "
                 f"{self.peak_rss.get('driver', 0) / 2**20:.0f} MiB"
                 + (f", workers max {max(workers.values()) / 2**20:.0f} MiB ({len(workers)})" if workers else "")]
        lines += [f"  pass {p.name}: {p.rows:,} rows in {p.seconds:.1f} s ({p.rows_per_s:,.0f} rows/s)"
                  for p in self.passes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        s = self.selection
        return (f"StreamReport(engine={self.engine!r}, kept={s.kept_count}/{s.original_count}, "
                f"passes={len(self.passes)}, wall_seconds={self.wall_seconds:.1f})")


@dataclass(frozen=True)
class StreamResult:
    """indices: sorted int64 global row numbers kept (row i = i-th row of the shards in path
    order); report: what was measured."""

    indices: np.ndarray
    report: StreamReport


def _run_pass(engine: Engine, name: str, fn: Callable[..., Any], items: list[tuple[Any, ...]], rows: list[int],
              consume: Callable[[int, Any], None], progress: Callable[[Event], None] | None,
              stats: list[PassStat]) -> None:
    total = int(sum(rows))
    done = [0]
    if progress:
        progress(Event("start", phase=name, total_steps=total, message=f"pass {len(stats) + 1}: {name}"))

    def tick(r: int) -> None:
        done[0] += r
        if progress:
            progress(Event("batch", phase=name, step=done[0], total_steps=total))

    t0 = time.perf_counter()
    engine.map(fn, items, consume, rows, tick)
    seconds = time.perf_counter() - t0
    stats.append(PassStat(name, total, seconds))
    if progress:
        progress(Event("end", phase=name, step=total, total_steps=total, seconds=seconds))


def select_stream(shards: ShardSet, settings: StreamSettings, engine: Engine, staging: str | None = None,
                  progress: Callable[[Event], None] | None = None) -> StreamResult:
    """Run the passes on `engine`; write kept rows into `staging` (a directory) when given.
    Returns the kept global rows and the report; the caller commits `staging`. Native code
    (BLAS, OpenMP) runs on one thread per process: parallelism comes from the engine's workers,
    and a shared machine is not oversubscribed."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), lean_arrow_pool():
        return _select_stream(shards, settings, engine, staging, progress)


def _select_stream(shards: ShardSet, settings: StreamSettings, engine: Engine, staging: str | None,
                   progress: Callable[[Event], None] | None) -> StreamResult:
    t_start = time.perf_counter()
    n = shards.rows
    chunks = shards.chunks(settings.chunk_rows)
    rows = [c.rows for c in chunks]
    stats: list[PassStat] = []
    notes: list[str] = []
    seed = int(settings.random_state)
    want_x = settings.strategy == "cluster"

    # pass 1 ------------------------------------------------------------------------------------
    shift = first_row(shards, chunks[0]) if want_x else None
    sample_rows = min(settings.sample_rows, max(1, settings.sample_bytes // (4 * len(shards.features))))
    sample = sample_positions(n, sample_rows, seed) if want_x else np.empty(0, dtype=np.int64)
    sums = np.zeros(len(shards.features))
    squares = np.zeros(len(shards.features))
    parts: list[ChunkStats | None] = [None] * len(chunks)

    def take_stats(i: int, st: ChunkStats) -> None:
        parts[i] = st

    if want_x or shards.targets:
        items: list[tuple[Any, ...]] = []
        for c in chunks:
            lo, hi = np.searchsorted(sample, [c.start, c.start + c.rows])
            items.append((c, shards, shift, sample[lo:hi] - c.start, settings.batch_rows))
        _run_pass(engine, "statistics", stats_pass, items, rows, take_stats, progress, stats)
        del items
    done = [p for p in parts if p is not None]
    for p in done:  # in chunk order: the same totals on every engine
        if p.sums is not None and p.squares is not None:
            sums += p.sums
            squares += p.squares
    sample_parts = [p.sample for p in done if p.sample is not None]
    strata = combine_targets(done, n, settings.task)
    done, parts = [], []
    release_memory()
    requested = requested_count(n, settings.fraction, settings.keep_count)
    count, floors = apply_floors(requested, n, settings.min_keep, len(strata.labels) if strata.is_class else 0)
    quotas = allocate(strata.sizes, count, lower=1 if strata.is_class else 0)

    clusters = 0
    if settings.strategy == "random":
        kept = decide_random(strata, quotas, seed)
    else:
        assert shift is not None
        standardizer = make_standardizer(sums, squares, n, shift, shards.x_dtype)
        Zs = np.empty((len(sample), len(shards.features)), dtype=np.float32)
        at = 0
        while sample_parts:  # standardize part by part, freeing the raw rows as we go
            part = sample_parts.pop(0)
            Zs[at : at + len(part)] = standardizer(part)
            at += len(part)
            del part
        release_memory()
        sample_codes = strata.codes[sample]
        models: dict[int, StratumModel] = {}
        for s, q in enumerate(quotas):
            size = int(strata.sizes[s])
            if size == 0 or q == 0 or q >= size:
                continue
            k = cluster_count(settings, size, int(q))
            models[s] = fit_centres(Zs[sample_codes == s], k, s, seed)
        del Zs, sample_codes
        release_memory()
        if len(sample) < n:
            notes.append(f"cluster centres fitted on a uniform sample of {len(sample):,} of {n:,} rows "
                         f"(sample_rows={settings.sample_rows:,}); every row is scored against them")
        # pass 2 --------------------------------------------------------------------------------
        exact = len(sample) == n  # centres from every row: keep the in-memory float64 distances
        most = max((m.clusters for m in models.values()), default=1)
        labels = np.full(n, -1, dtype=np.int16 if most < 2**15 else np.int32)
        dist = np.zeros(n, dtype=np.float64 if exact else np.float32)

        def take_scores(i: int, res: tuple[np.ndarray, np.ndarray]) -> None:
            c = chunks[i]
            labels[c.start : c.start + c.rows], dist[c.start : c.start + c.rows] = res

        codes = strata.codes
        score_items: list[tuple[Any, ...]] = [
            (c, shards, standardizer, codes[c.start : c.start + c.rows], models, settings.batch_rows, exact)
            for c in chunks]
        _run_pass(engine, "scores", score_pass, score_items, rows, take_scores, progress, stats)
        del score_items
        kept, clusters = decide_cluster(strata, quotas, labels, dist, settings.spread)
        del labels, dist
        release_memory()
    if len(kept) != count:
        raise RuntimeError(f"streaming {settings.strategy} kept {len(kept)} rows, budget {count}")

    kept_per = np.bincount(strata.codes[kept], minlength=len(strata.labels))
    sizes = strata.sizes
    strata = Strata(np.zeros(0, dtype=np.int8), strata.labels, strata.task, strata.is_class)  # free the codes

    # pass 3 ------------------------------------------------------------------------------------
    if staging is not None:
        written = [0] * len(chunks)

        def take_written(i: int, m: int) -> None:
            written[i] = m

        write_items: list[tuple[Any, ...]] = []
        for c in chunks:
            lo, hi = np.searchsorted(kept, [c.start, c.start + c.rows])
            write_items.append((c, shards, kept[lo:hi], str(staging), settings.batch_rows, c.start))  # a view
        _run_pass(engine, "write", write_kept, write_items, rows, take_written, progress, stats)
        if sum(written) != count:
            raise RuntimeError(f"wrote {sum(written)} rows, kept {count}")

    row_bytes = shards.row_bytes()
    peaks = {"driver": max_rss(), **engine.peaks()}
    wall = time.perf_counter() - t_start
    selection = SelectionReport(
        strategy=settings.strategy, task=strata.task, original_count=n, requested_count=requested, kept_count=count,
        floors=floors,
        strata=[{"stratum": lab, "available": int(a), "kept": int(k)}
                for lab, a, k in zip(strata.labels, sizes, kept_per, strict=True)],
        clusters=clusters or None, bytes_before=n * row_bytes, bytes_after=count * row_bytes,
        peak_bytes=max(peaks.values()), seconds=wall,
        params={k: v for k, v in asdict(settings).items() if k not in ("chunk_rows", "batch_rows", "sample_bytes")},
        notes=notes + ["bytes: features, targets and extras as arrays (not file bytes); peak: RSS, not tracemalloc"])
    report = StreamReport(selection=selection, engine=engine.name, rows_read=int(sum(p.rows for p in stats)),
                          passes=tuple(stats), peak_rss=peaks, wall_seconds=wall, shards=len(shards.paths),
                          chunks=len(chunks), out=None, notes=tuple(notes))
    return StreamResult(indices=kept, report=report)


def first_row(shards: ShardSet, chunk: Chunk) -> np.ndarray:
    """The data set's first feature row as float64 (d,): the shift of the streamed sums."""
    for batch in read_batches(chunk, shards.features, 1):
        return features_of(batch, shards, chunk.path)[0].astype(np.float64)
    raise UserError(f"{chunk.path}: no rows")


class PassBar:
    """A progress bar per pass on stderr (rows, rows/s), driven by pass `Event`s."""

    def __init__(self) -> None:
        self._bar: Any = None

    def __call__(self, event: Event) -> None:
        from tqdm import tqdm

        if event.kind == "start":
            self._bar = tqdm(total=event.total_steps, desc=event.message or event.phase, unit="row", unit_scale=True,
                             file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=0.5)
        elif self._bar is None:
            return
        elif event.kind == "batch":
            self._bar.update(event.step - self._bar.n)
        elif event.kind == "end":
            self._bar.update(event.step - self._bar.n)
            self._bar.close()
            self._bar = None

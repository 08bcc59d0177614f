"""Engines that run a selection over Parquet shards, by name, and `select_dataset`, the one call.

    from prunelab.select import select_dataset
    res = select_dataset("shards/", target="label", keep=0.3, strategy="cluster", engine="local",
                         out="kept/")                  # StreamResult(indices, report)
    res.report.summary()

- `memory`: read every row into arrays and run `prunelab.select` (any strategy; memory ~ N).
- `local`: the streaming passes of `prunelab.select.streaming` in this process, one chunk at a
  time (memory ~ the chunk plus 12 bytes a row of scores).
- `ray`: the same pass functions mapped over the chunks with Ray Data (`ray[data]`, the extra
  `prunelab[ray]`), on a local Ray started for the run or on the cluster at `ray_address`.
  Workers read the shards by path, so every node must see the same files (a shared filesystem
  or object store mount); the driver keeps the 12 bytes a row and decides.

`list_engines()` names them; `get_engine(name, ...)` builds the local or Ray one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prunelab.errors import UserError
from prunelab.progress import Event
from prunelab.select.streaming import Engine, PassStat, StreamReport, StreamResult, StreamSettings, max_rss

ENGINES: dict[str, str] = {
    "memory": "every row in memory, any strategy (prunelab.select)",
    "local": "streaming passes in this process; memory bounded by the chunk",
    "ray": "the streaming passes on Ray Data (local Ray or --ray-address)",
}


def list_engines() -> list[str]:
    """Names accepted by `select_dataset(engine=...)` and `prunelab select --engine`."""
    return list(ENGINES)


class LocalEngine:
    """Runs each pass's chunks one after another in this process."""

    name = "local"

    def map(self, fn: Callable[..., Any], items: list[tuple[Any, ...]], consume: Callable[[int, Any], None],
            rows: list[int], tick: Callable[[int], None]) -> None:
        for i, item in enumerate(items):
            consume(i, fn(*item))
            tick(rows[i])

    def peaks(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "LocalEngine()"


def _ray_call(fn: Callable[..., Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A Ray Data row function: run `fn` on the row's item, return its result with the worker's
    pid, node and peak RSS (so the driver can report memory per process). Ray serializes the
    item and the result itself (they are our own objects: chunk descriptors and per-chunk arrays)."""

    def call(row: dict[str, Any]) -> dict[str, Any]:
        import ray

        from prunelab.data.shards import lean_arrow_pool
        from prunelab.select.streaming import max_rss as worker_rss

        with lean_arrow_pool():
            result = fn(*row["arg"])
        return {"i": row["i"], "out": result, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id(), "rss": worker_rss()}

    return call


class RayEngine:
    """Maps each pass's function over the chunks with Ray Data, `workers` tasks at a time (default:
    the cluster's CPUs). address: join a running cluster (`ray://...` or `host:port`); None starts a
    local Ray with `workers` CPUs (stopped by `close`). An already initialized Ray is reused."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--engine ray needs Ray: pip install 'prunelab[ray]'") from None
        self._started = False
        if not ray.is_initialized():
            opts: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                    "logging_level": logging.ERROR}
            try:
                if address:
                    ray.init(address=address, **opts)
                else:
                    # "local": a new Ray of our own, even when another cluster runs on this machine
                    ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, object_store_memory=1 << 30,
                             **opts)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"cannot start or join Ray ({str(exc).splitlines()[0]}); check --ray-address "
                                "(e.g. 127.0.0.1:6379) or start a cluster with `ray start --head`") from None
            self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our bar per pass counts rows
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = False  # results carry their chunk index
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # stderr is for our bars and errors
        self.workers = int(workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        self.nodes: set[str] = set()
        self._peaks: dict[str, int] = {}

    def map(self, fn: Callable[..., Any], items: list[tuple[Any, ...]], consume: Callable[[int, Any], None],
            rows: list[int], tick: Callable[[int], None]) -> None:
        import ray

        ds = ray.data.from_items([{"i": i, "arg": item} for i, item in enumerate(items)],
                                 override_num_blocks=len(items))
        mapped = ds.map(_ray_call(fn), num_cpus=1, compute=ray.data.TaskPoolStrategy(size=self.workers))
        try:
            for row in mapped.iter_rows():
                i = int(row["i"])
                consume(i, row["out"])
                key = f"worker {row['pid']} on node {str(row['node'])[:8]}"
                self._peaks[key] = max(self._peaks.get(key, 0), int(row["rss"]))
                self.nodes.add(str(row["node"]))
                tick(rows[i])
        except Exception as exc:  # a UserError raised in a worker comes back wrapped
            user = _find_user_error(exc)
            if user is not None:
                raise user from None
            raise

    def peaks(self) -> dict[str, int]:
        return dict(self._peaks)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __repr__(self) -> str:
        return f"RayEngine(workers={self.workers})"


def _find_user_error(exc: BaseException) -> UserError | None:
    """The UserError inside a Ray task error (by cause chain, or by its `error: ...` text)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or getattr(seen, "cause", None)
    text = str(exc)
    marker = "UserError: "
    if marker in text:
        return UserError(text.split(marker, 1)[1].strip().splitlines()[0])
    return None


def get_engine(name: str, *, ray_address: str | None = None, workers: int | None = None) -> Engine:
    """A streaming engine by name ('local' or 'ray')."""
    if name == "local":
        if ray_address:
            raise UserError("--ray-address is for --engine ray")
        return LocalEngine()
    if name == "ray":
        return RayEngine(ray_address, workers)
    raise UserError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


def select_dataset(source: str | Path, *, target: str | Sequence[str] = (), features: Sequence[str] | None = None,
                   timestamps: str | None = None, scores: str | None = None, keep: float | None = None,
                   keep_count: int | None = None, strategy: str = "cluster", min_keep: int = 20, task: str = "auto",
                   random_state: int = 0, engine: str = "local", out: str | Path | None = None,
                   ray_address: str | None = None, workers: int | None = None,
                   progress: Callable[[Event], None] | None = None, **params: Any) -> StreamResult:
    """Select from Parquet shards (a file, a directory of shards or a glob) and optionally write the
    kept rows as Parquet (`out`: `x.parquet` = one file, otherwise a directory with one part per
    chunk), each with `_shard` (source file, relative to the input root) and `_row` (row in it).

    The budget works as in `prunelab.select`: keep (fraction, default 0.3) or keep_count, raised only
    by the floors (min_keep, one per class). engine: 'local' (streaming, bounded memory), 'ray' (the
    same passes on Ray Data; ray_address joins a cluster, workers caps concurrent tasks) or 'memory'
    (every row in memory, any strategy). params: n_clusters, max_clusters, spread (cluster);
    sample_rows, chunk_rows, batch_rows (streaming); any strategy option for 'memory'. progress: a
    callback of `Event`s, one start..end per pass (`PassBar()` draws bars). Bad shards (missing
    column, wrong type, damaged file) raise UserError naming the file; nothing is written to `out`.
    """
    from prunelab.data.shards import check_out, commit, open_shards, staging_dir

    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    targets = [target] if isinstance(target, str) else list(target)
    out_path = check_out(out) if out is not None else None
    settings = None
    if engine != "memory":
        if timestamps or scores:
            raise UserError("timestamps / scores feed the importance strategy, which needs every row in memory: "
                            "use engine='memory' (--engine memory)")
        settings = StreamSettings(strategy=strategy, keep=keep, keep_count=keep_count, min_keep=min_keep, task=task,
                                  random_state=random_state, **params)
    shards = open_shards(source, targets, features, timestamps, scores)
    staging = staging_dir(out_path) if out_path is not None else None
    runner: Engine | None = None
    try:
        if engine == "memory":
            result = _select_in_memory(shards, staging, keep, keep_count, strategy, min_keep, task, random_state,
                                       progress, params)
        else:
            assert settings is not None
            runner = get_engine(engine, ray_address=ray_address, workers=workers)
            from prunelab.select.streaming import select_stream

            result = select_stream(shards, settings, runner, None if staging is None else str(staging), progress)
        if staging is not None and out_path is not None:
            commit(staging, out_path)
            staging = None
            rep = result.report
            result = StreamResult(result.indices, StreamReport(
                selection=rep.selection, engine=rep.engine, rows_read=rep.rows_read, passes=rep.passes,
                peak_rss=rep.peak_rss, wall_seconds=rep.wall_seconds, shards=rep.shards, chunks=rep.chunks,
                out=str(out_path), notes=rep.notes))
        return result
    finally:
        if runner is not None:
            runner.close()
        if staging is not None:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)


def _select_in_memory(shards: Any, staging: Path | None, keep: float | None, keep_count: int | None, strategy: str,
                      min_keep: int, task: str, random_state: int, progress: Callable[[Event], None] | None,
                      params: dict[str, Any]) -> StreamResult:
    """The `memory` engine: every row into arrays, `prunelab.select`, then the write pass."""
    from prunelab.data.shards import load_arrays, write_kept
    from prunelab.select.api import select

    t0 = time.perf_counter()
    for key in ("sample_rows", "chunk_rows", "batch_rows", "sample_bytes"):
        params.pop(key, None)
    n = shards.rows
    if progress:
        progress(Event("start", phase="load", total_steps=n, message="pass 1: load"))
    X, y, ts, sc = load_arrays(shards)
    passes = [PassStat("load", n, time.perf_counter() - t0)]
    if progress:
        progress(Event("end", phase="load", step=n, total_steps=n))
    if keep is None and keep_count is None and strategy != "auto":
        keep = 0.3
    sel = select(X, y, keep=keep, keep_count=keep_count, strategy=strategy, min_keep=min_keep, timestamps=ts,
                 scores=sc, task=task, random_state=random_state, **params)
    del X, y, ts, sc
    chunks = shards.chunks()
    if staging is not None:
        t1 = time.perf_counter()
        if progress:
            progress(Event("start", phase="write", total_steps=n, message="pass 2: write"))
        for c in chunks:
            lo, hi = np.searchsorted(sel.indices, [c.start, c.start + c.rows])
            write_kept(c, shards, sel.indices[lo:hi] - c.start, str(staging))
            if progress:
                progress(Event("batch", phase="write", step=c.start + c.rows, total_steps=n))
        passes.append(PassStat("write", n, time.perf_counter() - t1))
        if progress:
            progress(Event("end", phase="write", step=n, total_steps=n))
    wall = time.perf_counter() - t0
    peaks = {"driver": max_rss()}
    report = StreamReport(selection=sel.report, engine="memory", rows_read=int(sum(p.rows for p in passes)),
                          passes=tuple(passes), peak_rss=peaks, wall_seconds=wall, shards=len(shards.paths),
                          chunks=len(chunks))
    return StreamResult(indices=sel.indices, report=report)

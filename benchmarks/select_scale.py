"""Selection at scale: 10k .. 1M rows x 32 float32 features, one process per run.

    OMP_NUM_THREADS=1 python benchmarks/select_scale.py [--sizes 10000,...,1000000] [--threads 1]

For `random`, `cluster` and `prototype` (10 classes, keep 30%): wall time of the selection,
its tracemalloc peak, the process's peak RSS (ru_maxrss, includes the 128 MB input at 1M),
and beside it the plain scikit-learn / numpy core of the same work measured in the same process
(MiniBatchKMeans fit + predict on the whole array; numpy's random choice). The fitted time
exponent is the slope of log(seconds) against log(rows). Rewrites the `select:scale` block of
the select section in benchmarks/RESULTS.md.

    nice -n 10 python benchmarks/select_scale.py --shards [--shard-sizes 1000000,4000000,16000000]

Beyond memory (`--shards`): the same blobs written as Parquet shards of 100,000 rows (row groups
of 50,000) into a temporary folder under /tmp (deleted at the end), then `prunelab.select_dataset`
with the cluster strategy, keep 30%, one process per run: the local engine at each size, Ray with 1
and 2 workers at 4M. Per run: wall seconds, rows/s per pass, peak RSS of the process doing the work
(ru_maxrss; for Ray every worker process too), and checks on the written Parquet (rows = the
reported count, every class kept, (_shard, _row) unique, Ray's selection = the local one). The
time exponent is fitted on the local sizes >= 1M (past the fixed costs of start-up and
fitting). Quality where the streaming path cannot equal the in-memory one (more rows than the
centre sample): held-out 5-NN accuracy of the kept rows, in memory vs local vs random, at 1M.
At 100k rows (all in the default centre sample) it checks the selections are identical. Writes the
`select-shards` section of RESULTS.md (benchmarks/sections.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/sections.py
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
STRATEGIES = ("random", "cluster", "prototype")


def make_data(n: int, d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """50 Gaussian blobs in d dims, label = blob % 10. float32 (n, d), int64 (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(50, d)).astype(np.float32)
    blob = rng.integers(0, 50, size=n)
    X = centres[blob]
    X += rng.standard_normal(size=(n, d), dtype=np.float32)
    return X, (blob % 10).astype(np.int64)


def one(strategy: str, n: int) -> dict[str, object]:
    """Run one selection (in this process) and its plain baseline; return the measurements."""
    import prunelab

    X, y = make_data(n)
    sel = prunelab.select(X, y, keep=0.3, strategy=strategy)
    rep = sel.report
    t0 = time.perf_counter()
    if strategy == "random":
        rng = np.random.default_rng(0)
        base_idx = rng.choice(n, size=int(0.3 * n), replace=False)
        X[base_idx].nbytes  # noqa: B018 - the baseline materializes the subset too
        baseline = "numpy random.choice"
    else:
        from sklearn.cluster import MiniBatchKMeans

        km = MiniBatchKMeans(n_clusters=64, batch_size=4096, n_init=1, max_iter=30, max_no_improvement=5,
                             random_state=0).fit(X)
        km.predict(X)
        baseline = "sklearn MiniBatchKMeans(64) fit+predict"
    base_seconds = time.perf_counter() - t0
    return {"strategy": strategy, "n": n, "seconds": rep.seconds, "peak_bytes": rep.peak_bytes,
            "kept": rep.kept_count, "clusters": rep.clusters,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "baseline": baseline, "baseline_seconds": base_seconds}


def write_block(name: str, text: str) -> None:
    """Replace the `select:<name>` block inside the select section of RESULTS.md (create if missing)."""
    content = RESULTS.read_text()
    begin, end = "<!-- BEGIN select -->", "<!-- END select -->"
    if begin not in content:
        content = content.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = content.split(begin, 1)
    section, tail = rest.split(end, 1)
    b, e = f"<!-- BEGIN select:{name} -->", f"<!-- END select:{name} -->"
    block = f"{b}\n{text.rstrip()}\n{e}"
    if b in section:
        section = re.sub(re.escape(b) + r".*?" + re.escape(e), lambda _m: block, section, flags=re.S)
    else:
        section = section.rstrip("\n") + "\n" + block + "\n"
    RESULTS.write_text(head + begin + section + end + tail)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


SHARD_ROWS = 100_000


def write_shards(folder: Path, n: int, d: int = 32, noise: float = 1.0) -> None:
    """n rows of `make_data`'s blobs as Parquet shards of SHARD_ROWS rows (row groups of 50,000):
    columns f0..f{d-1} float32 and label int64. Shard s draws from its own seed, so memory stays
    at one shard. noise: std of the blobs (1 = `make_data`; QUALITY_NOISE overlaps them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    centres = np.random.default_rng(0).normal(0, 3, size=(50, d)).astype(np.float32)
    for s in range(0, n, SHARD_ROWS):
        m = min(SHARD_ROWS, n - s)
        rng = np.random.default_rng([1, s])
        blob = rng.integers(0, 50, size=m)
        X = centres[blob] + np.float32(noise) * rng.standard_normal(size=(m, d), dtype=np.float32)
        cols = {f"f{j}": X[:, j] for j in range(d)}
        cols["label"] = (blob % 10).astype(np.int64)
        pq.write_table(pa.table(cols), folder / f"part-{s // SHARD_ROWS:05d}.parquet", row_group_size=50_000)


QUALITY_NOISE = 4.5  # blobs of std 1 are separated perfectly by any subset (5-NN accuracy 1.0)


def held_out(n: int = 5000, d: int = 32, noise: float = QUALITY_NOISE) -> tuple[np.ndarray, np.ndarray]:
    """Test rows from the same blobs, drawn from a seed no shard uses."""
    centres = np.random.default_rng(0).normal(0, 3, size=(50, d)).astype(np.float32)
    rng = np.random.default_rng([2, 0])
    blob = rng.integers(0, 50, size=n)
    X = centres[blob] + np.float32(noise) * rng.standard_normal(size=(n, d), dtype=np.float32)
    return X, (blob % 10).astype(np.int64)


def check_output(out: Path, kept: int, classes: int) -> dict[str, object]:
    """Read the written Parquet back: row count, classes present, identity unique."""
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["label", "_shard", "_row"])
    pairs = {(s, r) for s, r in zip(table.column("_shard").to_pylist(), table.column("_row").to_pylist(),
                                     strict=True)}
    labels = np.unique(table.column("label").to_numpy())
    return {"written": table.num_rows, "written_equals_kept": table.num_rows == kept,
            "classes_written": int(len(labels)), "every_class": len(labels) == classes,
            "identity_unique": len(pairs) == table.num_rows}


def one_shards(engine: str, folder: str, workers: int, out: str, save: str) -> dict[str, object]:
    """One streamed selection in this process; its kept rows are saved to `save` (.npy)."""
    from prunelab.select import select_dataset

    t0 = time.perf_counter()
    res = select_dataset(folder, target="label", keep=0.3, strategy="cluster", engine=engine,
                         workers=workers or None, out=out or None)
    wall = time.perf_counter() - t0
    rep = res.report
    np.save(save, res.indices)
    row: dict[str, object] = {
        "engine": engine, "workers": workers, "n": rep.selection.original_count, "kept": rep.selection.kept_count,
        "requested": rep.selection.requested_count, "seconds": wall, "passes": [p.to_dict() for p in rep.passes],
        "driver_rss": rep.peak_rss["driver"],
        "worker_rss": {k: v for k, v in rep.peak_rss.items() if k != "driver"},
        "classes_kept": sum(1 for s in rep.selection.strata if s["kept"] > 0),
    }
    if out:
        row.update(check_output(Path(out), rep.selection.kept_count, 10))
    return row


def knn_accuracy(folder: str, kept: np.ndarray) -> float:
    """Held-out 5-NN accuracy of the kept rows (read back from the shards by global row number)."""
    from sklearn.neighbors import KNeighborsClassifier

    from prunelab.data.shards import load_arrays, open_shards

    X, y, _, _ = load_arrays(open_shards(folder, ["label"]))
    Xt, yt = held_out()
    model = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X[kept], y[kept])
    return float((model.predict(Xt) == yt).mean())


def one_quality(folder: str, save: str) -> dict[str, object]:
    """In memory vs local vs random on the same shards: overlap and held-out 5-NN accuracy."""
    from prunelab.select import select_dataset

    runs = {}
    for name, engine, strategy in (("memory", "memory", "cluster"), ("local", "local", "cluster"),
                                   ("random", "local", "random")):
        t0 = time.perf_counter()
        res = select_dataset(folder, target="label", keep=0.3, strategy=strategy, engine=engine)
        runs[name] = (res.indices, time.perf_counter() - t0)
    out: dict[str, object] = {"n": int(len(runs["memory"][0]) / 0.3 + 0.5)}
    mem, loc = runs["memory"][0], runs["local"][0]
    out["identical"] = bool(np.array_equal(mem, loc))
    out["overlap"] = float(len(np.intersect1d(mem, loc)) / len(mem))
    for name, (idx, secs) in runs.items():
        out[f"{name}_seconds"] = secs
        out[f"{name}_knn"] = knn_accuracy(folder, idx)
    return out


def run_json(args: list[str], env: dict[str, str]) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


LOAD = os.getloadavg()


def main_shards(sizes: list[int], ray_rows: int, quality_rows: list[int], no_write: bool) -> None:
    import shutil
    import tempfile

    from sections import write_section  # benchmarks/sections.py

    env = {**os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    tmp = Path(tempfile.mkdtemp(prefix="prunelab-shards-", dir="/tmp"))
    rows: list[dict[str, object]] = []
    quality: list[dict[str, object]] = []
    try:
        for n in sorted(set(quality_rows)):
            folder = tmp / f"q{n}"
            write_shards(folder, n, noise=QUALITY_NOISE)
            q = run_json(["--one-quality", str(folder), str(tmp / "q.npy")], env)
            quality.append(q)
            print(f"quality n={n:,}: identical={q['identical']} overlap={q['overlap']:.3f} 5-NN memory "
                  f"{q['memory_knn']:.4f} local {q['local_knn']:.4f} random {q['random_knn']:.4f}", flush=True)
            shutil.rmtree(folder)
        for n in sorted(set(sizes) | {ray_rows}):
            folder = tmp / f"d{n}"
            t0 = time.perf_counter()
            write_shards(folder, n)
            print(f"wrote {n:,} rows in {n // SHARD_ROWS} shards ({time.perf_counter() - t0:.0f} s)", flush=True)
            plan = ([("local", 0)] if n in sizes else []) + ([("ray", 1), ("ray", 2)] if n == ray_rows else [])
            saved: dict[str, np.ndarray] = {}
            for engine, workers in plan:
                out = tmp / f"out-{engine}-{workers}-{n}"
                save = tmp / f"kept-{engine}-{workers}.npy"
                row = run_json(["--one-shards", engine, str(folder), str(workers), str(out), str(save)], env)
                saved[f"{engine}{workers}"] = np.load(save)
                row["same_as_local"] = (bool(np.array_equal(saved[f"{engine}{workers}"], saved["local0"]))
                                        if "local0" in saved else None)
                rows.append(row)
                wr = row["worker_rss"]
                assert isinstance(wr, dict)
                print(f"{engine:5s} w={workers} n={n:>10,}: kept {row['kept']:,} (written {row.get('written')}, "
                      f"every class {row.get('every_class')}), {row['seconds']:.1f} s, "
                      f"{n / float(row['seconds']):,.0f} rows/s, driver rss {int(row['driver_rss']) / 2**20:.0f} MiB"
                      + (f", workers max {max(wr.values()) / 2**20:.0f} MiB" if wr else "")
                      + f", same as local {row['same_as_local']}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    body = shards_section(rows, quality, sizes)
    print(body)
    if not no_write:
        write_section(RESULTS, "select-shards", body)


def shards_section(rows: list[dict[str, object]], quality: list[dict[str, object]], sizes: list[int]) -> str:
    lines = [f"### Selection beyond memory (`nice -n 10 python benchmarks/select_scale.py --shards`; {machine()}, "
             "one native thread per process)", "",
             f"Parquet shards of {SHARD_ROWS:,} rows (row groups of 50,000), 32 float32 features + an int64 label "
             "(10 classes), cluster strategy, keep 30%, kept rows written as Parquet. rss = peak resident memory "
             "(ru_maxrss) of the process doing the work; Ray: the driver and its largest worker. A prunelab "
             "process with scikit-learn (which imports pandas) starts at about 210 MiB. rows/s = rows / wall "
             "seconds of the whole run (start-up and, for Ray, starting a local Ray included).", "",
             "| engine | workers | rows | kept (= written) | every class | (_shard, _row) unique | same as local "
             "| seconds | rows/s | pass rows/s (stats, scores, write) | driver rss MiB | worker rss MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        passes = r["passes"]
        assert isinstance(passes, list)
        wr = r["worker_rss"]
        assert isinstance(wr, dict)
        n, secs = int(str(r["n"])), float(str(r["seconds"]))
        lines.append(
            f"| {r['engine']} | {r['workers'] or '-'} | {n:,} | {int(str(r['kept'])):,} "
            f"({'=' if r.get('written_equals_kept') else 'MISMATCH'}) | {r.get('every_class')} | "
            f"{r.get('identity_unique')} | "
            f"{'-' if r['same_as_local'] is None else r['same_as_local']} | {secs:.1f} | {n / secs:,.0f} | "
            + ", ".join(f"{p['rows_per_s']:,.0f}" for p in passes)
            + f" | {int(str(r['driver_rss'])) / 2**20:.0f} | "
            + (f"{max(wr.values()) / 2**20:.0f} ({len(wr)} processes)" if wr else "-") + " |")
    local = [r for r in rows if r["engine"] == "local" and int(str(r["n"])) >= 1_000_000]
    if len(local) >= 2:
        ns = np.log([int(str(r["n"])) for r in local])
        wall = np.polyfit(ns, np.log([float(str(r["seconds"])) for r in local]), 1)[0]
        # the passes alone: start-up, imports and the centre fit are fixed costs
        passes = np.polyfit(ns, np.log([sum(p["seconds"] for p in r["passes"]) for r in local]), 1)[0]  # type: ignore
        sizes_text = ", ".join(f"{int(str(r['n'])):,}" for r in local)
        lines += ["", f"Local engine time exponent on {sizes_text} rows "
                      f"(slope of log seconds vs log rows): {passes:.2f} on the time spent in the passes (past the "
                      f"fixed costs of start-up and the centre fit), {wall:.2f} on wall time. The machine is shared: "
                      f"load average {LOAD[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."]
    for r in rows:
        if r["engine"] == "local" and int(str(r["n"])) == 4_000_000:
            verdict = "under" if int(str(r["driver_rss"])) < 384 * 2**20 else "OVER"
            lines.append(f"4M rows, local: peak RSS {int(str(r['driver_rss'])) / 2**20:.0f} MiB ({verdict} the "
                         "384 MiB bar).")
        if r["engine"] == "ray" and int(str(r["n"])) == 4_000_000:
            secs = float(str(r["seconds"]))
            lines.append(f"4M rows, Ray with {r['workers']} worker(s): {secs:.0f} s "
                         f"({'under' if secs < 300 else 'OVER'} the 300 s bar).")
    if quality:
        lines += ["", f"Quality against the in-memory path (blobs of std {QUALITY_NOISE}, which overlap; held-out 5-NN "
                      "accuracy on 5,000 rows from the same blobs, trained on the kept rows; random = the streaming "
                      "`random` at the same budget):", "",
                  "| rows | identical to memory | overlap with memory | memory | local | random | memory s | local s |",
                  "|---|---|---|---|---|---|---|---|"]
        for q in quality:
            lines.append(f"| {int(str(q['n'])):,} | {q['identical']} | {float(str(q['overlap'])):.3f} | "
                         f"{float(str(q['memory_knn'])):.4f} | {float(str(q['local_knn'])):.4f} | "
                         f"{float(str(q['random_knn'])):.4f} | {float(str(q['memory_seconds'])):.1f} | "
                         f"{float(str(q['local_seconds'])):.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("STRATEGY", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    ap.add_argument("--shards", action="store_true", help="Parquet shards: local and Ray engines (see above)")
    ap.add_argument("--shard-sizes", default="1000000,4000000,16000000", help="local engine sizes")
    ap.add_argument("--ray-rows", type=int, default=4_000_000, help="rows of the Ray runs (1 and 2 workers)")
    ap.add_argument("--quality-rows", default="100000,1000000", help="sizes of the memory-vs-local comparison")
    ap.add_argument("--one-shards", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--one-quality", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_shards:
        engine, folder, workers, out, save = args.one_shards
        print(json.dumps(one_shards(engine, folder, int(workers), out, save)))
        return
    if args.one_quality:
        print(json.dumps(one_quality(*args.one_quality)))
        return
    if args.shards:
        main_shards([int(s) for s in args.shard_sizes.split(",")], args.ray_rows,
                    [int(s) for s in args.quality_rows.split(",") if s], args.no_write)
        return
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "MKL_NUM_THREADS")}}
    rows = []
    for strategy in STRATEGIES:
        for n in sizes:
            proc = subprocess.run([sys.executable, __file__, "--one", strategy, str(n)], capture_output=True,
                                  text=True, env=env, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{strategy:10s} n={n:>8d}  {row['seconds']:7.2f} s  peak {row['peak_bytes'] / 2**20:7.1f} MiB  "
                  f"rss {row['max_rss_bytes'] / 2**20:7.0f} MiB  baseline {row['baseline_seconds']:6.2f} s",
                  flush=True)
    lines = [f"### Selection at scale (`benchmarks/select_scale.py`, {machine()}, {args.threads} thread(s))", "",
             "32 float32 features, 10 classes, keep 30%; one process per run. peak = tracemalloc peak of the "
             "selection; rss = process peak RSS (includes the input array: 128 MB at 1M rows).", "",
             "| strategy | rows | seconds | peak MiB | rss MiB | plain baseline | baseline s | ours / baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["seconds"] / r["baseline_seconds"] if r["baseline_seconds"] > 0 else float("nan")
        lines.append(f"| {r['strategy']} | {r['n']:,} | {r['seconds']:.2f} | {r['peak_bytes'] / 2**20:.1f} | "
                     f"{r['max_rss_bytes'] / 2**20:.0f} | {r['baseline']} | {r['baseline_seconds']:.2f} | "
                     f"{ratio:.2f} |")
    lines += ["", "Fitted time exponent (slope of log seconds vs log rows):", ""]
    for strategy in STRATEGIES:
        pts = [(r["n"], r["seconds"]) for r in rows if r["strategy"] == strategy]
        slope = np.polyfit(np.log([p[0] for p in pts]), np.log([max(p[1], 1e-4) for p in pts]), 1)[0]
        at_max = max(pts)[1]
        verdict = "under" if at_max < 60 else "OVER"
        lines.append(f"- {strategy}: exponent {slope:.2f}; {max(pts)[0]:,} rows in {at_max:.1f} s "
                     f"({verdict} the 60 s bar)")
        print(lines[-1])
    if not args.no_write:
        write_block("scale", "\n".join(lines))


if __name__ == "__main__":
    main()

"""Selection at scale: 10k .. 1M rows x 32 float32 features, one process per run.

    OMP_NUM_THREADS=1 python benchmarks/select_scale.py [--sizes 10000,...,1000000] [--threads 1]

For `random`, `cluster` and `prototype` (10 classes, keep 30%): wall time of the selection,
its tracemalloc peak, the process's peak RSS (ru_maxrss, includes the 128 MB input at 1M),
and beside it the plain scikit-learn / numpy core of the same work measured in the same process
(MiniBatchKMeans fit + predict on the whole array; numpy's random choice). The fitted time
exponent is the slope of log(seconds) against log(rows). Rewrites the `select:scale` block of
the select section in benchmarks/RESULTS.md.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("STRATEGY", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
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

"""Side by side with the tools users have today, on the same data, in one run.

    OMP_NUM_THREADS=1 python benchmarks/select_peers.py [--sizes 1000,2000] [--seeds 1]

Data: the workloads suite's run-history store and independent records (classification: best
worker count; prunelab.data.workloads). Downstream: 5-NN on the held-out set.
Rows:
- imbalanced-learn CondensedNearestNeighbour (one-vs-rest, keeps what it keeps) and
  EditedNearestNeighbours (sampling_strategy='all');
- the classic similarity-cluster heuristic, re-implemented here from its description for
  comparison only: pure-Python leader clustering (a record joins the first cluster whose leader is
  within `threshold` standardized distance, else starts one; O(n x clusters)), then each cluster
  keeps clamp(round(ratio x size), floor=1, cap=20) of its most recent records;
- prunelab: `condense` and `random` at the budgets imbalanced-learn's CNN and ENN chose, and `auto`.
Rewrites the `select:peers` block of the select section in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

import prunelab
from prunelab.data.workloads import make_store


def knn_acc(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    return float(np.mean(KNeighborsClassifier(n_neighbors=min(5, len(y))).fit(X, y).predict(Xt) == yt))


def similarity_clusters(X: np.ndarray, timestamps: np.ndarray, ratio: float = 0.3, threshold: float = 0.5,
                        floor: int = 1, cap: int = 20) -> np.ndarray:
    """The classic heuristic (see module docstring). Returns kept indices."""
    Z = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1)
    leaders: list[list[float]] = []
    members: list[list[int]] = []
    for i, row in enumerate(Z.tolist()):  # pure Python on purpose: that is how it was built
        for c, lead in enumerate(leaders):
            if math.sqrt(sum((a - b) ** 2 for a, b in zip(row, lead, strict=True))) <= threshold:
                members[c].append(i)
                break
        else:
            leaders.append(row)
            members.append([i])
    kept: list[int] = []
    for group in members:
        keep = min(cap, max(floor, round(ratio * len(group))))
        kept += sorted(group, key=lambda j: -timestamps[j])[:keep]
    return np.sort(np.array(kept, dtype=np.int64))


def run(sizes: list[int], seeds: int) -> list[dict[str, Any]]:
    from imblearn.under_sampling import CondensedNearestNeighbour, EditedNearestNeighbours

    rows = []
    for store in ("history", "records"):
        for n in sizes:
            for seed in range(seeds):
                d = make_store(store, n, seed=seed)
                X, y, Xt, yt = d.X, d.y_class, d.X_test, d.y_test_class
                full = knn_acc(X, y, Xt, yt)

                def add(method: str, idx: np.ndarray, seconds: float, *, _s: str = store, _n: int = n,
                        _seed: int = seed, _full: float = full, _X: np.ndarray = X, _y: np.ndarray = y,
                        _Xt: np.ndarray = Xt, _yt: np.ndarray = yt) -> None:
                    acc = knn_acc(_X[idx], _y[idx], _Xt, _yt)
                    rows.append({"store": _s, "n": _n, "seed": _seed, "method": method, "kept": int(len(idx)),
                                 "accuracy": acc, "full": _full, "seconds": seconds})
                    print(f"{_s:8s} n={_n:5d} seed={_seed} {method:34s} kept {len(idx):5d}  acc {100 * acc:6.2f}% "
                          f"(full {100 * _full:.2f}%)  {seconds:8.2f} s", flush=True)

                t0 = time.perf_counter()
                cnn = CondensedNearestNeighbour(random_state=seed)
                cnn.fit_resample(X, y)
                add("imblearn CondensedNearestNeighbour", cnn.sample_indices_, time.perf_counter() - t0)
                budget = len(cnn.sample_indices_)
                t0 = time.perf_counter()
                enn = EditedNearestNeighbours(sampling_strategy="all")
                enn.fit_resample(X, y)
                add("imblearn EditedNearestNeighbours", enn.sample_indices_, time.perf_counter() - t0)
                enn_budget = len(enn.sample_indices_)
                t0 = time.perf_counter()
                idx = similarity_clusters(X, d.timestamps)
                add("similarity-cluster heuristic", idx, time.perf_counter() - t0)
                for peer, count in (("CNN", budget), ("ENN", enn_budget)):
                    for strategy in ("condense", "random"):
                        sel = prunelab.select(X, y, keep_count=count, strategy=strategy, random_state=seed)
                        add(f"prunelab {strategy} ({peer}'s budget)", sel.indices, sel.report.seconds)
                sel = prunelab.select(X, y, strategy="auto", random_state=seed)
                add("prunelab auto", sel.indices, sel.report.seconds)
    return rows


def main() -> None:
    from select_scale import machine, write_block  # same folder: shared RESULTS.md writer

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,2000")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], args.seeds)
    lines = [f"### Peers (`benchmarks/select_peers.py`, {machine()}, 1 thread)", "",
             "Workloads stores (classification), 5-NN held-out accuracy; mean over "
             f"{args.seeds} seed(s). The similarity-cluster heuristic is re-implemented from its "
             "description, for comparison only.", "",
             "| store | rows | method | kept | accuracy % | full % | seconds |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["store"], r["n"], r["method"]) for r in rows}, key=lambda k: (k[0], k[1]))
    order = [r["method"] for r in rows if r["seed"] == 0 and r["store"] == rows[0]["store"] and r["n"] == rows[0]["n"]]
    keys.sort(key=lambda k: (k[0], k[1], order.index(k[2])))
    for store, n, method in keys:
        g = [r for r in rows if (r["store"], r["n"], r["method"]) == (store, n, method)]
        lines.append(f"| {store} | {n:,} | {method} | {np.mean([r['kept'] for r in g]):.0f} | "
                     f"{100 * np.mean([r['accuracy'] for r in g]):.2f} | {100 * np.mean([r['full'] for r in g]):.2f} | "
                     f"{np.mean([r['seconds'] for r in g]):.2f} |")
    print("\n".join(lines))
    if not args.no_write:
        write_block("peers", "\n".join(lines))


if __name__ == "__main__":
    main()

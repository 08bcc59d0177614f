"""Measure one Cell: the full store, random, every strategy at the cell's fraction, the strategy
chosen on a validation split, `auto` at that fraction and `auto` choosing the fraction.

Selection goes through the public API only (`prunelab.select`, `list_strategies`). The
downstream predictor is scikit-learn's k-NN (k = 5, uniform weights; regression: the mean of the
neighbours' targets) fitted on the kept rows and scored on the cell's held-out part. For each
fit we record the predictor's real size (`fitted_bytes`: every array it holds once fitted, the
k-d / ball tree's arrays included, shared buffers counted once) and its prediction latency on the
held-out rows (best of `repeats` timings, microseconds per row), beside the rows' bytes that
the selection report measures.

"Best on validation": each non-auto strategy is run at the cell's fraction on 75 % of the
training part, scored on the other 25 % (stratified for classes), and the winner there is the
one reported on the held-out part. The held-out part never takes part in a choice.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from prunelab.validate.families import Cell

K = 5
RANDOM_DRAWS = 3
VALIDATION_SHARE = 0.25


def make_predictor(task: str, n: int, k: int = K) -> Any:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    kk = max(1, min(k, n))
    return KNeighborsClassifier(n_neighbors=kk) if task == "classification" else KNeighborsRegressor(n_neighbors=kk)


def fitted_bytes(model: Any) -> int:
    """Bytes of every numpy array a fitted estimator holds (attributes, nested estimators, lists,
    dicts, scikit-learn's KDTree / BallTree arrays); arrays sharing memory are counted once."""
    seen: set[int] = set()
    arrays: list[np.ndarray] = []

    def walk(obj: Any, depth: int) -> None:
        if depth > 6 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.dtype != object:
                arrays.append(obj)
            else:
                for item in obj.ravel():
                    walk(item, depth + 1)
        elif hasattr(obj, "get_arrays") and callable(obj.get_arrays):  # sklearn BinaryTree
            for a in obj.get_arrays():
                walk(np.asarray(a), depth + 1)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item, depth + 1)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(("sklearn", "prunelab", "imblearn")):
            for item in vars(obj).values():
                walk(item, depth + 1)

    walk(model, 0)
    total, counted = 0, []  # type: tuple[int, list[np.ndarray]]
    for a in sorted(arrays, key=lambda a: -a.nbytes):
        if any(np.shares_memory(a, b) for b in counted):
            continue
        counted.append(a)
        total += a.nbytes
    return total


def fit_and_score(cell: Cell, idx: np.ndarray, repeats: int = 3, k: int = K) -> dict[str, float]:
    """Fit the predictor on rows `idx` and score it on the held-out part.

    Returns score (points), model_bytes, predict_us (per held-out row, best of `repeats`)."""
    model = make_predictor(cell.task, len(idx), k).fit(cell.X[idx], cell.y[idx])
    best = float("inf")
    pred = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        pred = model.predict(cell.X_test)
        best = min(best, time.perf_counter() - t0)
    assert pred is not None
    return {"score": cell.score(pred, cell.y_test), "model_bytes": float(fitted_bytes(model)),
            "predict_us": 1e6 * best / len(cell.X_test)}


def _select(cell: Cell, rows: np.ndarray, keep: float | None, strategy: str, seed: int) -> Any:
    import prunelab

    ts = cell.timestamps[rows] if cell.timestamps is not None else None
    options = cell.auto_options if strategy == "auto" else {}
    return prunelab.select(cell.X[rows], cell.y[rows], keep=keep, strategy=strategy, task=cell.task,
                           random_state=seed, timestamps=ts, **options)


def _floors(report: Any) -> list[str]:
    return [str(getattr(f, "name", f)) for f in getattr(report, "floors", [])]


def validation_split(cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """(inner-train, validation) row numbers of the training part, stratified for classes."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(cell.X))
    strat = None
    if cell.task == "classification" and np.unique(cell.y, return_counts=True)[1].min() >= 2:
        strat = cell.y
    tr, va = train_test_split(idx, test_size=VALIDATION_SHARE, random_state=cell.seed, stratify=strat)
    return np.sort(tr), np.sort(va)


def validation_choice(cell: Cell, strategies: list[str]) -> tuple[str, dict[str, float]]:
    """The strategy whose subset at cell.keep of the inner-train part scores best on validation."""
    tr, va = validation_split(cell)
    val = Cell(cell.family, cell.dataset, cell.task, cell.seed, cell.X[tr], cell.y[tr], cell.X[va], cell.y[va],
               cell.score, cell.metric, cell.redundant,
               None if cell.timestamps is None else cell.timestamps[tr], cell.keep)
    scores = {}
    for name in strategies:
        sel = _select(val, np.arange(len(tr)), cell.keep, name, cell.seed)
        scores[name] = fit_and_score(val, sel.indices, repeats=1)["score"]
    return max(scores, key=lambda s: scores[s]), scores


def measure(cell: Cell, strategies: list[str], repeats: int = 3) -> list[dict[str, Any]]:
    """Scenario rows for one cell (module docstring); one row per (method, draw)."""
    n = len(cell.X)
    everything = np.arange(n)
    full = fit_and_score(cell, everything, repeats)
    classes_total = int(len(np.unique(cell.y))) if cell.task == "classification" else 0
    base = {"suite": cell.family, "family": cell.family, "dataset": cell.dataset, "task": cell.task,
            "seed": cell.seed, "size": n, "metric": cell.metric, "redundant": cell.redundant,
            "quality": cell.quality, "score_full": full["score"], "model_bytes_full": full["model_bytes"],
            "predict_us_full": full["predict_us"], "classes_total": classes_total, **cell.info}
    rows: list[dict[str, Any]] = []

    def add(method: str, keep: float | None, sel: Any, **extra: Any) -> dict[str, Any]:
        rep = sel.report
        m = fit_and_score(cell, sel.indices, repeats)
        idx = np.asarray(sel.indices)
        row = {**base, "method": method, "keep": keep, "strategy": rep.strategy,
               "requested_count": int(rep.requested_count), "kept_count": int(len(idx)),
               "kept_fraction": len(idx) / n, "floors": _floors(rep),
               "indices_ok": bool(len(idx) and np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n),
               "classes_kept": int(len(np.unique(cell.y[idx]))) if classes_total else 0,
               "score": m["score"], "delta": m["score"] - full["score"],
               "rows_bytes_before": int(rep.bytes_before), "rows_bytes_after": int(rep.bytes_after),
               "rows_saving": float(rep.memory_saving), "model_bytes": m["model_bytes"],
               "model_saving": 1.0 - m["model_bytes"] / full["model_bytes"] if full["model_bytes"] else 0.0,
               "predict_us": m["predict_us"],
               "predict_speedup": full["predict_us"] / m["predict_us"] if m["predict_us"] > 0 else None,
               "select_seconds": float(rep.seconds), "reason": _reason(rep), **extra}
        rows.append(row)
        return row

    for j in range(RANDOM_DRAWS):
        add("random", cell.keep, _select(cell, everything, cell.keep, "random", cell.seed * 1000 + j), draw=j)
    per_strategy: dict[str, dict[str, Any]] = {}
    for name in strategies:
        if name == "random":
            continue
        per_strategy[name] = add(name, cell.keep, _select(cell, everything, cell.keep, name, cell.seed))
    if cell.quality:
        chosen, val_scores = validation_choice(cell, strategies)
        src = rows[0] if chosen == "random" else per_strategy[chosen]
        rows.append({**src, "method": "best-on-validation", "chosen": chosen, "validation_scores": val_scores,
                     "draw": 0})
    add("auto", cell.keep, _select(cell, everything, cell.keep, "auto", cell.seed))
    add("auto-fraction", None, _select(cell, everything, None, "auto", cell.seed))
    return rows


def _reason(report: Any) -> str:
    """auto's one-sentence reason when its report carries one (else empty)."""
    dec = getattr(report, "decisions", None) or {}
    for key in ("reason", "why", "sentence"):
        if isinstance(dec.get(key), str):
            return str(dec[key])
    return ""

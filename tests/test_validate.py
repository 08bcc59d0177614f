"""The validation runner: data families, real (tiny) runs with verdicts known in advance, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import prunelab
from prunelab.data.histories import HistorySpec, best_config, make_history, run_time_ms
from prunelab.errors import UserError
from prunelab.validate import Thresholds, families
from prunelab.validate.checks import invariant_checks, quality_checks
from prunelab.validate.scenarios import fitted_bytes
from tests.conftest import assert_user_error, run_cli

LENIENT = ("--min-gain-pp", "-1000", "--max-loss-pp", "1000", "--min-auto-saving", "0",
           "--min-kept-nonredundant", "0")
WINE = ("validate", "--suite", "sklearn", "--datasets", "wine", "--quick", "--seeds", "1", "--json")


def _run(out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli(*WINE, "--out", str(out), *extra, env={"OMP_NUM_THREADS": "1"})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    """One real run on wine whose thresholds no measurement can miss: the verdict is known."""
    out = tmp_path_factory.mktemp("validate") / "r"
    code, result = _run(out, *LENIENT)
    return code, result, out


def test_lenient_thresholds_exit_0_and_write_the_report(lenient: tuple[int, dict[str, Any], Path]) -> None:
    from PIL import Image

    code, result, out = lenient
    assert code == 0, result["checks"]
    assert result["failed"] == 0 and result["quality"]["failed"] == 0 and result["invariants"]["failed"] == 0
    assert result["seeds"] == [2000]  # report seeds by default, disjoint from development's 0-9
    kinds = {c["name"]: c["kind"] for c in result["checks"]}
    assert kinds["exact_counts"] == kinds["min_keep_floor"] == kinds["no_empty_class"] == "invariant"
    assert kinds["auto_keep_vs_random"] == kinds["auto_keep_vs_full"] == kinds["auto_fraction_loss"] == "quality"
    methods = {r["method"] for r in result["scenarios"]}
    strategies = set(prunelab.select.list_strategies()) - {"auto"}
    assert strategies | {"best-on-validation", "auto", "auto-fraction"} <= methods
    for r in result["scenarios"]:
        assert r["dataset"] == "wine" and r["seed"] == 2000 and 0 <= r["score"] <= 100
        assert r["rows_bytes_after"] <= r["rows_bytes_before"] and r["model_bytes"] > 0
    best = [r for r in result["scenarios"] if r["method"] == "best-on-validation"]
    assert len(best) == 1 and best[0]["chosen"] in strategies
    assert best[0]["chosen"] == max(best[0]["validation_scores"], key=best[0]["validation_scores"].get)
    md = (out / "report.md").read_text()
    assert "## Quality checks (can fail)" in md and "## Invariants (fail only on a bug)" in md
    assert "Report seeds 2000" in md and "development used seeds 0-9" in md
    for png in ("families_delta.png", "auto_fraction.png"):
        assert png in md
        with Image.open(out / png) as im:
            assert im.size[0] > 200


def test_impossible_gain_exits_1_with_the_same_measurements(lenient: tuple[int, dict[str, Any], Path],
                                                            tmp_path: Path) -> None:
    code_ok, ok, _ = lenient
    code, strict = _run(tmp_path / "b", *LENIENT[2:], "--min-gain-pp", "1000")
    assert (code_ok, code) == (0, 1)
    failed = [c for c in strict["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["auto_keep_vs_random"]
    twin = next(c for c in ok["checks"] if c["name"] == "auto_keep_vs_random")
    assert failed[0]["value"] == twin["value"] and failed[0]["threshold"] == 1000  # seeded: same data, same value


def _rows(auto: float, rnd: float, full: float, frac: float, kept: float, saving: float,
          redundant: bool | None) -> list[dict[str, Any]]:
    base = {"family": "histories", "dataset": "d", "task": "classification", "metric": "accuracy %",
            "redundant": redundant, "score_full": full, "keep": 0.3, "seed": 0, "quality": True,
            "model_bytes_full": 1000.0, "rows_saving": saving}
    return [{**base, "method": "random", "strategy": "random", "score": rnd},
            {**base, "method": "auto", "strategy": "auto:x", "score": auto},
            {**base, "method": "auto-fraction", "strategy": "auto:x", "score": frac, "kept_fraction": kept,
             "model_saving": saving, "model_bytes": 1000.0 * (1 - saving)}]


@pytest.mark.parametrize(("rows", "verdicts"), [
    (_rows(80.0, 79.6, 80.5, 80.0, 0.3, 0.7, True),
     {"auto_keep_vs_random": False, "auto_keep_vs_full": True, "auto_fraction_loss": True,
      "auto_fraction_saving": True}),
    (_rows(80.0, 79.4, 81.2, 79.0, 0.6, 0.4, True),
     {"auto_keep_vs_random": True, "auto_keep_vs_full": False, "auto_fraction_loss": False,
      "auto_fraction_saving": False}),
    (_rows(70.0, 60.0, 70.0, 70.0, 0.85, 0.15, False),
     {"auto_keep_vs_random": True, "auto_fraction_loss": True, "auto_fraction_keeps_nonredundant": False}),
    (_rows(70.0, 60.0, 70.0, 70.0, 0.3, 0.7, None),
     {"auto_keep_vs_random": True, "auto_keep_vs_full": True, "auto_fraction_loss": True}),
])
def test_quality_verdicts_on_known_numbers(rows: list[dict[str, Any]], verdicts: dict[str, bool]) -> None:
    got = {c.name: c.passed for c in quality_checks(rows, Thresholds())}
    assert got == verdicts
    assert all(c.kind == "quality" for c in quality_checks(rows, Thresholds()))


def test_invariants_catch_a_wrong_count_an_empty_class_and_bad_indices() -> None:
    good = {"family": "f", "method": "cluster", "size": 100, "requested_count": 30, "kept_count": 30, "floors": [],
            "classes_total": 3, "classes_kept": 3, "indices_ok": True}
    assert all(c.passed for c in invariant_checks([good], Thresholds()))
    bad = [{**good, "kept_count": 29}, {**good, "classes_kept": 2}, {**good, "indices_ok": False},
           {**good, "kept_count": 10, "requested_count": 10}]
    got = {c.name: c.passed for c in invariant_checks(bad, Thresholds())}
    assert got == {"exact_counts": False, "min_keep_floor": False, "no_empty_class": False, "valid_indices": False}
    floored = {**good, "requested_count": 10, "kept_count": 20, "floors": ["min_keep"]}
    assert all(c.passed for c in invariant_checks([floored], Thresholds()))


def test_history_repeats_are_heavy_tailed_and_held_out_mixes_known_and_unseen() -> None:
    d = make_history(HistorySpec("lognormal"), n=3000, seed=3, test_size=400)
    counts = np.bincount(d.groups)
    assert len(d.X) == 3000 and d.X.shape[1] == 7 and counts.sum() == 3000
    assert np.mean(counts <= 2) > 0.5 and counts.max() >= 50  # most once or twice, a few very often
    assert 0.6 < d.repeat_share < 1.0
    assert d.test_known.sum() == 200 and len(d.X_test) == 400
    once = make_history(HistorySpec("once"), n=500, seed=3)
    assert once.repeat_share == 0.0 and np.bincount(once.groups).max() == 1
    zipf = np.bincount(make_history(HistorySpec("zipf"), n=3000, seed=1).groups)
    assert zipf.max() >= 10 * np.median(zipf)


def test_history_labels_come_from_the_cost_model_and_noise_flips_a_share() -> None:
    clean = make_history(HistorySpec("zipf", "raw"), n=1000, seed=5)
    logged = make_history(HistorySpec("zipf", "log"), n=1000, seed=5)
    np.testing.assert_allclose(np.log10(clean.X[:, :5]), logged.X[:, :5], rtol=1e-9)
    noisy = make_history(HistorySpec("zipf", "raw", label_noise=0.4), n=1000, seed=5)
    changed = np.mean(noisy.y_class != clean.y_class)
    assert 0.2 < changed < 0.45  # 40 % relabelled at random over 7 classes: about 34 % differ
    params = np.array([[1e6, 10.0, 1.0, 1e-4, 0.1, 16, 64], [100, 1e-3, 1.0, 1e-4, 0.1, 16, 64]])
    cls, reg = best_config(params)
    assert cls[0] >= 4 and cls[1] == 0  # a long parallel job wants many workers, a tiny one just one
    t = run_time_ms(params)
    assert t.shape == (2, 7, 5) and np.all(t > 0)
    with pytest.raises(UserError):
        HistorySpec("pareto")


def test_sklearn_family_holds_out_stratified_and_standardizes() -> None:
    cells = list(families.cells("sklearn", [1000], quick=False, datasets=("wine", "diabetes")))
    wine, diabetes = cells
    assert (wine.task, diabetes.task) == ("classification", "regression")
    assert len(wine.X) + len(wine.X_test) == 178 and abs(len(wine.X_test) - 0.3 * 178) <= 1
    share = np.bincount(wine.y) / len(wine.y)
    share_test = np.bincount(wine.y_test) / len(wine.y_test)
    assert np.abs(share - share_test).max() < 0.05
    np.testing.assert_allclose(wine.X.mean(0), 0, atol=1e-9)
    assert wine.redundant is None and diabetes.metric == "R^2 x 100"


def test_fitted_bytes_counts_the_knn_arrays_and_grows_with_rows() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(1000, 8)), rng.integers(0, 3, 1000)
    small = fitted_bytes(KNeighborsClassifier(5).fit(X[:300], y[:300]))
    big = fitted_bytes(KNeighborsClassifier(5).fit(X, y))
    assert big >= X.nbytes and small >= X[:300].nbytes
    assert 2.5 < big / small < 4.0


def test_bad_input_is_one_error_line(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert_user_error(run_cli("validate", "--suite", "nope", "--out", str(out)), "unknown suite")
    assert_user_error(run_cli("validate", "--suite", "sklearn", "--datasets", "iris", "--out", str(out)),
                      "unknown data set")
    assert_user_error(run_cli("validate", "--suite", "workloads", "--datasets", "wine", "--out", str(out)),
                      "datasets")
    assert_user_error(run_cli("validate", "--seeds", "0", "--out", str(out)), "seeds")
    assert not out.exists()
    with pytest.raises(UserError):
        Thresholds(max_loss_pp=-1)
    with pytest.raises(UserError):
        Thresholds(min_auto_saving=1.5)


@pytest.mark.slow
def test_tiny_mnist_suite(tmp_path: Path) -> None:
    res = prunelab.validate(suite="mnist", quick=True, out=tmp_path / "m")
    rows = res.scenarios
    n_strategies = len(prunelab.select.list_strategies()) - 1
    assert len(rows) == 1 + n_strategies + 2  # full, each strategy at 30 %, auto at 30 %, auto's own fraction
    assert {r["keep"] for r in rows} == {1.0, 0.3, None}
    # real training: far above chance (10 %) even on 2,000 images for one epoch
    assert all(r["score"] > 30 for r in rows)
    quality = {c.name for c in res.checks if c.kind == "quality"}
    assert quality == {"auto_keep_vs_random", "auto_keep_vs_full", "auto_fraction_loss"}
    assert (tmp_path / "m" / "mnist_curve.png").exists()

"""The validation runner: a real (small) run, its report files, and verdicts that can fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prunelab
from prunelab.errors import UserError
from prunelab.validate import Thresholds, workload_suite
from tests.conftest import assert_user_error, run_cli


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, int]:
    out = tmp_path_factory.mktemp("validate") / "report"
    proc = run_cli("validate", "--suite", "workloads", "--quick", "--seeds", "1", "--out", str(out), "--json",
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout), out, proc.returncode


def test_quick_workloads_run_writes_reports(quick_run: tuple[dict, Path, int]) -> None:
    from PIL import Image

    result, out, code = quick_run
    assert {"scenarios", "passed", "failed", "checks"} <= set(result)
    assert code == (1 if result["failed"] else 0)
    assert result["passed"] + result["failed"] == len(result["checks"]) > 0
    methods = {r["method"] for r in result["scenarios"]}
    assert set(prunelab.select.list_strategies()) - {"auto"} <= methods
    assert {"conservative", "auto", "aggressive"} <= methods
    names = {c["name"] for c in result["checks"]}
    assert {"best_vs_random_keep30", "auto_saving", "auto_loss", "homogeneous_floors", "exact_counts"} <= names
    exact = next(c for c in result["checks"] if c["name"] == "exact_counts")
    assert exact["passed"]
    floors = next(c for c in result["checks"] if c["name"] == "homogeneous_floors")
    assert floors["passed"]
    for r in result["scenarios"]:
        assert r["bytes_after"] <= r["bytes_before"] and 0 <= r["accuracy"] <= 1
    saved = json.loads((out / "results.json").read_text())
    assert saved["passed"] == result["passed"] and saved["thresholds"]["max_loss_pp"] == 2.0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for png in ("workloads_accuracy.png", "workloads_time.png", "workloads_memory.png"):
        assert png in md and png in html
        with Image.open(out / png) as im:
            assert im.size[0] > 200
    assert "FAIL" in html or result["failed"] == 0


def test_thresholds_decide_and_are_not_widened(quick_run: tuple[dict, Path, int]) -> None:
    rows = quick_run[0]["scenarios"]
    strict = workload_suite.checks(rows, Thresholds(min_gain_pp=1e6, min_auto_saving=1.0, max_loss_pp=0.0))
    lenient = workload_suite.checks(rows, Thresholds(min_gain_pp=-0.0, min_auto_saving=0.0, max_loss_pp=1e6))
    by_name = {(c.name, c.scope): c for c in strict}
    assert all(not c.passed for c in strict if c.name in ("best_vs_random_keep30", "auto_saving"))
    for c in lenient:
        twin = by_name[(c.name, c.scope)]
        assert twin.value == c.value  # the measurement does not move with the threshold
        if c.name in ("best_vs_random_keep30", "auto_saving"):
            assert twin.threshold in (1e6, 1.0)
    with pytest.raises(UserError):
        Thresholds(max_loss_pp=-1)
    with pytest.raises(UserError):
        prunelab.validate(suite="nope")
    with pytest.raises(UserError):
        prunelab.validate(seeds=0)


def test_validate_cli_bad_suite(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert_user_error(run_cli("validate", "--suite", "nope", "--out", str(out)), "unknown suite")
    assert not out.exists()


@pytest.mark.slow
def test_tiny_mnist_suite(tmp_path: Path) -> None:
    res = prunelab.validate(suite="mnist", quick=True, out=tmp_path / "m")
    rows = res.scenarios
    assert {r["keep"] for r in rows} == {0.3, 0.5, 1.0}
    assert len(rows) == 2 * (len(prunelab.select.list_strategies()) - 1) + 1
    # real training: far above chance (10%) even on 2,000 images for one epoch
    assert all(r["accuracy"] > 0.3 for r in rows)
    assert {c.name for c in res.checks} == {"mnist_keep30_vs_random", "mnist_keep50_vs_full"}
    assert (tmp_path / "m" / "mnist_curve.png").exists()

"""`prunelab select` on real files: happy paths and every bad-input path (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_user_error, run_cli


def _npz(path: Path, n: int = 300, **arrays: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    data = {"X": rng.normal(size=(n, 4)).astype(np.float32), "y": rng.integers(0, 3, size=n)}
    data.update(arrays)
    np.savez(path, **data)
    return path


def _csv(path: Path, n: int = 120, label: bool = True) -> Path:
    rng = np.random.default_rng(1)
    lines = ["cpu,io,items,label,workers,chunk" if label else "cpu,io,items,workers,chunk"]
    for i in range(n):
        lab = f"{['a', 'b', 'c'][i % 3]}," if label else ""
        lines.append(f"{rng.normal():.4f},{rng.normal():.4f},{rng.integers(1, 99)},{lab}"
                     f"{2 ** rng.integers(0, 5)},{4 ** rng.integers(0, 4)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_select_npz_happy_path(tmp_path: Path) -> None:
    src = _npz(tmp_path / "in.npz", timestamps=np.arange(300.0))
    out, rep = tmp_path / "kept.npz", tmp_path / "report.json"
    proc = run_cli("select", "--input", str(src), "--keep", "0.3", "--strategy", "cluster", "--out", str(out),
                   "--report", str(rep), "--json", check=True)
    result = json.loads(proc.stdout)
    for key in ("kept_indices", "original_count", "kept_count", "bytes_before", "bytes_after", "seconds",
                "strategy", "report"):
        assert key in result
    assert result["original_count"] == 300 and result["kept_count"] == 90 == len(result["kept_indices"])
    assert result["bytes_before"] == 300 * (16 + 8 + 8) and result["bytes_after"] == 90 * 32
    with np.load(out, allow_pickle=False) as kept:
        src_X = np.load(src)["X"]
        np.testing.assert_array_equal(kept["X"], src_X[kept["indices"]])
        assert kept["y"].shape == (90,) and kept["timestamps"].shape == (90,)
    assert json.loads(rep.read_text())["kept_count"] == 90


def test_select_keep_count_and_auto(tmp_path: Path) -> None:
    src = _npz(tmp_path / "in.npz")
    res = json.loads(run_cli("select", "--input", str(src), "--keep-count", "37", "--folds", "2", "--json",
                             check=True).stdout)
    assert res["kept_count"] == 37 and res["strategy"].startswith("auto:")
    table = res["report"]["decisions"]["search"]["table"]
    assert {c["fraction"] for c in table} == {37 / 300}  # a budget: only the strategy is chosen
    assert all(c["folds"] == 4 for c in table)  # 2 folds x 2 repeats


def test_plain_select_measures_fraction_and_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prunelab.cli import main

    # 10 workloads recorded 30 times each (jittered): heavy repeats, labels from the workload
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(10, 4)) * 3
    w = np.repeat(np.arange(10), 30)
    X = (centres[w] + rng.normal(0, 0.05, size=(300, 4))).astype(np.float32)
    src = _npz(tmp_path / "runs.npz", X=X, y=(centres @ rng.normal(size=(4, 3))).argmax(1)[w])
    # 10 workloads are too few to show a 2 pp bound on unseen ones (the default mixed hold-out
    # keeps everything here): --holdout rows scores the repeats
    main(["select", "--input", str(src), "--tolerance", "0.02", "--k", "3", "--max-seconds", "30", "--folds", "2",
          "--holdout", "rows", "--json"])
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert captured.err == ""  # no progress bar under --json
    for key in ("kept_indices", "original_count", "kept_count", "bytes_before", "bytes_after", "seconds"):
        assert key in res  # the DESIGN contract
    d = res["report"]["decisions"]
    assert res["kept_count"] < 300 and d["keep"] < 1.0 and d["reason"]
    assert d["search"]["settings"]["tolerance"] == 0.02 and d["search"]["settings"]["max_seconds"] == 30
    assert d["search"]["settings"]["holdout"] == "rows"
    assert "n_neighbors=3" in d["search"]["estimator"]
    assert d["search"]["table"] and d["search"]["full"]["folds"] == 4
    main(["select", "--input", str(src), "--keep", "0.5", "--folds", "2"])
    captured = capsys.readouterr()
    assert "measured accuracy on 4 held-out folds" in captured.out and "condense" in captured.out
    # the search's progress bar on stderr: the full store's 4 fits + 6 strategies x 4 folds at 50%
    assert "auto search: 100%" in captured.err and "28/28" in captured.err


def test_select_csv_classification_and_regression(tmp_path: Path) -> None:
    src = _csv(tmp_path / "runs.csv")
    out = tmp_path / "kept.csv"
    res = json.loads(run_cli("select", "--input", str(src), "--target", "label", "--keep", "0.25",
                             "--strategy", "condense", "--out", str(out), "--json", check=True).stdout)
    assert res["kept_count"] == 30 and res["report"]["task"] == "classification"
    lines = out.read_text().splitlines()
    original = src.read_text().splitlines()
    assert lines[0] == original[0] and len(lines) == 31
    assert lines[1:] == [original[i + 1] for i in res["kept_indices"]]
    src = _csv(tmp_path / "numeric.csv", label=False)
    res = json.loads(run_cli("select", "--input", str(src), "--target", "workers", "--target", "chunk",
                             "--keep", "0.5", "--strategy", "prototype", "--json", check=True).stdout)
    assert res["kept_count"] == 60 and res["report"]["task"] == "regression"
    # targets that are choices from a grid: auto scores them as choices, and says so
    res = json.loads(run_cli("select", "--input", str(src), "--target", "workers", "--target", "chunk",
                             "--keep", "0.5", "--scoring", "snapped_accuracy", "--folds", "2", "--json",
                             check=True).stdout)
    assert res["kept_count"] == 60 and res["report"]["decisions"]["search"]["metric"] == "snapped_accuracy"


def _bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    good = _npz(tmp / "good.npz")
    nan_X = np.ones((50, 3))
    nan_X[4, 1] = np.nan
    inf_X = np.ones((50, 3))
    inf_X[2, 0] = np.inf
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    csv = _csv(tmp / "runs.csv")
    np.save(tmp / "obj.npy", np.zeros(1))
    return [
        (["--input", str(_npz(tmp / "nan.npz", X=nan_X, y=np.zeros(50)))], "nan or inf"),
        (["--input", str(_npz(tmp / "inf.npz", X=inf_X, y=np.zeros(50)))], "nan or inf"),
        (["--input", str(_npz(tmp / "empty.npz", X=np.zeros((0, 3)), y=np.zeros(0)))], "empty"),
        (["--input", str(_npz(tmp / "mismatch.npz", y=np.zeros(7)))], "same length"),
        (["--input", str(good), "--keep", "0"], "'keep' parameter"),
        (["--input", str(good), "--keep", "1.5"], "'keep' parameter"),
        (["--input", str(good), "--keep", "0.5", "--tolerance", "-1"], "'tolerance' parameter"),
        (["--input", str(good), "--keep", "0.5", "--folds", "1"], "'folds' parameter"),
        (["--input", str(good), "--strategy", "cluster", "--k", "3"], "--k: only for --strategy auto"),
        (["--input", str(good), "--min-keep", "0"], "min_keep"),
        (["--input", str(good), "--strategy", "magic"], "unknown strategy"),
        (["--input", str(good), "--keep", "0.5", "--scoring", "r3"], "unknown scoring 'r3'"),
        (["--input", str(csv), "--target", "label", "--keep", "0.5", "--scoring", "snapped_accuracy"],
         "regression"),
        (["--input", str(good), "--strategy", "cluster", "--scoring", "r2"], "--scoring: only for --strategy auto"),
        (["--input", str(corrupt)], "cannot read"),
        (["--input", str(tmp / "missing.npz")], "not found"),
        (["--input", str(tmp / "obj.npy")], "unsupported input"),
        (["--input", str(csv), "--target", "nope"], "column 'nope' not in"),
        (["--input", str(good), "--keep", "abc"], "invalid float"),
        (["--input", str(good), "--keep", "0.3", "--keep-count", "5"], "not both"),
    ]


def test_select_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every bad-input path through the real CLI entry point (in-process for speed)."""
    from prunelab.cli import main

    for args, fragment in _bad_cases(tmp_path):
        out, rep = tmp_path / "out.npz", tmp_path / "rep.json"
        with pytest.raises(SystemExit) as info:
            main(["select", *args, "--out", str(out), "--report", str(rep)])
        captured = capsys.readouterr()
        proc = subprocess.CompletedProcess(args, info.value.code, captured.out, captured.err)
        assert_user_error(proc, fragment)
        assert not out.exists() and not rep.exists(), args


def test_select_bad_input_in_a_real_process(tmp_path: Path) -> None:
    nan_X = np.ones((50, 3))
    nan_X[4, 1] = np.nan
    src = _npz(tmp_path / "nan.npz", X=nan_X, y=np.zeros(50))
    out = tmp_path / "out.npz"
    assert_user_error(run_cli("select", "--input", str(src), "--keep", "0.3", "--out", str(out)), "nan or inf")
    assert not out.exists()


def test_select_csv_timestamps_and_scores_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prunelab.cli import main

    src = _csv(tmp_path / "runs.csv")
    main(["select", "--input", str(src), "--target", "label", "--timestamps", "items", "--scores", "cpu",
          "--strategy", "importance", "--keep-count", "40", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert res["kept_count"] == 40
    assert res["report"]["decisions"]["components"] == ["recency", "quality", "difficulty"]
    # 3 float64 features (io, workers, chunk), 1-char labels (<U1: 4 bytes), float64 timestamps and scores
    assert res["bytes_before"] == 120 * (3 * 8 + 4 + 8 + 8)


def test_holdout_choices_are_the_searchs() -> None:
    """The CLI lists the hold-outs the search knows (kept as a literal so the CLI starts fast)."""
    import argparse

    from prunelab.cli.select import register
    from prunelab.select.search import HOLDOUTS

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    register(sub)
    action = next(a for p in sub.choices.values() for a in p._actions if a.dest == "holdout")
    assert tuple(action.choices) == HOLDOUTS

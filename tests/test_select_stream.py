"""Selection over Parquet shards: the streaming `local` engine against the in-memory path, exact
budgets and floors, written Parquet with (shard, row) identity, and bad shards (exit 2, one line
naming the file, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prunelab
from prunelab.data.shards import open_shards
from prunelab.errors import UserError
from prunelab.select import select_dataset
from tests.conftest import assert_user_error, run_cli, run_cli_inproc


def blobs(n: int, d: int = 6, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, float32 (n, d), label = blob % classes (int64 (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(12, d)).astype(np.float32)
    blob = rng.integers(0, 12, size=n)
    return centres[blob] + rng.standard_normal(size=(n, d), dtype=np.float32), (blob % classes).astype(np.int64)


def write_shards(folder: Path, X: np.ndarray, y: np.ndarray | list[str], shards: int = 3,
                 row_group: int = 1500, **extra: np.ndarray) -> Path:
    """X, y (and extra columns) as `shards` Parquet files with row groups of `row_group` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(X), shards + 1).astype(int)
    for s in range(shards):
        a, b = bounds[s], bounds[s + 1]
        cols = {f"f{j}": X[a:b, j] for j in range(X.shape[1])}
        cols["label"] = np.asarray(y)[a:b]
        cols.update({k: v[a:b] for k, v in extra.items()})
        pq.write_table(pa.table(cols), folder / f"part-{s}.parquet", row_group_size=row_group)
    return folder


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    X, y = blobs(12_000)
    return write_shards(tmp_path_factory.mktemp("shards") / "in", X, y), X, y


@pytest.mark.parametrize("strategy", ["cluster", "random"])
def test_local_engine_selects_exactly_what_memory_selects(shards: tuple[Path, np.ndarray, np.ndarray],
                                                          strategy: str) -> None:
    folder, X, y = shards
    ref = prunelab.select(X, y, keep=0.3, strategy=strategy, random_state=3)
    # small chunks and batches: many chunks per shard, batches cut across row groups
    res = select_dataset(folder, target="label", keep=0.3, strategy=strategy, random_state=3, engine="local",
                         chunk_rows=2000, batch_rows=700)
    np.testing.assert_array_equal(res.indices, ref.indices)
    assert res.report.selection.kept_count == 3600 == len(res.indices)
    assert res.report.chunks == 9 and res.report.shards == 3  # row groups of 1,500, 1,500, 1,000
    assert [p.name for p in res.report.passes] == (["statistics", "scores"] if strategy == "cluster"
                                                   else ["statistics"])
    mem = select_dataset(folder, target="label", keep=0.3, strategy=strategy, random_state=3, engine="memory")
    np.testing.assert_array_equal(mem.indices, ref.indices)


def test_sampled_centres_keep_exact_budget_every_class_and_quality(tmp_path: Path) -> None:
    X, y = blobs(12_000, classes=5)
    y[7] = 9  # a class of one row: the floor must keep it
    folder = write_shards(tmp_path / "in", X, y)
    res = select_dataset(folder, target="label", keep=0.1, strategy="cluster", engine="local", sample_rows=1500)
    rep = res.report.selection
    assert rep.kept_count == rep.requested_count == 1200 == len(np.unique(res.indices))
    assert all(s["kept"] >= 1 for s in rep.strata) and 7 in res.indices
    assert any("sample of 1,500" in note for note in rep.notes)
    ref = prunelab.select(X, y, keep=0.1, strategy="cluster")
    # the centres differ (a sample instead of all rows); the picks stay mostly the same rows' neighbourhoods
    from sklearn.neighbors import KNeighborsClassifier

    Xt, yt = blobs(2000, classes=5, seed=1)
    acc = {name: (KNeighborsClassifier(5).fit(X[i], y[i]).predict(Xt) == yt).mean()
           for name, i in (("memory", ref.indices), ("local", res.indices))}
    assert acc["local"] >= acc["memory"] - 0.03, acc


def test_floors_raise_the_count_and_are_reported(shards: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, X, y = shards
    res = select_dataset(folder, target="label", keep_count=3, strategy="cluster", engine="local", min_keep=20)
    rep = res.report.selection
    assert rep.requested_count == 3 and rep.kept_count == 20 == len(res.indices)
    assert [f.name for f in rep.floors] == ["min_keep"]
    assert sorted(np.unique(y[res.indices])) == [0, 1, 2, 3]


def test_regression_targets_string_labels_and_no_target_match_memory(tmp_path: Path) -> None:
    X, y = blobs(3000)
    t2 = X[:, :2].sum(1).astype(np.float64)
    folder = write_shards(tmp_path / "reg", X, y.astype(np.float64) + 0.5 * X[:, 0], t2=t2)
    res = select_dataset(folder, target=["label", "t2"], keep=0.2, strategy="random", engine="local")
    ref = prunelab.select(X, np.stack([y + 0.5 * X[:, 0], t2], 1), keep=0.2, strategy="random")
    assert res.report.selection.task == "regression"
    np.testing.assert_array_equal(res.indices, ref.indices)
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    folder = write_shards(tmp_path / "str", X, list(names))
    res = select_dataset(folder, target="label", keep=0.2, strategy="cluster", engine="local")
    ref = prunelab.select(X, names, keep=0.2, strategy="cluster")
    np.testing.assert_array_equal(res.indices, ref.indices)
    assert [s["stratum"] for s in res.report.selection.strata] == ["ant", "bee", "cat", "dog"]
    res = select_dataset(folder, features=["f0", "f1"], keep=0.2, strategy="cluster", engine="local")
    ref = prunelab.select(X[:, :2], None, keep=0.2, strategy="cluster")
    np.testing.assert_array_equal(res.indices, ref.indices)


@pytest.mark.parametrize("out_name", ["kept", "kept.parquet"])
def test_written_parquet_joins_back_to_the_source(shards: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                                  out_name: str) -> None:
    folder, X, y = shards
    out = tmp_path / out_name
    res = select_dataset(folder, target="label", keep=0.25, strategy="cluster", engine="local", out=out,
                         chunk_rows=3000)
    table = pq.read_table(out)
    assert table.num_rows == res.report.selection.kept_count == 3000
    assert res.report.out == str(out) and [p.name for p in res.report.passes][-1] == "write"
    shard_rows = {f"part-{s}.parquet": a for s, a in enumerate(np.linspace(0, len(X), 4).astype(int)[:3])}
    rows = np.array([shard_rows[s] + r for s, r in zip(table.column("_shard").to_pylist(),
                                                       table.column("_row").to_pylist(), strict=True)])
    np.testing.assert_array_equal(np.sort(rows), res.indices)
    np.testing.assert_array_equal(table.column("f2").to_numpy(), X[rows, 2])
    np.testing.assert_array_equal(table.column("label").to_numpy(), y[rows])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_discovery_file_dir_glob_and_schema_errors_name_the_file(shards: tuple[Path, np.ndarray, np.ndarray],
                                                                 tmp_path: Path) -> None:
    folder, X, _ = shards
    assert open_shards(folder / "part-1.parquet", ["label"]).rows == 4000
    assert open_shards(str(folder / "part-[01].parquet"), ["label"]).rows == 8000
    s = open_shards(folder, ["label"])
    assert s.features == tuple(f"f{j}" for j in range(6)) and s.x_dtype == "float32" and s.rows == 12_000
    with pytest.raises(UserError, match="no column 'nope'"):
        open_shards(folder, ["nope"])
    with pytest.raises(UserError, match="matches no file"):
        open_shards(str(tmp_path / "*.parquet"))
    with pytest.raises(UserError, match="needs every row in memory"):
        select_dataset(folder, target="label", strategy="importance", engine="local")


def bad_shards(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A folder of three good shards plus one bad one; returns (folder, bad file)."""
    X, y = blobs(3000)
    folder = write_shards(tmp_path / "in", X, y)
    bad = folder / "part-9.parquet"
    if kind == "missing":
        pq.write_table(pa.table({"f0": X[:10, 0], "label": y[:10]}), bad)
    elif kind == "type":
        cols: dict[str, object] = {f"f{j}": X[:10, j] for j in range(6)}
        cols["f3"] = [str(v) for v in X[:10, 3]]
        cols["label"] = y[:10]
        pq.write_table(pa.table(cols), bad)
    elif kind == "truncated":
        good = (folder / "part-0.parquet").read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    elif kind == "nan":  # readable footer, bad values: found during the first pass, after work started
        Xn = X[:10].copy()
        Xn[4, 2] = np.nan
        write_shards(tmp_path / "nan", Xn, y[:10], shards=1)
        (tmp_path / "nan" / "part-0.parquet").rename(bad)
    return folder, bad


@pytest.mark.parametrize(("kind", "fragment"), [("missing", "no column 'f1'"), ("type", "'f3' is string, not numeric"),
                                                ("truncated", "truncated or damaged"), ("nan", "NaN or inf")])
def test_bad_shard_raises_naming_the_file_and_writes_nothing(tmp_path: Path, kind: str, fragment: str) -> None:
    folder, bad = bad_shards(tmp_path, kind)
    out = tmp_path / "kept"
    with pytest.raises(UserError, match=fragment) as err:
        select_dataset(folder, target="label", keep=0.3, strategy="cluster", engine="local", out=out)
    assert str(err.value).startswith(str(bad))
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "home")  # home: PRUNELAB_HOME
    assert not out.exists() and left == ["in"] + (["nan"] if kind == "nan" else [])


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`prunelab ARGS` in this process (the imports are paid once): (exit code, stdout, stderr)."""
    proc = run_cli_inproc(capsys, *args)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_bad_shard_exit_2_one_line(tmp_path: Path) -> None:
    folder, bad = bad_shards(tmp_path, "truncated")
    out = tmp_path / "kept"
    proc = run_cli("select", "--input", str(folder), "--target", "label", "--keep", "0.3", "--strategy", "cluster",
                   "--engine", "local", "--out", str(out))
    assert_user_error(proc, str(bad))
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_parquet_json_and_bars(shards: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder, _, _ = shards
    out = tmp_path / "kept.parquet"
    code, stdout, stderr = cli(capsys, "select", "--input", str(folder / "*.parquet"), "--target", "label", "--keep",
                               "0.3", "--strategy", "cluster", "--out", str(out), "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["engine"] == "local" and result["kept_count"] == 3600 and "kept_indices" not in result
    assert result["rows_read"] == 36_000 and [p["name"] for p in result["passes"]] == ["statistics", "scores",
                                                                                         "write"]
    assert result["peak_rss"]["driver"] > 0 and pq.read_metadata(out).num_rows == 3600
    assert stderr.strip() == ""  # no bars under --json
    code, stdout, stderr = cli(capsys, "select", "--input", str(folder), "--target", "label", "--keep-count", "100",
                               "--strategy", "random")
    assert code == 0 and "pass 1: statistics" in stderr and "row/s" in stderr and "engine local" in stdout
    code, stdout, stderr = cli(capsys, "select", "--input", str(folder), "--target", "label", "--strategy", "random",
                               "--engine", "memory", "--keep-count", "50", "--json")
    assert code == 0 and len(json.loads(stdout)["kept_indices"]) == 50  # the in-memory contract
    for args, fragment in [(("--engine", "local", "--strategy", "condense"), "needs every row in memory"),
                           (("--ray-address", "127.0.0.1:1"), "--ray-address is for --engine ray"),
                           (("--out", str(tmp_path / "x.npz")), "Parquet input writes Parquet")]:
        code, _, stderr = cli(capsys, "select", "--input", str(folder), "--target", "label", *args)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], stderr
    for bad in ("missing", "type"):
        sub = tmp_path / bad
        sub.mkdir()
        folder_bad, bad_file = bad_shards(sub, bad)
        code, _, stderr = cli(capsys, "select", "--input", str(folder_bad), "--target", "label", "--out",
                              str(sub / "kept"))
        assert code == 2 and stderr.strip() == f"error: {bad_file}" + stderr.strip().split(str(bad_file), 1)[1]
        assert not (sub / "kept").exists()


def test_cli_engine_flags_need_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.npz"
    X, y = blobs(200)
    np.savez(src, X=X, y=y)
    code, _, stderr = cli(capsys, "select", "--input", str(src), "--engine", "ray")
    assert code == 2 and "--engine ray is for Parquet" in stderr

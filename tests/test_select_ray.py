"""The `ray` engine on a real Ray: a two-node cluster simulated on this machine
(`ray.cluster_utils.Cluster`, 1 CPU per node), joined by address as `--ray-address` does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from prunelab.errors import UserError
from prunelab.select import select_dataset
from tests.test_select_stream import bad_shards, blobs, cli, write_shards

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a worker node, one CPU each, joined once by address (as `--ray-address` joins;
    the engines reuse the connection, so the workers stay warm across tests); yields the address."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    yield c.address
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    X, y = blobs(8000)
    return write_shards(tmp_path_factory.mktemp("ray") / "in", X, y, shards=4, row_group=1000), X, y


def test_ray_on_two_nodes_selects_what_local_selects(cluster: str, data: tuple[Path, np.ndarray, np.ndarray],
                                                     tmp_path: Path) -> None:
    folder, X, y = data
    out = tmp_path / "kept"
    res = select_dataset(folder, target="label", keep=0.3, strategy="cluster", engine="ray", ray_address=cluster,
                         workers=2, out=out, chunk_rows=1000)
    local = select_dataset(folder, target="label", keep=0.3, strategy="cluster", engine="local", chunk_rows=1000)
    np.testing.assert_array_equal(res.indices, local.indices)
    rep = res.report
    assert rep.engine == "ray" and rep.selection.kept_count == 2400 == pq.read_table(out).num_rows
    assert [p.name for p in rep.passes] == ["statistics", "scores", "write"] and rep.rows_read == 24_000
    workers = [k for k in rep.peak_rss if k != "driver"]
    assert len({k.split(" on node ")[1] for k in workers}) == 2, workers  # both nodes did work
    assert all(v > 0 for v in rep.peak_rss.values())
    assert ray.is_initialized()  # an engine leaves a Ray it did not start running
    table = pq.read_table(out, columns=["f0", "label", "_shard", "_row"])
    shard = np.array([int(s[5]) for s in table.column("_shard").to_pylist()])  # part-<s>.parquet, 2000 rows each
    rows = shard * 2000 + table.column("_row").to_numpy()
    np.testing.assert_array_equal(np.sort(rows), res.indices)
    np.testing.assert_array_equal(table.column("f0").to_numpy(), X[rows, 0])


def test_ray_random_exact_budget_and_floors(cluster: str, data: tuple[Path, np.ndarray, np.ndarray],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder, _, y = data
    code, stdout, stderr = cli(capsys, "select", "--input", str(folder), "--target", "label", "--strategy", "random",
                               "--keep-count", "2", "--engine", "ray", "--ray-address", cluster, "--workers", "2",
                               "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    local = select_dataset(folder, target="label", keep_count=2, strategy="random", engine="local")
    assert result["engine"] == "ray" and result["kept_count"] == 20 == local.report.selection.kept_count
    assert [f["name"] for f in result["report"]["floors"]] == ["min_keep"]
    assert all(s["kept"] >= 1 for s in result["report"]["strata"])


def test_ray_bad_shard_error_names_the_file_nothing_written(cluster: str, tmp_path: Path) -> None:
    folder, bad = bad_shards(tmp_path, "nan")  # found by a worker during the first pass
    out = tmp_path / "kept.parquet"
    with pytest.raises(UserError, match="NaN or inf") as err:
        select_dataset(folder, target="label", keep=0.3, strategy="cluster", engine="ray", ray_address=cluster,
                       out=out)
    assert str(err.value).startswith(str(bad))
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

"""Security: no code runs from a file a user hands us, headers are checked before
allocation, API parameters cannot reach outside their folder, binding is loopback."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunelab.errors import UserError
from prunelab.store import Store
from tests.conftest import REPO
from tests.reliability import record
from tests.test_store import _model

SRC = REPO / "src" / "prunelab"


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_pickle_or_unsafe_torch_load_on_user_files():
    """The only unpickling is of the hash-checked MNIST file; every np.load refuses pickles."""
    offenders = []
    for path in _sources():
        text = path.read_text()
        rel = path.relative_to(SRC).as_posix()
        if re.search(r"\bpickle\.loads?\(", text) and rel != "data/mnist.py":
            offenders.append(f"{rel}: pickle.load")
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{rel}: torch.load without weights_only=True")
        for m in re.finditer(r"np\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in m.group(1):
                offenders.append(f"{rel}: np.load without allow_pickle=False")
    assert offenders == []
    mnist = (SRC / "data" / "mnist.py").read_text()
    # the hash is checked before the pickle is opened
    assert mnist.index("MNIST_SHA256:") < mnist.index("pickle.load(")


def test_safetensors_header_claiming_huge_tensor_is_refused(prunelab_home):
    store = Store()
    m = store.save(_model())
    path = store.weights_path(m.id)
    header = json.dumps({"fc1.weight": {"dtype": "F32", "shape": [1_000_000, 1_000_000],
                                        "data_offsets": [0, 4 * 10**12]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="damaged"):
        store.load(m.id)
    record("security", what="safetensors header claiming 10^12 elements", refused=True,
           seconds=round(time.perf_counter() - t0, 4))


def test_npz_with_pickled_object_is_refused(tmp_path):
    import numpy as np

    from tests.conftest import assert_user_error, run_cli

    evil = tmp_path / "evil.npz"
    np.savez(evil, X=np.array([object()], dtype=object), y=np.array([1]))
    proc = run_cli("select", "--input", str(evil), "--keep", "0.5", "--json")
    assert_user_error(proc)


def _idx_folder(folder: Path) -> Path:
    import numpy as np

    from prunelab.data.idx import write_idx

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    return folder


def test_api_dataset_cannot_escape_the_data_folder(prunelab_home, tmp_path):
    from fastapi.testclient import TestClient

    from prunelab.web import create_app

    outside = _idx_folder(tmp_path / "outside")
    _idx_folder(prunelab_home / "datasets" / "mine")
    names = [f"idx:{outside}", "idx:../../outside", "idx:" + "../" * 12 + str(outside)[1:], "idx:", "pickle:x"]
    with TestClient(create_app(store_root=prunelab_home)) as client:
        for name in names:
            resp = client.post("/api/jobs/train", json={"arch": "mlp", "epochs": 1, "dataset": name})
            assert 400 <= resp.status_code < 500, (name, resp.text)
            assert "detail" in resp.json()
        assert client.get("/api/jobs").json()["jobs"] == []
        # a folder inside <store>/datasets is accepted
        resp = client.post("/api/jobs/train", json={"arch": "mlp", "hidden": [8], "epochs": 1,
                                                    "dataset": "idx:mine"})
        assert resp.status_code == 202, resp.text
    record("security", what="API dataset paths outside the data folder", tried=len(names), refused=len(names))


def _serve_first_lines(*args: str) -> tuple[str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "prunelab.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    return line, err


def test_serve_binds_loopback_and_warns_on_other_hosts():
    line, err = _serve_first_lines()
    assert "http://127.0.0.1:" in line and "warning" not in err
    line, err = _serve_first_lines("--host", "0.0.0.0")
    assert "http://0.0.0.0:" in line and "warning: binding 0.0.0.0" in err

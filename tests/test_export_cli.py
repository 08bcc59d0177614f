"""`prunelab export / predict / compare` end to end in real subprocesses,
with a real (trained, then magnitude-pruned) LeNet-300-100 in a real store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import prunelab
from prunelab.data.images import mnist_style
from prunelab.models.model import Model
from prunelab.store import Store
from tests.conftest import assert_user_error, run_cli, run_cli_inproc, store_snapshot


def run_inproc(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """In process for the many bad-input cases; the good paths run in real subprocesses."""
    return run_cli_inproc(capsys, *args)


@pytest.fixture(scope="module")
def trained(mnist_small) -> tuple[Model, Model]:
    """LeNet-300-100 trained 1 epoch on 3,000 real MNIST images, and its 95%
    child from the pruning API (global magnitude, 1 fine-tune epoch)."""
    parent = prunelab.train(arch="lenet-300-100", epochs=1, dataset=mnist_small, threads=1).model
    child = prunelab.prune(parent, sparsity=0.95, finetune_epochs=1, dataset=mnist_small, threads=1).model
    return parent, child


@pytest.fixture()
def stored(trained: tuple[Model, Model]) -> tuple[str, str]:
    """(dense id, 95%-pruned child id) in this test's fresh store, named base and p95."""
    store = Store()
    parent, child = trained
    p = store.save(Model(parent.spec, parent.weights, meta={**parent.meta, "name": "base"}))
    c = store.save(Model(child.spec, child.weights, child.masks,
                         meta={**child.meta, "name": "p95", "parent": p.id}))
    return p.id, c.id


def test_export_and_predict_npz(tmp_path: Path, stored: tuple[str, str], mnist_small) -> None:
    out = tmp_path / "p95.plsa"
    proc = run_cli("export", "p95", "--out", str(out), "--precision", "int8", "--json", check=True)
    res = json.loads(proc.stdout)
    assert res["path"] == str(out) and res["bytes"] == out.stat().st_size
    assert res["dense_bytes"] > 1_000_000 and res["bytes"] * 30 < res["dense_bytes"]
    assert res["precision"] == "int8" and res["id"] == stored[1]

    x = tmp_path / "x.npz"
    np.savez(x, X=mnist_small.x_test[:50], y=mnist_small.y_test[:50])
    proc = run_cli("predict", str(out), "--input", str(x), "--json", check=True)
    pred = json.loads(proc.stdout)
    assert pred["count"] == 50 and len(pred["predictions"]) == 50
    assert np.allclose(np.sum(pred["probabilities"], axis=1), 1.0, atol=1e-4)
    assert pred["accuracy"] > 0.5  # a real model on real digits
    # float 0-1 (n, 784) input gives the same predictions
    xf = tmp_path / "xf.npz"
    np.savez(xf, X=mnist_small.x_test[:50].reshape(50, 784).astype(np.float32) / 255)
    proc = run_cli("predict", str(out), "--input", str(xf), "--json", "--no-probabilities", check=True)
    assert json.loads(proc.stdout)["predictions"] == pred["predictions"]
    # the numpy/scipy back-end (no compiled kernels) answers the same
    proc = run_cli("predict", str(out), "--input", str(xf), "--json", "--backend", "numpy", check=True)
    assert json.loads(proc.stdout)["predictions"] == pred["predictions"]
    # human output
    proc = run_cli("predict", str(out), "--input", str(x), check=True)
    assert "accuracy against y" in proc.stdout


def test_predict_image_is_prepared_like_mnist(tmp_path: Path, stored: tuple[str, str], mnist_small) -> None:
    from PIL import Image

    out = tmp_path / "m.plsa"
    run_cli("export", "base", "--out", str(out), check=True)
    # an MNIST digit drawn dark-on-white, off-centre and larger, as a user's photo would be
    digit = mnist_small.x_test[0]
    canvas = np.full((200, 160), 255, np.uint8)
    canvas[20:132, 10:122] = 255 - np.kron(digit, np.ones((4, 4), np.uint8))
    png = tmp_path / "digit.png"
    Image.fromarray(canvas).save(png)
    proc = run_cli("predict", str(out), "--input", str(png), "--json", check=True)
    got = json.loads(proc.stdout)
    direct = prunelab.sparse.load(out).predict(digit[None])
    assert got["count"] == 1 and got["predictions"] == direct.tolist()

    prepared = mnist_style(canvas.astype(np.float32) / 255)
    assert prepared.shape == (28, 28) and prepared.max() == pytest.approx(1.0)
    yy, xx = np.indices(prepared.shape)
    com = ((yy * prepared).sum() / prepared.sum(), (xx * prepared).sum() / prepared.sum())
    assert abs(com[0] - 14.0) <= 0.5 and abs(com[1] - 14.0) <= 0.5  # centred by mass, like MNIST
    # real digits drawn dark-on-light at 3x size come back to what the model saw
    rt = prunelab.sparse.load(out)
    originals = mnist_small.x_test[:100]
    redrawn = np.stack([mnist_style(np.kron(255 - d, np.ones((3, 3), np.uint8)).astype(np.float32) / 255)
                        for d in originals])
    agree = float((rt.predict(redrawn) == rt.predict(originals)).mean())
    assert agree >= 0.9, agree
    rows = np.flatnonzero(prepared.max(axis=1) > 0.1)
    cols = np.flatnonzero(prepared.max(axis=0) > 0.1)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # fits the 20x20 box


def test_export_bad_input(tmp_path: Path, stored: tuple[str, str], prunelab_home: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    before = store_snapshot(prunelab_home)
    assert_user_error(run_cli("export", "nope", "--out", str(tmp_path / "a.plsa")), "no model")
    assert_user_error(run_inproc(capsys, "export", "base", "--out", str(tmp_path)), "folder")
    assert_user_error(run_inproc(capsys, "export", "base", "--out", str(tmp_path / "a"), "--precision", "int4"),
                      "precision")
    assert store_snapshot(prunelab_home) == before
    assert not (tmp_path / "a.plsa").exists()


def test_predict_bad_input(tmp_path: Path, stored: tuple[str, str], mnist_small,
                           capsys: pytest.CaptureFixture[str]) -> None:
    art = tmp_path / "m.plsa"
    run_cli("export", "p95", "--out", str(art), check=True)
    good = tmp_path / "x.npz"
    np.savez(good, X=mnist_small.x_test[:3])
    cases: list[tuple[list[str], str]] = []

    def npz(name: str, **arrays: np.ndarray) -> str:
        p = tmp_path / name
        np.savez(p, **arrays)
        return str(p)

    cases.append(([str(art), "--input", str(tmp_path / "missing.npz")], "does not exist"))
    cases.append(([str(art), "--input", npz("noX.npz", images=mnist_small.x_test[:2])], "array named X"))
    cases.append(([str(art), "--input", npz("range.npz", X=np.full((2, 784), 3.0))], "[0, 1]"))
    cases.append(([str(art), "--input", npz("shape.npz", X=np.zeros((2, 27, 28), np.uint8))], "shape"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases.append(([str(art), "--input", str(text)], "cannot read"))
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(blank)
    cases.append(([str(art), "--input", str(blank)], "blank"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cases.append(([str(art), "--input", str(broken)], "cannot read"))
    # bad artifacts: foreign, truncated, corrupted
    cases.append(([str(good), "--input", str(good)], "not a prunelab artifact"))
    cut = tmp_path / "cut.plsa"
    cut.write_bytes(art.read_bytes()[:-7])
    cases.append(([str(cut), "--input", str(good)], "truncated"))
    bad = tmp_path / "bad.plsa"
    data = bytearray(art.read_bytes())
    data[-3] ^= 1
    bad.write_bytes(bytes(data))
    cases.append(([str(bad), "--input", str(good)], "checksum"))
    cases.append(([str(art), "--input", str(good), "--threads", "0"], "positive integer"))
    for i, (args, fragment) in enumerate(cases):
        # two in real subprocesses, the rest through main() in-process (same code, no start-up cost)
        proc = run_cli("predict", *args) if i in (1, 9) else run_inproc(capsys, "predict", *args)
        assert_user_error(proc, fragment)


def test_compare(stored: tuple[str, str], prunelab_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent, child = stored
    proc = run_cli("compare", "base", "p95", "--json", "--budget", "0.02", check=True)
    out = json.loads(proc.stdout)
    rows = {r["id"]: r for r in out["rows"]}
    assert list(rows) == [parent, child]
    for r in rows.values():
        for key in ("test_accuracy", "params", "nonzero", "sparsity", "compression_ratio", "flop_ratio",
                    "dense_bytes", "artifact_bytes", "dense_gzip_bytes", "latency_us_b1", "latency_us_b1_p95",
                    "latency_us_b256", "latency_us_b256_p95", "torch_latency_us_b1", "torch_latency_us_b256",
                    "speedup_b1", "speedup_b256", "ort_latency_us_b1", "ort_latency_us_b256", "ort_speedup_b256"):
            assert key in r, key  # onnxruntime is in the dev extra: the ONNX Runtime column is there
        assert r["latency_us_b1"] > 0 and r["latency_us_b1_p95"] >= r["latency_us_b1"]
        assert r["params"] == 266_610
    p = rows[child]
    assert p["sparsity"] == pytest.approx(0.95, abs=0.001)
    assert p["flop_ratio"] == pytest.approx(1 / 0.05, rel=0.01)
    assert p["artifact_bytes"] * 10 < p["dense_bytes"] and p["compression_ratio"] > 10
    # dense weights: only the byte-shuffled deflate of the float32 values saves anything (exponents repeat)
    assert 1.0 < rows[parent]["compression_ratio"] < 1.4
    assert p["dense_gzip_bytes"] < rows[parent]["dense_gzip_bytes"]
    proc = run_inproc(capsys, "compare", "base", "p95", "--budget", "0.01")
    assert proc.returncode == 0 and "p95" in proc.stdout and "latency" in proc.stdout and "ONNX Runtime" in proc.stdout
    before = store_snapshot(prunelab_home)
    assert_user_error(run_cli("compare", "base", "ghost"), "no model")
    assert_user_error(run_inproc(capsys, "compare", "base", "base"), "twice")
    assert_user_error(run_inproc(capsys, "compare", "base", "--budget", "-1"), "positive")
    assert store_snapshot(prunelab_home) == before

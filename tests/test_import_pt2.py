"""`prunelab import model.pt2`: a torch.export program round trip through the
registry (import, eval, prune + fine-tune, ONNX and .plsa export, compare,
the explorer's list), the refusals (pickles, damage, custom ops, training
mode, fixed batch, wrong shapes, not an archive), and
`prunelab.sparse.export_module`. Real MNIST slices, one epoch."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import prunelab
from prunelab.data.datasets import Dataset
from prunelab.errors import UserError
from prunelab.store import Store
from tests.conftest import assert_user_error, run_cli, run_cli_inproc, store_snapshot

BATCH = {0: torch.export.Dim("batch")}


class SmallCNN(nn.Module):
    """A user's own CNN: conv + BatchNorm + ReLU + pool, conv + ReLU + pool, two Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) -> (N, 10)
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.head(torch.relu(self.fc1(x.flatten(1))))


def images(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).float().div(255).unsqueeze(1)


@pytest.fixture(scope="module")
def trained(mnist_small: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The CNN trained one epoch by a plain loop on 3,000 images, exported with a dynamic batch axis,
    and the slice as an npz data set (2,000 train, 1,000 test images)."""
    torch.manual_seed(0)
    net = SmallCNN()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = images(mnist_small.x_train), torch.from_numpy(mnist_small.y_train)
    net.train()
    for idx in torch.randperm(len(y)).split(64):
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    folder = tmp_path_factory.mktemp("pt2")
    pt2 = folder / "net.pt2"
    torch.export.save(torch.export.export(net, (x[:4],), dynamic_shapes=(BATCH,)), str(pt2))
    npz = folder / "slice.npz"
    np.savez(npz, x_train=mnist_small.x_train[:2000], y_train=mnist_small.y_train[:2000],
             x_test=mnist_small.x_test, y_test=mnist_small.y_test)
    xt = images(mnist_small.x_test)
    with torch.no_grad():
        logits = net(xt)
    accuracy = int((logits.argmax(1) == torch.from_numpy(mnist_small.y_test)).sum()) / len(mnist_small.y_test)
    return {"net": net, "pt2": pt2, "npz": npz, "folder": folder, "xt": xt, "accuracy": accuracy}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`prunelab ARGS` in this process (the imports are paid once): (exit code, stdout, stderr)."""
    proc = run_cli_inproc(capsys, *args)
    return proc.returncode, proc.stdout, proc.stderr


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_refused(result: tuple[int, str, str], fragment: str) -> None:
    """Exit 2 and one `error:` line naming the problem (as tests/conftest.assert_user_error, in process)."""
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment.lower() in lines[0].lower(), lines[0]


def test_pt2_round_trip_import_eval_prune_export_compare(trained: dict, prunelab_home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = f"npz:{trained['npz']}"
    imp = cli_json(capsys, "import", str(trained["pt2"]), "--name", "mine", "--dataset", data)
    assert imp["params"] == sum(p.numel() for p in trained["net"].parameters())
    assert imp["input_shape"] == [1, 28, 28] and imp["classes"] == 10
    assert sorted(imp["prunable"]) == ["conv1.weight", "conv2.weight", "fc1.weight", "head.weight"]
    assert imp["test_accuracy"] == pytest.approx(trained["accuracy"], abs=1e-12)  # the same 1,000 images
    assert trained["accuracy"] > 0.75  # one epoch on 3,000 images: a real, trained network

    # stored without pickles: a safetensors file whose header holds the graph JSON, and it rebuilds exactly
    store = Store()
    stored = store.load_exported("mine")
    from safetensors import safe_open

    with safe_open(str(store.models_dir / stored.meta["file"]), framework="numpy") as f:
        assert set(f.keys()) == set(stored.weights)  # noqa: SIM118
        assert json.loads(f.metadata()["prunelab.graph"])["graph_module"]["graph"]["nodes"]
    with torch.no_grad():
        diff = (stored.to_torch()(trained["xt"]) - trained["net"](trained["xt"])).abs().max().item()
    assert diff < 1e-5

    assert cli_json(capsys, "eval", "mine")["test_accuracy"] == imp["test_accuracy"]
    mnist_digit = np.load(trained["npz"], allow_pickle=False)["x_test"][0]

    child = cli_json(capsys, "prune", "mine", "--sparsity", "0.9", "--finetune-epochs", "1", "--threads", "1",
                     "--name", "mine90")
    assert child["parent"] == imp["id"] and child["sparsity"] >= 0.899
    assert child["test_accuracy"] > child["accuracy_before_finetune"] - 0.02
    pruned = store.load_exported("mine90")
    assert pruned.spec.graph == stored.spec.graph  # the same graph, new weights
    assert pruned.sparsity() >= 0.899
    for name in pruned.spec.prunable:
        assert not pruned.weights[name][~pruned.masks[name]].any()
    assert cli_json(capsys, "eval", "mine90")["test_accuracy"] == pytest.approx(child["test_accuracy"], abs=1e-12)

    # ONNX: the child's file in ONNX Runtime against the child rebuilt in PyTorch
    import onnxruntime as ort

    onnx_out = cli_json(capsys, "export", "mine90", "--format", "onnx", "--out", str(prunelab_home / "c.onnx"))
    assert onnx_out["max_abs_diff"] < 1e-3
    sess = ort.InferenceSession(str(prunelab_home / "c.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = pruned.to_torch()(trained["xt"]).numpy()
    got = sess.run(None, {"input": trained["xt"].numpy()})[0]
    assert np.abs(got - want).max() < 1e-3

    # .plsa: BatchNorm folded into conv1, zeros kept; the torch-free runtime gives the same scores
    plsa = cli_json(capsys, "export", "mine90", "--out", str(prunelab_home / "c.plsa"))
    assert plsa["bytes"] < plsa["dense_bytes"] / 3
    rt = prunelab.sparse.load(prunelab_home / "c.plsa")
    assert np.abs(rt.logits(trained["xt"].numpy()) - want).max() < 1e-4

    rows = cli_json(capsys, "compare", "mine", "mine90", "--budget", "0.02")["rows"]
    assert [r["id"] for r in rows] == [imp["id"], child["id"]]
    assert rows[1]["nonzero"] < rows[0]["nonzero"] / 4 and rows[1]["artifact_bytes"] < rows[0]["artifact_bytes"]

    from fastapi.testclient import TestClient

    from prunelab.web import create_app

    with TestClient(create_app(store_root=prunelab_home)) as client:
        listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
        assert listed["mine"]["arch"] == "torch.export" and listed["mine90"]["parent"] == imp["id"]
        table = client.get("/api/compare").json()["rows"]
        assert all(r["flops"] > r["effective_flops"] for r in table if r["name"] == "mine90")
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(mnist_digit).save(buf, format="PNG")
        r = client.post("/api/predict", files={"image": ("d.png", buf.getvalue(), "image/png")},
                        data={"models": "mine,mine90"})
        assert r.status_code == 200, r.text
        assert all(len(row["probabilities"]) == 10 for row in r.json()["predictions"])
        before = store_snapshot(prunelab_home)
        r = client.post("/api/jobs/prune", json={"parent": "mine", "sparsity": 0.5, "finetune_epochs": 1})
        assert r.status_code == 400 and "prunelab prune mine" in r.text
        assert store_snapshot(prunelab_home) == before


def _rewrite(src: Path, dst: Path, change: dict) -> Path:
    """Copy a .pt2 zip, replacing members (by path suffix) with new bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            for suffix, new in change.items():
                if item.filename.endswith(suffix):
                    data = new(data) if callable(new) else new
            zout.writestr(item, data)
    return dst


class _Trap:
    """Unpickling this creates a marker file: proof that something unpickled the user's bytes."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_refusals_change_nothing_and_never_unpickle(trained: dict, prunelab_home: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src, marker = trained["pt2"], tmp_path / "unpickled"
    trap = pickle.dumps(_Trap(marker))

    def pickled_weight(cfg: bytes) -> bytes:
        d = json.loads(cfg)
        d["config"]["conv1.weight"]["use_pickle"] = True
        return json.dumps(d).encode()

    def custom_op(model: bytes) -> bytes:
        d = json.loads(model)
        d["graph_module"]["graph"]["nodes"][0]["target"] = "torch.ops.mylib.evil.default"
        return json.dumps(d).encode()

    def crafted_shape(model: bytes) -> bytes:
        d = json.loads(model)
        d["range_constraints"] = {"__import__('os').system('true')": {"min_val": 0, "max_val": None}}
        return json.dumps(d).encode()

    cases = {
        "pickled.pt2": (_rewrite(src, tmp_path / "pickled.pt2", {"model_weights_config.json": pickled_weight,
                                                                  "weights/weight_0": trap}),
                        "will not unpickle"),
        "custom.pt2": (_rewrite(src, tmp_path / "custom.pt2", {"models/model.json": custom_op}),
                       "torch.ops.mylib.evil.default (a custom op)"),
        "crafted.pt2": (_rewrite(src, tmp_path / "crafted.pt2", {"models/model.json": crafted_shape}),
                        "not a plain size expression"),
        "truncated.pt2": (tmp_path / "truncated.pt2", "pt2"),
        "notes.pt2": (tmp_path / "notes.pt2", "not a .pt2 archive"),
        "missing.pt2": (tmp_path / "missing.pt2", "does not exist"),
    }
    (tmp_path / "truncated.pt2").write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    (tmp_path / "notes.pt2").write_text("just text\n")
    before = store_snapshot(prunelab_home)
    for path, fragment in cases.values():
        assert_refused(cli(capsys, "import", str(path), "--name", "x"), fragment)
    # and once through a real process: exit code 2, one line, no traceback
    assert_user_error(run_cli("import", str(cases["pickled.pt2"][0])), "will not unpickle")
    assert store_snapshot(prunelab_home) == before
    assert not marker.exists()

    # the sample inputs are pickled by torch.export.save: import never reads them
    ok = _rewrite(src, tmp_path / "trapped-samples.pt2", {"sample_inputs/model.pt": trap})
    out = cli_json(capsys, "import", str(ok), "--name", "ok", "--dataset", f"npz:{trained['npz']}")
    assert out["test_accuracy"] == pytest.approx(trained["accuracy"], abs=1e-12) and not marker.exists()


def test_refusals_fixed_batch_training_mode_and_shapes(trained: dict, prunelab_home: Path, tmp_path: Path,
                                                      mnist_small: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    from prunelab.importing import import_pt2

    net, x = trained["net"], trained["xt"][:4]
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(fixed))
    with pytest.raises(UserError, match="batch axis is fixed to 4"):
        import_pt2(fixed, store=Store(), dataset=mnist_small)
    train_mode = tmp_path / "train.pt2"
    torch.export.save(torch.export.export(SmallCNN().train(), (x,), dynamic_shapes=(BATCH,)), str(train_mode))
    with pytest.raises(UserError, match="training mode"):
        import_pt2(train_mode, store=Store(), dataset=mnist_small)

    wide = tmp_path / "wide.npz"  # 32x32 images do not fit a 28x28 model
    z = np.zeros((20, 32, 32), np.uint8)
    np.savez(wide, x_train=z, y_train=np.arange(20) % 10, x_test=z, y_test=np.arange(20) % 10)
    before = store_snapshot(prunelab_home)
    assert_refused(cli(capsys, "import", str(trained["pt2"]), "--dataset", f"npz:{wide}"),
                      "takes samples shaped (1, 28, 28) but data set")
    assert store_snapshot(prunelab_home) == before
    model, _ = import_pt2(trained["pt2"], store=Store(), name="m", dataset=mnist_small)
    assert_refused(cli(capsys, "eval", "m", "--dataset", f"npz:{wide}"), "(1, 32, 32)")
    assert_refused(cli(capsys, "prune", "m", "--sparsity", "0.5", "--method", "structured"), "magnitude")
    assert_refused(cli(capsys, "sensitivity", "m"), "imported torch.export program")
    assert store_snapshot(prunelab_home)[0] == [model.id]


def test_export_module_matches_torch_and_lists_unsupported_ops(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 6 * 6, 32),
                        nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
    net.train()
    net(torch.rand(64, 1, 28, 28))  # BatchNorm statistics that are not the identity
    net.eval()
    pruning = prunelab.prune_module(net, 0.8)
    x = torch.rand(9, 1, 28, 28)
    res = prunelab.sparse.export_module(net, x[:1], tmp_path / "net.plsa")
    assert res.bytes < res.dense_bytes
    rt = prunelab.sparse.load(tmp_path / "net.plsa")
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(rt.logits(x.numpy()) - want).max() < 1e-5
    assert rt.nnz() <= round(0.2 * sum(m.weight.numel() for m in net.modules()
                                       if isinstance(m, (nn.Conv2d, nn.Linear)))) + 1
    assert pruning.sparsity() == pytest.approx(0.8, abs=1e-4)  # the module itself is left as it was

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.fc = nn.Linear(784, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.sigmoid(x + self.conv(x)).flatten(1))

    with pytest.raises(UserError, match=r"aten\.add\.Tensor, aten\.sigmoid\.default") as err:
        prunelab.sparse.export_module(Residual(), x[:1], tmp_path / "res.plsa")
    assert "prunelab.export_onnx" in str(err.value) and not (tmp_path / "res.plsa").exists()


def test_export_format_onnx_for_a_trained_spec_model(mnist_small: Dataset, prunelab_home: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`export --format onnx` is not only for imported models: a prunelab-trained MLP exports too."""
    import onnxruntime as ort

    res = prunelab.train(arch="mlp", hidden=(32,), epochs=1, train_limit=600, store=Store(), name="mlp",
                         dataset=mnist_small)
    out = cli_json(capsys, "export", "mlp", "--format", "onnx", "--out", str(prunelab_home / "mlp.onnx"))
    assert out["format"] == "onnx" and out["max_abs_diff"] < 1e-4
    x = images(mnist_small.x_test[:50])
    sess = ort.InferenceSession(str(prunelab_home / "mlp.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = res.model.to_torch()(x).numpy()
    assert np.abs(sess.run(None, {"input": x.numpy()})[0] - want).max() < 1e-4
    assert_refused(cli(capsys, "export", "mlp", "--format", "onnx", "--precision", "int8", "--out",
                       str(prunelab_home / "x.onnx")), "float32")
    assert_refused(cli(capsys, "eval", "mlp", "--dataset", "mnist"), "imported models")

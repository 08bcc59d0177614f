"""The runtime against PyTorch on both kernel back-ends (numba, numpy/scipy):
same logits for every layer kind, both kernels, chunked batches and
threads, every input layout; the measured kernel choice; fidelity of a
trained, pruned LeNet-300-100 in fp32/fp16/int8. Speed is never asserted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import prunelab
from prunelab.errors import UserError
from prunelab.models.model import Model
from prunelab.models.presets import cnn_spec, create_spec, mlp_spec
from prunelab.models.spec import Layer, ModelSpec
from prunelab.sparse import load, runtime
from prunelab.sparse.export import export
from prunelab.sparse.kernels import numba_available
from prunelab.train import to_input

# every runtime test runs on both back-ends; `make test` installs numba (extra `fast`, pulled in by `dev`)
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not numba_available(),
                                                                     reason="numba not installed"))]


def random_model(spec: ModelSpec, density: float, seed: int = 0) -> Model:
    """A model with torch's initialisation and about `density` of each weight kept."""
    torch.manual_seed(seed)
    module = prunelab.models.build(spec)
    rng = np.random.default_rng(seed)
    weights = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    for name in weights:
        if name.endswith(".weight"):
            weights[name][rng.random(weights[name].shape) >= density] = 0.0
    return Model(spec, weights)


def torch_logits(model: Model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.to_torch().eval()(torch.from_numpy(x)).numpy()


ODD_CNN = ModelSpec(
    input_shape=(2, 11, 9), classes=4, arch="custom",
    layers=(
        Layer("relu", "r0"),
        Layer("conv2d", "c1", {"in_channels": 2, "out_channels": 5, "kernel_size": 3, "stride": 2,
                               "padding": 1, "bias": True}),
        Layer("maxpool2d", "p1", {"kernel_size": 3, "stride": 1}),
        Layer("conv2d", "c2", {"in_channels": 5, "out_channels": 3, "kernel_size": 2, "stride": 1,
                               "padding": 0, "bias": False}),
        Layer("relu", "r2"),
        Layer("flatten", "f"),
        Layer("linear", "fc", {"in_features": 3 * 3 * 2, "out_features": 4, "bias": False}),
    ),
)

SPECS = {
    "lenet-300-100": create_spec("lenet-300-100"),
    "lenet-5": create_spec("lenet-5"),
    "cnn-same": cnn_spec((4, 6), (12,), kernel_size=5, padding=2, input_shape=(1, 12, 12), classes=3),
    "odd-cnn": ODD_CNN,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("kernel", ["dense", "csr", "auto"])
def test_runtime_matches_torch(tmp_path: Path, name: str, kernel: str, backend: str) -> None:
    spec = SPECS[name]
    model = random_model(spec, density=0.3, seed=len(name))
    path = tmp_path / "m.plsa"
    export(model, path)
    rt = load(path, kernel=kernel, backend=backend)
    assert rt.backend == backend
    rng = np.random.default_rng(1)
    for n in (1, 3, 7, 37):  # 37: more than the 8 weights per pass and an odd batch
        x = rng.random((n, *spec.input_shape), dtype=np.float32)
        x_before = x.copy()
        got = rt.logits(x)
        np.testing.assert_allclose(got, torch_logits(model, x), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(x, x_before)  # the caller's array is never written to
    # chunked batches give the same answer as one chunk
    x = rng.random((10, *spec.input_shape), dtype=np.float32)
    whole = rt.logits(x)
    rt.chunk = 3
    np.testing.assert_allclose(rt.logits(x), whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_split_samples_without_changing_results(tmp_path: Path, backend: str) -> None:
    model = random_model(create_spec("lenet-300-100"), density=0.5, seed=3)
    path = tmp_path / "m.plsa"
    export(model, path)
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    one = load(path, kernel="csr", threads=1, backend=backend).logits(x)
    rt2 = load(path, kernel="csr", threads=2, backend=backend)
    np.testing.assert_allclose(rt2.logits(x), one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rt2.logits(x[:63]), one[:63], rtol=1e-5, atol=1e-6)  # below the split: one thread
    np.testing.assert_allclose(rt2.logits(x[:1]), one[:1], rtol=1e-5, atol=1e-6)
    assert (rt2._wide is not None) == (backend == "numba")  # an all-CSR MLP: one compiled call per block
    cnn = random_model(create_spec("lenet-5"), density=0.3, seed=3)
    export(cnn, path)
    xc = x[:40]
    np.testing.assert_allclose(load(path, kernel="csr", threads=2, backend=backend).logits(xc),
                               torch_logits(cnn, xc), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", ["lenet-300-100", "lenet-5"])
def test_input_layouts_and_dtypes(tmp_path: Path, backend: str, arch: str) -> None:
    model = random_model(create_spec(arch), density=0.2)
    path = tmp_path / "m.plsa"
    export(model, path)
    rt = load(path, backend=backend)
    imgs = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    ref = rt.predict_proba(imgs.astype(np.float32)[:, None] / 255)
    np.testing.assert_allclose(ref, torch.softmax(torch.from_numpy(torch_logits(
        model, imgs.astype(np.float32)[:, None] / 255)), 1).numpy(), rtol=1e-4, atol=1e-6)
    f32 = imgs.astype(np.float32) / 255
    for x in (imgs, imgs.reshape(4, 784), imgs[:, None], f32, f32.reshape(4, 784), f32[:, None],
              f32.astype(np.float64), f32[:, ::1, ::-1][:, :, ::-1], np.asfortranarray(f32.reshape(4, 784))):
        np.testing.assert_allclose(rt.predict_proba(x), ref, rtol=1e-5, atol=1e-6)
        for i in (0, 3):  # batch 1 takes its own path, in every layout
            np.testing.assert_allclose(rt.predict_proba(x[i:i + 1]), ref[i:i + 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ref.sum(axis=1), 1.0, rtol=1e-5)
    assert rt.predict(imgs).dtype == np.int64 and rt.predict(imgs).shape == (4,)
    for one in (imgs[0], imgs[0].reshape(784), f32[0][None]):  # one image without a batch axis
        np.testing.assert_allclose(rt.predict_proba(one), ref[:1], rtol=1e-5, atol=1e-6)
    assert rt.logits(imgs[:0]).shape == (0, 10)
    with pytest.raises(UserError, match="takes"):
        rt.predict(np.zeros((2, 27, 28), np.uint8))
    with pytest.raises(UserError, match="uint8"):
        rt.predict(np.zeros((2, 28, 28), np.int32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_choice_is_measured_and_cached(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = mlp_spec((200,), input_shape=(1, 20, 20), classes=10)
    model = random_model(spec, density=1.0)
    model.weights["fc1.weight"][np.random.default_rng(0).random((200, 400)) > 0.02] = 0.0  # ~2% kept
    path = tmp_path / "m.plsa"
    export(model, path)
    calls: list[tuple[str, int]] = []
    real = runtime.Runtime._time_kernels

    def counting(self, op, m, rng, repeats):  # type: ignore[no-untyped-def]
        calls.append((op.layer.name, m))
        return real(self, op, m, rng, repeats)

    monkeypatch.setattr(runtime.Runtime, "_time_kernels", counting)
    runtime._CHOICE_CACHE.clear()
    rt = load(path, backend=backend)
    # both layers measured at the probe batches 1, 16 and 256 (one chunk here)
    assert sorted(calls) == sorted((n, b) for n in ("fc1", "fc2") for b in runtime.PROBE_BATCHES)
    for op in rt.weighted():
        assert set(op.choices) == set(runtime.PROBE_BATCHES) and set(op.choices.values()) <= {"dense", "csr"}
        # a batch uses the choice measured at the nearest probe (log scale)
        assert op.kernel(1) == op.choices[1] and op.kernel(3) == op.choices[1]
        assert op.kernel(12) == op.choices[16] and op.kernel(3000) == op.choices[256]
    assert rt.kernels(1) == {op.layer.name: op.choices[1] for op in rt.weighted()}
    assert rt.describe()[0]["measured"] == {str(k): v for k, v in rt.weighted()[0].choices.items()}
    # loading again reuses the measurement; kernel="calibrate" measures again
    calls.clear()
    load(path, backend=backend)
    assert calls == []
    load(path, kernel="calibrate", backend=backend)
    assert len(calls) == 6
    assert load(path, kernel="dense", backend=backend).kernels(256) == {"fc1": "dense", "fc2": "dense"}
    assert load(path, kernel="csr", backend=backend).kernels(1) == {"fc1": "csr", "fc2": "csr"}
    with pytest.raises(UserError, match="kernel"):
        load(path, kernel="gpu")
    with pytest.raises(UserError, match="threads"):
        load(path, threads=0)
    with pytest.raises(UserError, match="back-end"):
        load(path, backend="cuda")


@pytest.mark.parametrize("backend", BACKENDS)
def test_unread_inputs_and_outputs_are_skipped_exactly(tmp_path: Path, backend: str) -> None:
    """A first layer that reads no border pixel (as after pruning on MNIST), and fc1
    outputs no fc2 weight reads: the numba back-end moves only the read features into
    its layout and computes only the read outputs; results stay exact."""
    spec = create_spec("lenet-300-100")
    model = random_model(spec, density=0.05, seed=4)
    cols = model.weights["fc1.weight"].reshape(300, 28, 28)
    cols[:, :3] = cols[:, -3:] = cols[:, :, :3] = cols[:, :, -3:] = 0  # a 3-pixel frame nobody reads
    model.weights["fc2.weight"][:, 40:90] = 0  # fc1 outputs 40..89 are read by nobody: not computed
    model.weights["fc1.bias"][40:90] = 1.0  # (not even their bias)
    path = tmp_path / "m.plsa"
    export(model, path)
    rt = load(path, kernel="csr", backend=backend)
    if backend == "numba":
        assert rt._live is not None and rt._live.size <= 22 * 22
        assert rt._wide is not None and rt._wide[1][0, 1] <= 300 - 50  # rows fc1 computes in a batch
    x = np.random.default_rng(5).random((37, 1, 28, 28), dtype=np.float32)
    want = torch_logits(model, x)
    for n in (1, 2, 37):
        np.testing.assert_allclose(rt.logits(x[:n]), want[:n], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(rt.logits((x[:n] * 255).astype(np.uint8)),
                                   torch_logits(model, (x[:n] * 255).astype(np.uint8).astype(np.float32) / 255),
                                   rtol=1e-4, atol=1e-5)


def test_a_2_percent_layer_runs_csr_at_wide_batches(tmp_path: Path) -> None:
    """What the measurement must find on any machine: at 2% density and batch 256 the
    CSR kernel does 1/50 of the multiply-adds; it wins on both back-ends."""
    spec = mlp_spec((300,), input_shape=(1, 28, 28), classes=10)
    model = random_model(spec, density=0.02)
    path = tmp_path / "m.plsa"
    export(model, path)
    for backend in ("numpy", "numba") if numba_available() else ("numpy",):
        assert load(path, kernel="calibrate", backend=backend).kernels(256)["fc1"] == "csr"


def test_runtime_describes_itself(tmp_path: Path) -> None:
    model = random_model(create_spec("lenet-300-100"), density=0.05)
    path = tmp_path / "m.plsa"
    export(model, path, precision="int8", shrink=False)  # every stored weight counted below
    rt = load(path)
    assert "int8" in repr(rt) and "lenet-300-100" in repr(rt)
    rows = rt.describe()
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "fc3"]
    assert all(0 < r["density"] < 0.1 and r["encoding"] == "rice" for r in rows[:2])
    kept = sum(int(np.count_nonzero(model.weights[n])) for n in model.weight_names())
    # int8 rounds weights below half a quantisation step to zero (random pruning keeps some)
    assert 0.95 * kept <= rt.nnz() <= kept
    export(model, path, precision="fp32", shrink=False)  # shrink would drop dead units' weights too
    assert load(path).nnz() == kept


def test_export_shrinks_dead_units_exactly(tmp_path: Path) -> None:
    """A unit with no incoming or no outgoing weights is removed from the artifact, which
    then predicts what the unshrunk one predicts, in fewer bytes."""
    model = random_model(create_spec("lenet-300-100"), density=0.01)
    w = model.weights
    dead_in, dead_out = 7, 11  # fc1 unit 7 gets no inputs (its bias becomes a constant), unit 11 no outputs
    w["fc1.weight"][dead_in] = 0.0
    w["fc2.weight"][:, dead_out] = 0.0
    full = export(model, tmp_path / "full.plsa", precision="fp32", shrink=False)
    small = export(model, tmp_path / "small.plsa", precision="fp32")
    assert small.bytes < full.bytes and small.dense_bytes == full.dense_bytes
    a, b = load(full.path), load(small.path)
    units = {la.name: la.args.get("out_features") for la in b.spec.weight_layers()}
    assert units["fc1"] <= 300 - 2 and units["fc3"] == 10
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    assert np.allclose(a.logits(x), b.logits(x), atol=1e-4)


@pytest.fixture(scope="module")
def pruned_mlp(mnist_small) -> Model:
    """LeNet-300-100 trained 1 epoch on 3,000 real MNIST images, then the 90%
    smallest weights of each layer zeroed: a real sparse model."""
    result = prunelab.train(arch="lenet-300-100", epochs=1, dataset=mnist_small, threads=1)
    weights = dict(result.model.weights)
    for name in result.model.weight_names():
        w = weights[name]
        weights[name] = np.where(np.abs(w) > np.quantile(np.abs(w), 0.9), w, 0).astype(np.float32)
    return Model(result.model.spec, weights)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp32_artifact_agrees_with_torch_on_real_mnist(tmp_path: Path, pruned_mlp: Model, mnist_small,
                                                       backend: str) -> None:
    x = mnist_small.x_test
    ref = torch_logits(pruned_mlp, to_input(x).numpy())
    accs = {}
    for precision in ("fp32", "fp16", "int8"):
        path = tmp_path / f"{precision}.plsa"
        res = export(pruned_mlp, path, precision=precision)
        assert res.bytes < res.dense_bytes / 8
        pred = load(path, backend=backend).predict(x)  # uint8 input, as stored in MNIST
        accs[precision] = float((pred == mnist_small.y_test).mean())
        if precision == "fp32":
            np.testing.assert_array_equal(pred, ref.argmax(axis=1))
    torch_acc = float((ref.argmax(axis=1) == mnist_small.y_test).mean())
    assert accs["fp32"] == torch_acc
    # reduced precision: within a point of fp32 on 1,000 images (the benchmark holds the 0.1 pp bar)
    assert abs(accs["fp16"] - torch_acc) <= 0.01 and abs(accs["int8"] - torch_acc) <= 0.01


def test_export_applies_masks_and_reads_from_the_store(tmp_path: Path, pruned_mlp: Model) -> None:
    from prunelab.store import Store

    dense = Model(pruned_mlp.spec, {k: v + (v == 0) * 0.5 for k, v in pruned_mlp.weights.items()},
                  masks={k: pruned_mlp.weights[k] != 0 for k in pruned_mlp.weight_names()})
    store = Store()
    stored = store.save(dense)
    res = export(stored.id, tmp_path / "s.plsa", store=store, shrink=False)  # compared entry by entry
    assert res.model_id == stored.id
    art = prunelab.sparse.read_artifact(res.path)
    for name in pruned_mlp.weight_names():
        np.testing.assert_array_equal(art.tensors[name].to_dense(), pruned_mlp.weights[name])
    assert art.meta["model_id"] == stored.id
    with pytest.raises(UserError, match="precision"):
        export(stored.id, tmp_path / "x.plsa", precision="int4", store=store)
    with pytest.raises(UserError, match="folder"):
        export(stored.id, tmp_path, store=store)


def test_runtime_module_has_no_torch_import() -> None:
    src = Path(runtime.__file__).read_text()
    assert "import torch" not in src


def test_timers_report_median_and_p95() -> None:
    from prunelab.sparse.bench import time_call, time_interleaved

    calls = []
    t = time_call(lambda: calls.append(1), budget_s=0.01, min_runs=5, warmup=2)
    assert t.runs >= 5 and len(calls) == t.runs + 2
    assert 0 < t.median_us <= t.p95_us
    both = time_interleaved({"a": lambda: sum(range(100)), "b": lambda: sum(range(1000))}, budget_s=0.02,
                            rounds=2)
    assert set(both) == {"a", "b"} and all(v.runs >= 6 for v in both.values())
    assert "median" in repr(t)

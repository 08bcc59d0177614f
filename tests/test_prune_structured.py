"""Structured pruning: removing dead neurons/filters is exact, children are really smaller."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import prunelab
from prunelab.errors import UserError
from prunelab.models import create_spec
from prunelab.models.builder import build, get_weights
from prunelab.models.model import Model
from prunelab.prune import remove_units, select_units, shrink
from prunelab.prune.structured import dead_units, units_removed
from prunelab.store import Store
from prunelab.train import to_input


def random_model(arch: str, seed: int = 0, **kw: object) -> Model:
    torch.manual_seed(seed)
    spec = create_spec(arch, **kw)
    return Model(spec=spec, weights=get_weights(build(spec)))


def logits(model: Model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.to_torch().eval()(x)


@pytest.fixture(scope="module")
def images(mnist_small: object) -> torch.Tensor:
    return to_input(mnist_small.x_test[:300])  # type: ignore[attr-defined]


def kill(model: Model, layer: str, units: list[int], *, bias: bool, outgoing: str | None = None) -> Model:
    """Zero the incoming weights (and optionally bias) of `units`, or their outgoing columns in `outgoing`."""
    w = {k: v.copy() for k, v in model.weights.items()}
    if outgoing is None:
        w[f"{layer}.weight"][units] = 0.0
        if bias:
            w[f"{layer}.bias"][units] = 0.0
    else:
        wn = w[f"{outgoing}.weight"]
        block = wn.shape[1] // model.spec.layer(layer).weight_shape()[0]
        for u in units:
            wn[:, u * block : (u + 1) * block] = 0.0
    return Model(spec=model.spec, weights=w)


def test_shrink_mlp_predicts_exactly_what_the_masked_parent_predicts(images: torch.Tensor) -> None:
    m = random_model("lenet-300-100", seed=1)
    # dead by zero incoming weights with a live bias (folded into fc2's bias),
    # dead by zero outgoing weights, and fc2 units with zero rows and bias
    m = kill(m, "fc1", list(range(0, 300, 3)), bias=False)
    m = kill(m, "fc1", [1, 4, 7], bias=False, outgoing="fc2")
    m = kill(m, "fc2", list(range(50)), bias=True)
    child = shrink(m)
    sizes = {la.name: la.weight_shape() for la in child.spec.weight_layers()}
    assert sizes["fc1"] == (197, 784) and sizes["fc2"] == (50, 197) and sizes["fc3"] == (10, 50)
    assert child.params() < m.params()
    a, b = logits(m, images), logits(child, images)
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.allclose(a, b, atol=1e-4)
    assert all(v.size == 0 for v in dead_units(child).values())


def test_shrink_lenet5_conv_filters_with_bias_folding(images: torch.Tensor) -> None:
    m = random_model("lenet-5", seed=2)
    m = kill(m, "conv1", [0, 3, 5, 19], bias=False)  # constant channels: folded into conv2's bias
    m = kill(m, "conv2", list(range(0, 50, 2)), bias=True)
    m = kill(m, "fc1", list(range(100, 500)), bias=True)
    child = shrink(m)
    sizes = {la.name: la.weight_shape() for la in child.spec.weight_layers()}
    assert sizes["conv1"] == (16, 1, 5, 5) and sizes["conv2"] == (25, 16, 5, 5)
    assert sizes["fc1"] == (100, 25 * 16) and sizes["fc2"] == (10, 100)
    a, b = logits(m, images), logits(child, images)
    assert torch.equal(a.argmax(1), b.argmax(1)) and torch.allclose(a, b, atol=1e-4)


def test_shrink_padded_cnn_keeps_non_foldable_units(images: torch.Tensor) -> None:
    m = random_model("cnn", seed=3, channels=(8, 16), hidden=(32,))
    m = kill(m, "conv1", [0, 1], bias=True)   # exact zero output: removable
    m.weights["conv1.bias"][2] = 0.7
    m = kill(m, "conv1", [2], bias=False)     # constant 0.7 into a padded conv: not exactly foldable
    child = shrink(m)
    assert child.spec.layer("conv1").args["out_channels"] == 6
    a, b = logits(m, images), logits(child, images)
    assert torch.equal(a.argmax(1), b.argmax(1)) and torch.allclose(a, b, atol=1e-4)


def test_select_units_by_l1_norm() -> None:
    m = random_model("lenet-300-100")
    w = {k: v.copy() for k, v in m.weights.items()}
    w["fc1.weight"][:10] *= 0.01  # the 10 weakest fc1 neurons
    keep = select_units(m.spec, w, 0.5, scope="layer")
    assert len(keep["fc1"]) == 150 and len(keep["fc2"]) == 50
    assert not set(range(10)) & set(keep["fc1"].tolist())
    keep_g = select_units(m.spec, w, 0.5, scope="global")
    assert sum(len(v) for v in keep_g.values()) == 200
    keep_i = select_units(m.spec, w, 0.5, scope="layer", ignore=["fc2"], layer_sparsity={"fc1": 0.9})
    assert len(keep_i["fc1"]) == 30 and len(keep_i["fc2"]) == 100
    with pytest.raises(UserError, match="output layer"):
        select_units(m.spec, w, 0.5, ignore=["fc3"])
    child = remove_units(m, keep)
    assert units_removed(m.spec, child.spec)["fraction"] == 0.5


def test_structured_prune_stores_a_smaller_dense_child() -> None:
    store = Store()
    parent = prunelab.train(arch="lenet-300-100", epochs=2, train_limit=2000, threads=1, store=store).model
    r = prunelab.prune(parent.id, sparsity=0.5, method="structured", finetune_epochs=1, store=store, threads=1)
    assert r.settings["scope"] == "layer"  # the measured default for structured pruning
    child = store.load(r.model.id)
    sizes = {la.name: la.weight_shape() for la in child.spec.weight_layers()}
    assert sizes == {"fc1": (150, 784), "fc2": (50, 150), "fc3": (10, 50)}
    assert child.masks == {} and child.params() < parent.params() / 2
    assert r.sparsity == 0.5 and r.layer_sparsity == {"fc1": 0.5, "fc2": 0.5}
    assert store.get(r.model.id)["parent"] == parent.id
    assert r.test_accuracy > r.accuracy_before_finetune and len(r.history) == 1
    # pruning a structured child again (magnitude) chains on the smaller spec
    r2 = prunelab.prune(r.model.id, sparsity=0.8, finetune_epochs=0, store=store, threads=1)
    assert r2.model.spec == child.spec and r2.parent == r.model.id


def test_structured_conv_filters_and_masked_parent(images: torch.Tensor) -> None:
    m = random_model("lenet-5", seed=4)
    keep = select_units(m.spec, m.weights, 0.5, scope="layer")
    assert len(keep["conv1"]) == 10 and len(keep["conv2"]) == 25 and len(keep["fc1"]) == 250
    child = remove_units(m, keep)
    sizes = {la.name: la.weight_shape() for la in child.spec.weight_layers()}
    assert sizes == {"conv1": (10, 1, 5, 5), "conv2": (25, 10, 5, 5), "fc1": (250, 400), "fc2": (10, 250)}
    assert logits(child, images).shape == (300, 10)
    # a masked (magnitude-pruned) parent: the masks are sliced along and still enforced
    r = prunelab.prune(prunelab.train(arch="lenet-300-100", epochs=1, train_limit=600, threads=1).model,
                       sparsity=0.9, finetune_epochs=0, threads=1)
    s = prunelab.prune(r.model, sparsity=0.5, method="structured", finetune_epochs=1, threads=1)
    assert s.model.masks and s.model.masks["fc1.weight"].shape == (150, 784)
    for k, mask in s.model.masks.items():
        assert np.all(s.model.weights[k][~mask] == 0.0)

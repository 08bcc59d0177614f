"""Real training on MNIST slices: learning, determinism, masks held at zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import prunelab
from prunelab.errors import UserError
from prunelab.models import build, create_spec
from prunelab.progress import Cancelled, Event
from prunelab.train import TrainConfig, evaluate, fit, to_input


def test_training_learns_and_reports_progress(mnist_small):
    events: list[Event] = []
    result = prunelab.train(arch="lenet-300-100", epochs=2, dataset=mnist_small, callback=events.append,
                            threads=1, val_fraction=0.1, batch_size=32)
    assert result.test_accuracy > 0.85  # 2 epochs on 2,700 images
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all(h["val_accuracy"] is not None for h in result.history)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 2 and "batch" in kinds
    conf = np.array(result.test.confusion)
    assert conf.sum() == len(mnist_small.y_test) and conf.trace() / conf.sum() == pytest.approx(result.test_accuracy)
    assert result.model.meta["config"]["epochs"] == 2 and result.model.meta["versions"]["torch"]


def test_same_seed_same_weights(mnist_small):
    a = prunelab.train(arch="mlp", hidden=(32,), epochs=1, dataset=mnist_small, seed=7, threads=1)
    b = prunelab.train(arch="mlp", hidden=(32,), epochs=1, dataset=mnist_small, seed=7, threads=1)
    c = prunelab.train(arch="mlp", hidden=(32,), epochs=1, dataset=mnist_small, seed=8, threads=1)
    for k in a.model.weights:
        np.testing.assert_array_equal(a.model.weights[k], b.model.weights[k])
    assert any(not np.array_equal(a.model.weights[k], c.model.weights[k]) for k in a.model.weights)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_masked_weights_stay_exactly_zero(mnist_small, optimizer):
    torch.manual_seed(0)
    module = build(create_spec("lenet-300-100"))
    masks = {}
    for name, p in module.named_parameters():
        if name.endswith("weight"):
            masks[name] = (torch.rand_like(p) > 0.5).float()
    x, y = to_input(mnist_small.x_train[:1000]), torch.from_numpy(mnist_small.y_train[:1000])
    lr = 3e-3 if optimizer == "adam" else 0.1
    fit(module, x, y, epochs=3, lr=lr, batch_size=32, optimizer=optimizer, masks=masks)
    params = dict(module.named_parameters())
    for name, mask in masks.items():
        assert torch.all(params[name][mask == 0] == 0)
        assert torch.count_nonzero(params[name][mask == 1]) > 0
    assert evaluate(module, x, y).accuracy > 0.5


@pytest.mark.parametrize("warmup", [0, 4])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_lr_warms_up_then_follows_its_schedule(mnist_small, schedule, warmup):
    module = build(create_spec("mlp", hidden=(8,)))
    x, y = to_input(mnist_small.x_train[:320]), torch.from_numpy(mnist_small.y_train[:320])
    events: list[Event] = []
    fit(module, x, y, epochs=2, lr=0.1, batch_size=32, optimizer="sgd", lr_schedule=schedule, warmup_steps=warmup,
        callback=events.append, report_every=1)
    lrs = [e.extra["lr"] for e in events if e.kind == "batch"]
    decay = [1.0 if schedule == "constant" else 0.5 * (1 + np.cos(np.pi * t / 20)) for t in range(20)]
    warm = [min(1.0, (t + 1) / warmup) if warmup else 1.0 for t in range(20)]
    assert lrs == pytest.approx([0.1 * w * d for w, d in zip(warm, decay, strict=True)])
    assert lrs[0] == pytest.approx(0.025 if warmup else 0.1)


def test_callback_can_cancel(mnist_small):
    def stop(event: Event) -> None:
        if event.kind == "batch":
            raise Cancelled()

    with pytest.raises(Cancelled):
        prunelab.train(arch="mlp", hidden=(16,), epochs=1, dataset=mnist_small, callback=stop)


def test_config_rejects_bad_values():
    with pytest.raises(UserError, match="unknown training options"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(UserError, match="--lr"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(UserError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    assert TrainConfig.from_dict(TrainConfig(hidden=(3, 2)).to_dict()) == TrainConfig(hidden=(3, 2))


def test_importing_prunelab_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, prunelab, prunelab.models; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)

"""prune_module and export_onnx on a user's own network, trained by a plain user loop.

The network (residual blocks with BatchNorm, a concat, a Linear head) and the
loop are defined here, as a user would write them; the data is a real MNIST
slice. One dense model is trained once per module and copied by each test.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import prunelab
from prunelab.data.datasets import stratified_subset
from prunelab.errors import UserError
from prunelab.prune.engine import Gradual, Lottery, list_criteria, list_schedules, prune_module

TRAIN, TEST, BATCH = 3000, 1000, 64


class Block(nn.Module):
    """conv-BN-relu-conv-BN plus the identity (a residual add)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNetish(nn.Module):
    """(N, 1, 28, 28) -> (N, 10): stem, residual block, strided conv, residual block,
    two branches concatenated and mixed by a 1x1 conv, two Linear layers."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.block1 = Block(c)
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
                                  nn.ReLU())
        self.block2 = Block(2 * c)
        self.branch_a = nn.Conv2d(2 * c, c, 1)
        self.branch_b = nn.Conv2d(2 * c, c, 3, padding=1)
        self.mix = nn.Sequential(nn.BatchNorm2d(2 * c), nn.ReLU(), nn.Conv2d(2 * c, c, 1))
        self.fc1 = nn.Linear(c * 7 * 7, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.down(self.block1(self.stem(x))))
        x = torch.relu(self.mix(torch.cat([self.branch_a(x), self.branch_b(x)], 1)))
        return self.head(torch.relu(self.fc1(x.flatten(1))))


def run_epoch(net, opt, x, y, pruning=None, seed=0, limit=None):
    """The user's own loop: shuffle, forward, backward, step (then pruning.step())."""
    net.train()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:limit]
    for idx in order.split(BATCH):
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if pruning is not None:
            pruning.step()


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    return float((net(x).argmax(1) == y).float().mean())


def conv_linear_sparsity(net) -> float:
    ws = [m.weight.detach() for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


@pytest.fixture(scope="module")
def data(mnist):
    torch.set_num_threads(1)
    tr = stratified_subset(mnist.y_train, TRAIN, seed=0)
    te = stratified_subset(mnist.y_test, TEST, seed=0)

    def t(x):
        return torch.from_numpy(x).float().div(255).unsqueeze(1)

    return (t(mnist.x_train[tr]), torch.from_numpy(mnist.y_train[tr]).long(),
            t(mnist.x_test[te]), torch.from_numpy(mnist.y_test[te]).long())


@pytest.fixture(scope="module")
def dense(data):
    """(trained net, its Adam state, test accuracy): two epochs of the user's loop."""
    x, y, xt, yt = data
    torch.manual_seed(0)
    net = ResNetish()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    run_epoch(net, opt, x, y, seed=0)
    run_epoch(net, opt, x, y, seed=1)
    return net, opt.state_dict(), accuracy(net, xt, yt)


def fresh(dense, lr=1e-3, kind="adam"):
    net0, state, acc = dense
    net = copy.deepcopy(net0)
    if kind == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        opt.load_state_dict(state)  # carry the moments: they are what could resurrect pruned weights
        for g in opt.param_groups:
            g["lr"] = lr
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return net, opt, acc


def test_dense_net_learns(dense):
    assert dense[2] > 0.85


@pytest.mark.parametrize("kind,lr", [("adam", 1e-3), ("sgd", 0.02)])
def test_prune_90_then_the_users_epoch_keeps_zeros_and_accuracy(dense, data, kind, lr):
    x, y, xt, yt = data
    net, opt, dense_acc = fresh(dense, lr, kind)
    if kind == "sgd":  # build momentum buffers before pruning, as a user mid-training would have
        run_epoch(net, opt, x, y, seed=5, limit=640)
    params_before = {id(p) for p in net.parameters()}
    pruning = prune_module(net, 0.9)
    assert {id(p) for p in net.parameters()} == params_before  # the user's optimizer still holds them
    assert pruning.sparsity() == pytest.approx(0.9, abs=1e-4)
    run_epoch(net, opt, x, y, seed=2)
    assert conv_linear_sparsity(net) >= 0.899
    assert pruning.sparsity() >= 0.899
    # the state that could revive pruned weights is really there: the originals under the mask moved
    mask = net.fc1.parametrizations.weight[0].mask
    assert float(net.fc1.parametrizations.weight.original.detach()[mask == 0].abs().sum()) > 0
    state = opt.state[net.fc1.parametrizations.weight.original]
    moment = state["exp_avg"] if kind == "adam" else state["momentum_buffer"]
    assert float(moment[mask == 0].abs().sum()) > 0
    acc = accuracy(net, xt, yt)
    assert acc >= dense_acc - 0.03, (acc, dense_acc)
    with torch.no_grad():
        before = net.eval()(xt[:50])
    pruning.finalize()
    assert type(net.fc1) is nn.Linear and not hasattr(net.fc1, "parametrizations")
    assert conv_linear_sparsity(net) >= 0.899
    with torch.no_grad():
        assert torch.equal(net.eval()(xt[:50]), before)
    run_epoch(net, opt, x, y, seed=3, limit=128)  # the optimizer still trains the finalized module


def test_layer_scope_prunes_every_layer_exactly(dense):
    net, _, _ = fresh(dense)
    pruning = prune_module(net, 0.75, scope="layer", ignore=["head"])
    rows = {r.name: r for r in pruning.report().rows}
    assert not rows["head"].pruned and rows["head"].sparsity == 0.0
    for name, r in rows.items():
        if name != "head":
            assert r.weights_before - r.nonzero == round(0.75 * r.weights_before), name


def test_masks_match_torch_nn_utils_prune(dense):
    """The same weights pruned by torch.nn.utils.prune give the same masks (layer and global L1)."""
    import torch.nn.utils.prune as tprune

    for scope in ("layer", "global"):
        ours, _, _ = fresh(dense)
        ref, _, _ = fresh(dense)
        pruning = prune_module(ours, 0.8, scope=scope)
        layers = [(m, "weight") for m in ref.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        if scope == "layer":
            for m, name in layers:
                tprune.l1_unstructured(m, name, amount=0.8)
        else:
            tprune.global_unstructured(layers, pruning_method=tprune.L1Unstructured, amount=0.8)
        ref_masks = {n: m.weight_mask.bool() for n, m in ref.named_modules() if hasattr(m, "weight_mask")}
        for name, mask in pruning.masks().items():
            assert torch.equal(mask, ref_masks[name.removesuffix(".weight")]), (scope, name)


def test_structured_half_is_smaller_runs_exports_and_learns(dense, data, tmp_path):
    x, y, xt, yt = data
    net, _, dense_acc = fresh(dense)
    n_before = sum(p.numel() for p in net.parameters())
    pruning = prune_module(net, 0.5, method="structured", example_input=xt[:1])
    n_after = sum(p.numel() for p in net.parameters())
    assert n_after <= 0.6 * n_before
    rep = pruning.report()
    assert (rep.params_before, rep.params) == (n_before, n_after)
    assert pruning.sparsity() == pytest.approx(0.5, abs=0.02)
    assert net.block1.conv2.out_channels == net.block1.conv1.in_channels  # the residual add still adds up
    assert net.head.out_features == 10
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # new parameters: a new optimizer
    run_epoch(net, opt, x, y, seed=2)
    assert accuracy(net, xt, yt) >= dense_acc - 0.05
    res = prunelab.export_onnx(net, xt[:2], tmp_path / "small.onnx")
    assert res.params == n_after and res.max_abs_diff is not None and res.max_abs_diff < 1e-3


def test_onnx_matches_pytorch_in_onnxruntime_with_any_batch(dense, data, tmp_path):
    import onnx
    import onnxruntime as ort

    _, _, xt, _ = data
    net, _, _ = fresh(dense)
    pruning = prune_module(net, 0.9)
    path = tmp_path / "out" / "net.onnx"
    res = prunelab.export_onnx(net, xt[:4], path)
    assert res.bytes == path.stat().st_size and res.max_abs_diff < 1e-3
    assert [p.name for p in path.parent.iterdir()] == ["net.onnx"]  # no temp file left
    assert parametrize_free(onnx.load(str(path)))
    assert hasattr(net.fc1, "parametrizations")  # the user's module is untouched by the export
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = xt[100:137]  # a batch size the export never saw
    got = sess.run(None, {"input": batch.numpy()})[0]
    with torch.no_grad():
        want = net.eval()(batch).numpy()
    assert np.abs(got - want).max() < 1e-3
    assert pruning.sparsity() >= 0.899


def parametrize_free(model) -> bool:
    """The ONNX graph holds baked weights, not original-times-mask products."""
    return not any("parametrizations" in i.name or "mask" in i.name for i in model.graph.initializer)


def test_gradual_schedule_reaches_the_exact_target_at_the_last_step(dense, data):
    x, y, _, _ = data
    net, opt, _ = fresh(dense)
    steps = 12
    pruning = prune_module(net, 0.8, schedule=Gradual(steps=steps, prune_fraction=1.0, updates=6))
    assert pruning.sparsity() == 0.0 and pruning.steps == steps
    seen = []
    run_epoch(net, opt, x, y, pruning=pruning, seed=4, limit=steps * BATCH)
    seen.append(pruning.sparsity())
    assert pruning.done and pruning.t == steps
    total = sum(m.weight.numel() for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    assert pruning.sparsity() == round(0.8 * total) / total
    # the ramp is monotone and cubic: replay the targets
    targets = [pruning.settings.schedule.target(t, 0.0, 0.8) for t in range(steps + 1)]
    assert targets[0] == 0.0 and targets[-1] == 0.8 and targets == sorted(targets)
    assert targets[3] > 0.8 * 3 / steps  # front-loaded, not linear
    by_name = prune_module(fresh(dense)[0], 0.8, schedule="gradual", steps=steps)
    assert by_name.settings.schedule == Gradual(steps=steps)


def test_lottery_rounds_and_rewind(dense, data):
    x, y, _, _ = data
    torch.manual_seed(1)
    net = ResNetish()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    pruning = prune_module(net, 0.5, schedule=Lottery(rate=0.2))
    assert pruning.steps == 4 and pruning.sparsity() == 0.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    targets = []
    for _ in range(pruning.steps):
        run_epoch(net, opt, x, y, seed=6, limit=4 * BATCH)
        targets.append(pruning.step())
        pruning.rewind(opt)
        assert not opt.state
        for name, m in pruning.layers.items():
            keep = m.parametrizations.weight[0].mask.bool()
            assert torch.equal(m.weight.detach()[keep], initial[f"{name}.weight"][keep])
            assert int((m.weight.detach() == 0).sum()) >= int((~keep).sum())
        assert torch.equal(net.stem[1].running_mean, initial["stem.1.running_mean"])
    assert targets == pytest.approx([0.2, 0.36, 0.488, 0.5])
    assert pruning.sparsity() == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("criterion", list_criteria())
def test_every_criterion_hits_the_exact_count(dense, criterion):
    net, _, _ = fresh(dense)
    pruning = prune_module(net, 0.6, criterion=criterion, scope="layer")
    for r in pruning.report().rows:
        assert r.weights_before - r.nonzero == round(0.6 * r.weights_before)
    small, _, _ = fresh(dense)
    cut = prune_module(small, 0.25, method="structured", criterion=criterion, example_input=torch.zeros(1, 1, 28, 28))
    assert cut.sparsity() == pytest.approx(0.25, abs=0.03)


def test_registries():
    assert list_criteria() == ["l1", "l2", "random"]
    assert list_schedules() == ["oneshot", "gradual", "lottery"]


def test_a_deep_copy_survives_finalize_of_the_original(dense, data):
    _, _, xt, _ = data
    net, _, _ = fresh(dense)
    pruning = prune_module(net, 0.7)
    checkpoint = copy.deepcopy(net)
    pruning.finalize()
    with torch.no_grad():
        assert torch.equal(checkpoint.eval()(xt[:8]), net.eval()(xt[:8]))


def test_a_concat_flattened_into_a_linear_is_refused_and_left_unchanged():
    """Torch-Pruning (1.6.1, the version installed) mis-maps this pattern; prunelab's dry run
    catches that, refuses with the way out and leaves the module as it was. A Torch-Pruning that
    follows the pattern makes this fail: then assert that the pruned module runs instead."""

    class CatFlat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, stride=4, padding=1)
            self.a, self.b = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 3, padding=1)
            self.fc1, self.head = nn.Linear(8 * 49, 16), nn.Linear(16, 10)

        def forward(self, x):
            x = self.stem(x)
            return self.head(torch.relu(self.fc1(torch.cat([self.a(x), self.b(x)], 1).flatten(1))))

    net = CatFlat()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.zeros(2, 1, 28, 28)
    want = net(x)
    with pytest.raises(UserError, match="unchanged: ignore= the layers that feed that pattern") as info:
        prune_module(net, 0.5, method="structured", example_input=x)
    assert "\n" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert torch.equal(net(x), want) and not any(n for n, _ in net.named_buffers() if "mask" in n)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"sparsity": 1.0}, "[0, 1)"),
    ({"sparsity": -0.1}, "[0, 1)"),
    ({"sparsity": "lots"}, "[0, 1)"),
    ({"sparsity": True}, "[0, 1)"),
    ({"scope": "block"}, "unknown scope"),
    ({"method": "lottery"}, "unknown method"),
    ({"criterion": "taylor"}, "unknown criterion"),
    ({"schedule": "cubic"}, "unknown schedule"),
    ({"schedule": "gradual"}, "Gradual(steps="),
    ({"schedule": "oneshot", "steps": 10}, "gradual"),
    ({"method": "structured"}, "example_input"),
    ({"method": "structured", "schedule": "lottery", "example_input": torch.zeros(1, 1, 28, 28)}, "one-shot"),
    ({"ignore": ["fc9"]}, "no module named 'fc9'"),
    ({"include": ["block1"]}, "no weight"),
    ({"ignore": [nn.Linear, nn.Conv2d]}, "nothing to prune"),
    ({"ignore": [3]}, "names or nn.Module types"),
])
def test_bad_input_is_a_clear_user_error(kwargs, fragment):
    net = ResNetish()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    kwargs = {"sparsity": 0.5, **kwargs}
    with pytest.raises(UserError, match=None) as info:
        prune_module(net, kwargs.pop("sparsity"), **kwargs)
    assert fragment.lower() in str(info.value).lower(), str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert not hasattr(net.fc1, "parametrizations")


def test_misuse_after_the_fact_is_a_clear_user_error(tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    net = ResNetish()
    pruning = prune_module(net, 0.5)
    with pytest.raises(UserError, match="finalize"):
        prune_module(net, 0.6)
    with pytest.raises(UserError, match="lottery"):
        pruning.rewind()
    pruning.finalize()
    with pytest.raises(UserError, match="finalized"):
        pruning.step()
    with pytest.raises(UserError, match="torch.nn.Module"):
        prune_module("net.pt", 0.5)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="already 0.5"):
        prune_module(net, 0.3)
    assert type(net.fc1) is nn.Linear  # refused before anything was attached
    with pytest.raises(UserError, match="example_input"):
        prunelab.export_onnx(net, [[0.0]], tmp_path / "x.onnx")
    with pytest.raises(UserError, match="folder"):
        prunelab.export_onnx(net, torch.zeros(1, 1, 28, 28), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_import_prunelab_stays_torch_free_and_the_new_names_resolve():
    code = ("import sys, prunelab; assert 'torch' not in sys.modules; "
            "assert {'prune_module', 'export_onnx'} <= set(prunelab.__all__); "
            "f = prunelab.prune_module; g = prunelab.export_onnx; print(f.__module__, g.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["prunelab.prune.engine.pruning", "prunelab.onnx_export"]


def test_a_layer_emptied_by_the_global_ranking_is_warned_about():
    torch.manual_seed(0)
    net = ResNetish()  # untrained: fc1's 392 inputs give it the smallest initial weights
    with pytest.warns(UserWarning, match="fc1"):
        pruning = prune_module(net, 0.9)
    assert not bool(pruning.masks()["fc1.weight"].any())
    torch.manual_seed(0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prune_module(ResNetish(), 0.9, scope="layer")


def test_structured_layer_scope_cuts_every_group_exactly(dense, data):
    _, _, xt, _ = data
    net, _, _ = fresh(dense)
    pruning = prune_module(net, 0.5, method="structured", scope="layer", example_input=xt[:1])
    assert len(pruning.cuts) >= 5  # stem, block1 (coupled by the add), down, block2, branches, mix, fc1
    for cut in pruning.cuts:
        assert len(cut.removed) == min(round(0.5 * cut.channels), cut.channels - 1), cut
    assert net.block2.conv1.out_channels == net.block2.conv1.weight.shape[0] == round(0.5 * 16)
    assert net(xt[:3]).shape == (3, 10)


def _numpy_global_top_k(weights: dict[str, np.ndarray], sparsity: float) -> dict[str, np.ndarray]:
    """The independent reference: one threshold over |w| of all tensors, the
    round(s * N) smallest pruned (continuous random weights: no ties)."""
    flat = np.concatenate([np.abs(w).ravel() for w in weights.values()])
    k = round(sparsity * flat.size)
    threshold = np.sort(flat)[k - 1]
    return {n: np.abs(w) > threshold for n, w in weights.items()}


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_engine_global_masks_equal_a_numpy_top_k(sparsity):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    with torch.no_grad():  # one scale for all layers: no layer is emptied at 99% (that case warns)
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.normal_()
    weights = {f"{n}.weight": m.weight.detach().numpy().copy() for n, m in net.named_modules()
               if isinstance(m, nn.Linear)}
    pruning = prune_module(net, sparsity)
    want = _numpy_global_top_k(weights, sparsity)
    got = pruning.mask_arrays()
    assert list(got) == list(want)
    for n in want:
        assert np.array_equal(got[n], want[n]), n
        assert np.array_equal(pruning.masks()[n].numpy(), want[n])  # measured zeros = held masks
    total = sum(w.size for w in weights.values())
    assert pruning.sparsity() == round(sparsity * total) / total


def test_layer_sparsity_fixes_a_layer_and_the_rest_takes_the_budget():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    weights = {n: m.weight.detach().numpy().copy() for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    pruning = prune_module(net, 0.9, layer_sparsity={"4": 0.3, "2.weight": 0.5})
    masks = pruning.mask_arrays()
    assert int((~masks["4.weight"]).sum()) == 300 and int((~masks["2.weight"]).sum()) == 15000
    total = sum(w.size for w in weights.values())
    assert pruning.sparsity() == round(0.9 * total) / total  # the overall count stays exact
    # layer 0 gets the rest of the budget, by its own magnitude ranking
    rest = round(0.9 * total) - 300 - 15000
    assert np.array_equal(masks["0.weight"], _numpy_global_top_k({"0": weights["0"]}, rest / weights["0"].size)["0"])
    with pytest.raises(UserError, match="no pruned layer named 'fc9'"):
        prune_module(nn.Sequential(nn.Linear(4, 4)), 0.5, layer_sparsity={"fc9": 0.5})


def test_set_rewind_rewinds_a_trained_module_to_other_weights(dense, data):
    """Lottery on an already trained module: masks from the trained weights, rewind to given ones."""
    x, y, _, _ = data
    net, opt, _ = fresh(dense)
    torch.manual_seed(9)
    init = ResNetish().state_dict()
    pruning = prune_module(net, 0.36, schedule="lottery")
    pruning.set_rewind({k: v for k, v in init.items() if k.endswith("weight")})
    pruning.step()  # round 1 ranks the trained weights
    pruning.rewind(opt)
    for name, m in pruning.layers.items():
        keep = m.parametrizations.weight[0].mask.bool()
        assert torch.equal(m.weight.detach()[keep], init[f"{name}.weight"][keep])
    assert torch.equal(net.stem[1].running_mean, dense[0].stem[1].running_mean)  # not in set_rewind: kept
    with pytest.raises(UserError, match="no parameter or buffer named 'nope'"):
        pruning.set_rewind({"nope": torch.zeros(1)})
    with pytest.raises(UserError, match="lottery"):
        prune_module(fresh(dense)[0], 0.5).set_rewind({})

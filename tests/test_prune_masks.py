"""Pure mask and schedule functions: exact counts, tie-breaking, torch parity, formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as tprune

from prunelab.errors import UserError
from prunelab.prune import (
    global_magnitude_masks,
    gradual_sparsity,
    layer_magnitude_masks,
    lottery_rounds,
    magnitude_mask,
    mask_sparsity,
    random_masks,
)
from prunelab.prune.masks import check_sparsity, resolve_layer_names
from prunelab.prune.schedules import gradual_plan

SHAPES = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}


def lenet_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in SHAPES.items()}


@pytest.mark.parametrize("s", [0.0, 0.1, 0.333, 0.5, 0.9, 0.95, 0.98, 0.999])
def test_global_sparsity_is_exact(s: float) -> None:
    w = lenet_weights()
    masks = global_magnitude_masks(w, s)
    n = sum(v.size for v in w.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(s * n)
    assert all(m.shape == w[k].shape and m.dtype == bool for k, m in masks.items())
    # everything pruned is no larger than anything kept
    pruned = np.concatenate([np.abs(w[k])[~m] for k, m in masks.items()])
    kept = np.concatenate([np.abs(w[k])[m] for k, m in masks.items()])
    if pruned.size and kept.size:
        assert pruned.max() <= kept.min()


@pytest.mark.parametrize("s", [0.0, 0.25, 0.9, 0.95, 0.98])
def test_layer_sparsity_is_exact_per_layer(s: float) -> None:
    w = lenet_weights(1)
    masks = layer_magnitude_masks(w, s)
    for k, m in masks.items():
        assert int((~m).sum()) == round(s * w[k].size), k


def test_global_matches_torch_global_unstructured() -> None:
    w = lenet_weights(2)
    net = nn.Sequential(*(nn.Linear(s[1], s[0]) for s in SHAPES.values()))
    with torch.no_grad():
        for lin, arr in zip(net, w.values(), strict=True):
            lin.weight.copy_(torch.from_numpy(arr))
    tprune.global_unstructured([(lin, "weight") for lin in net], pruning_method=tprune.L1Unstructured,
                               amount=0.9)
    ours = global_magnitude_masks({k: torch.from_numpy(v) for k, v in w.items()}, 0.9)
    for lin, name in zip(net, w, strict=True):
        assert np.array_equal(lin.weight_mask.numpy().astype(bool), ours[name])


@pytest.mark.parametrize("s", [0.3, 0.9, 0.98])
def test_layer_matches_torch_l1_unstructured(s: float) -> None:
    w = lenet_weights(3)
    ours = layer_magnitude_masks(w, s)
    for name, arr in w.items():
        lin = nn.Linear(arr.shape[1], arr.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(arr))
        tprune.l1_unstructured(lin, "weight", amount=s)
        assert np.array_equal(lin.weight_mask.numpy().astype(bool), ours[name]), name


def test_ties_are_broken_deterministically_by_position() -> None:
    w = {"a.weight": np.ones((4, 5), dtype=np.float32), "b.weight": np.ones((3, 2), dtype=np.float32)}
    m1 = global_magnitude_masks(w, 0.5)
    m2 = global_magnitude_masks(w, 0.5)
    assert all(np.array_equal(m1[k], m2[k]) for k in w)
    # 13 of 26 pruned: the first 13 in (layer order, row-major) order
    flat = np.concatenate([m1["a.weight"].ravel(), m1["b.weight"].ravel()])
    assert not flat[:13].any() and flat[13:].all()
    single = magnitude_mask(np.zeros((2, 3)), 0.5)
    assert single.ravel().tolist() == [False, False, False, True, True, True]


def test_ignore_and_layer_overrides_keep_overall_exact() -> None:
    w = lenet_weights(4)
    n = sum(v.size for v in w.values())
    masks = global_magnitude_masks(w, 0.9, ignore=["fc3.weight"], layer_sparsity={"fc2.weight": 0.5})
    assert masks["fc3.weight"].all()
    assert int((~masks["fc2.weight"]).sum()) == round(0.5 * 30000)
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.9 * n)
    layer = layer_magnitude_masks(w, 0.8, ignore=["fc1.weight"], layer_sparsity={"fc3.weight": 0.3})
    assert layer["fc1.weight"].all()
    assert int((~layer["fc3.weight"]).sum()) == 300 and int((~layer["fc2.weight"]).sum()) == 24000


def test_bad_layer_names_and_unreachable_targets_fail() -> None:
    w = lenet_weights()
    with pytest.raises(UserError, match="unknown layer"):
        global_magnitude_masks(w, 0.5, ignore=["fc9.weight"])
    with pytest.raises(UserError, match="cannot be reached"):
        global_magnitude_masks(w, 0.95, ignore=["fc1.weight"])
    with pytest.raises(UserError, match="no prunable layer named 'conv1'"):
        resolve_layer_names(["conv1"], list(w))
    assert resolve_layer_names(["fc1", "fc2.weight"], list(w)) == ["fc1.weight", "fc2.weight"]


def test_existing_masks_are_never_revived() -> None:
    w = lenet_weights(5)
    first = global_magnitude_masks(w, 0.5)
    # make the pruned weights the largest: they must still stay pruned
    big = {k: np.where(first[k], v, 100.0).astype(np.float32) for k, v in w.items()}
    second = global_magnitude_masks(big, 0.8, masks=first)
    assert all(not (second[k] & ~first[k]).any() for k in w)
    assert mask_sparsity(second) == pytest.approx(round(0.8 * sum(v.size for v in w.values()))
                                                  / sum(v.size for v in w.values()))
    with pytest.raises(UserError, match="already"):
        global_magnitude_masks(w, 0.3, masks=first)
    lay = layer_magnitude_masks(big, 0.2, masks=first)  # a sparser layer keeps its mask
    assert all(np.array_equal(lay[k], first[k]) for k in w if (~first[k]).mean() >= 0.2)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), float("inf"), "abc", None, True])
def test_check_sparsity_rejects(bad: object) -> None:
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        check_sparsity(bad)


def test_random_masks_exact_and_seeded() -> None:
    w = lenet_weights()
    a, b = random_masks(w, 0.9, seed=1), random_masks(w, 0.9, seed=1)
    c = random_masks(w, 0.9, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in w)
    assert not all(np.array_equal(a[k], c[k]) for k in w)
    n = sum(v.size for v in w.values())
    assert sum(int((~m).sum()) for m in a.values()) == round(0.9 * n)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 30), cols=st.integers(1, 30), s=st.floats(0, 0.999), seed=st.integers(0, 9))
def test_property_exact_count_any_shape(rows: int, cols: int, s: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = {"x.weight": rng.integers(-3, 3, (rows, cols)).astype(np.float32),  # many ties
         "y.weight": rng.standard_normal((cols, 2)).astype(np.float32)}
    m = global_magnitude_masks(w, s)
    assert sum(int((~v).sum()) for v in m.values()) == round(s * (rows * cols + cols * 2))


# --- schedules --------------------------------------------------------------

def test_gradual_matches_zhu_gupta_formula() -> None:
    s_i, s_f, t0, n, dt = 0.0, 0.9, 10, 8, 5
    for t in range(0, 70):
        got = gradual_sparsity(t, s_i, s_f, t0, n, dt)
        if t < t0:
            want = s_i
        else:
            k = min((t - t0) // dt, n)
            want = s_f + (s_i - s_f) * (1 - k * dt / (n * dt)) ** 3
        assert got == pytest.approx(want, abs=1e-12)
    assert gradual_sparsity(t0, s_i, s_f, t0, n, dt) == s_i
    assert gradual_sparsity(t0 + n * dt, s_i, s_f, t0, n, dt) == pytest.approx(s_f)
    values = [gradual_sparsity(t, 0.5, 0.98, 0, 20, 3) for t in range(100)]
    assert values == sorted(values)
    # the cubic front-loads: half-way through, 87.5% of the way there
    assert gradual_sparsity(20, 0.0, 0.8, 0, 40, 1) == pytest.approx(0.8 * (1 - 0.5 ** 3))


def test_gradual_plan_finishes_inside_the_run() -> None:
    for total in (1, 2, 7, 100, 3751):
        t0, n, dt = gradual_plan(total, 0.0, 0.9, 0.5, 20)
        assert n >= 1 and dt >= 1
        if total > 1:
            assert t0 + n * dt <= total - 1


def test_lottery_rounds_prune_20_percent_of_the_rest() -> None:
    r = lottery_rounds(0.9)
    assert len(r) == math.ceil(math.log(0.1) / math.log(0.8)) == 11
    for i, s in enumerate(r[:-1], start=1):
        assert s == pytest.approx(1 - 0.8 ** i)
    assert r[-1] == 0.9
    assert lottery_rounds(0.2) == [0.2]
    assert lottery_rounds(0.5, start=0.36)[0] == pytest.approx(1 - 0.64 * 0.8)
    assert lottery_rounds(0.3, start=0.5) == []
    with pytest.raises(UserError):
        gradual_sparsity(0, 0.0, 0.9, 0, 0, 1)

"""Property-based tests (hypothesis) over the real library functions:

- masks: exactly round(s * N) weights pruned (global and per layer), pruned
  weights stay pruned when re-pruning, the magnitude order is respected, and
  global vs per-layer totals agree to within rounding;
- artifacts: write -> read round-trips bit-exactly at fp32 for arbitrary
  shapes, sparsity patterns and encodings; fp16 equals the float16 cast;
  int8 stays within half a quantisation step and never revives a zero; any
  damaged byte or truncation is refused with one UserError;
- data selection: the budget is exact unless a floor raises it, min_keep and
  every class are honoured, indices are sorted, distinct and valid.

`make test` tries a few dozen examples per property; `make reliability`
(PRUNELAB_RELIABILITY=full) tries ten times more and records the counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from prunelab.errors import UserError
from prunelab.models.presets import cnn_spec, mlp_spec
from prunelab.models.spec import ModelSpec
from prunelab.prune.masks import (
    global_magnitude_masks,
    layer_magnitude_masks,
    magnitude_mask,
    mask_sparsity,
    random_masks,
)
from prunelab.select import Reservoir, list_strategies, select
from prunelab.sparse.format import (
    ENCODINGS,
    encode_artifact,
    join_artifact,
    param_names,
    read_artifact,
    split_artifact,
)
from tests.reliability import record, scale

EXAMPLES = int(scale(30, 300))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
TRIED: Counter[str] = Counter()  # property -> examples run (recorded at the end of the module)


@pytest.fixture(scope="module", autouse=True)
def _record_counts() -> Iterator[None]:
    yield
    record("properties", examples=dict(TRIED), total=sum(TRIED.values()), max_examples=EXAMPLES)


def expected_pruned(s: float, n: int) -> int:
    """The documented rule, written independently: Python's round(s * n)."""
    return int(round(s * n))


# --- strategies ----------------------------------------------------------------

shapes = st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple)
sparsities = st.one_of(st.floats(0.0, 0.999999, allow_nan=False), st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.25]))


@st.composite
def weight_sets(draw: st.DrawFn, max_layers: int = 4) -> dict[str, np.ndarray]:
    """1..max_layers float32 tensors of arbitrary small shapes; values drawn from
    a mix that includes exact ties, zeros and negative zeros."""
    n_layers = draw(st.integers(1, max_layers))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "ties", "zeros", "tiny"]))
    out = {}
    for i in range(n_layers):
        shape = draw(shapes)
        if kind == "normal":
            w = rng.standard_normal(shape)
        elif kind == "ties":
            w = rng.integers(-3, 4, size=shape).astype(np.float64)  # few distinct magnitudes
        elif kind == "zeros":
            w = rng.standard_normal(shape) * (rng.random(shape) < 0.3)
            w[rng.random(shape) < 0.2] = -0.0
        else:
            w = rng.standard_normal(shape) * 1e-38  # subnormal-range float32
        out[f"l{i}.weight"] = w.astype(np.float32)
    return out


# --- masks -----------------------------------------------------------------------


@SETTINGS
@given(weights=weight_sets(), s=sparsities)
def test_layer_masks_prune_exactly_round_s_n_in_every_layer(weights: dict[str, np.ndarray], s: float) -> None:
    TRIED["masks_layer_exact"] += 1
    masks = layer_magnitude_masks(weights, s)
    assert list(masks) == list(weights)
    for name, w in weights.items():
        m = masks[name]
        assert m.shape == w.shape and m.dtype == bool
        assert int((~m).sum()) == expected_pruned(s, w.size), name
        if (~m).any() and m.any():  # magnitude order: nothing kept is smaller than anything pruned
            assert np.abs(w[m]).min() >= np.abs(w[~m]).max()
    single = {n: magnitude_mask(w, s) for n, w in weights.items()}
    assert all(np.array_equal(single[n], masks[n]) for n in weights)


@SETTINGS
@given(weights=weight_sets(), s=sparsities)
def test_global_masks_prune_exactly_round_s_n_overall(weights: dict[str, np.ndarray], s: float) -> None:
    TRIED["masks_global_exact"] += 1
    masks = global_magnitude_masks(weights, s)
    total = sum(w.size for w in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == expected_pruned(s, total)
    assert math.isclose(mask_sparsity(masks), pruned / total)
    kept = np.concatenate([np.abs(w[masks[n]]) for n, w in weights.items()])
    gone = np.concatenate([np.abs(w[~masks[n]]) for n, w in weights.items()])
    if kept.size and gone.size:  # one threshold across all layers
        assert kept.min() >= gone.max()


@SETTINGS
@given(weights=weight_sets(), s=sparsities)
def test_global_and_layer_totals_agree_to_rounding(weights: dict[str, np.ndarray], s: float) -> None:
    TRIED["masks_global_vs_layer"] += 1
    g = global_magnitude_masks(weights, s)
    la = layer_magnitude_masks(weights, s)
    g_total = sum(int((~m).sum()) for m in g.values())
    l_total = sum(int((~m).sum()) for m in la.values())
    # each layer rounds s * n_i on its own: at most half a weight of error per layer, plus the global rounding
    assert abs(g_total - l_total) <= len(weights) / 2 + 0.5
    assert {n: m.shape for n, m in g.items()} == {n: m.shape for n, m in la.items()}
    # a single layer: global and per-layer are the same mask
    if len(weights) == 1:
        name = next(iter(weights))
        assert np.array_equal(g[name], la[name])


@SETTINGS
@given(weights=weight_sets(), s1=sparsities, s2=sparsities, scope=st.sampled_from(["global", "layer"]),
       apply=st.booleans())
def test_repruning_never_revives_a_pruned_weight(weights: dict[str, np.ndarray], s1: float, s2: float,
                                                 scope: str, apply: bool) -> None:
    TRIED["masks_zeros_stay_zero"] += 1
    fn = global_magnitude_masks if scope == "global" else layer_magnitude_masks
    first = fn(weights, s1)
    # the stored model holds w * mask (pruned weights are exactly zero), as prune() leaves it
    held = {n: w * first[n] for n, w in weights.items()} if apply else weights
    total = sum(w.size for w in weights.values())
    already = sum(int((~m).sum()) for m in first.values())
    if scope == "global" and expected_pruned(s2, total) < already:
        with pytest.raises(UserError, match="already"):
            fn(held, s2, masks=first)
        return
    second = fn(held, s2, masks=first)
    for name in weights:
        assert not np.any(second[name] & ~first[name]), f"{name}: a pruned weight came back"
    pruned = sum(int((~m).sum()) for m in second.values())
    if scope == "global":
        assert pruned == expected_pruned(s2, total)
    else:
        for name, w in weights.items():
            want = max(expected_pruned(s2, w.size), int((~first[name]).sum()))
            assert int((~second[name]).sum()) == want


@SETTINGS
@given(weights=weight_sets(max_layers=4), s=sparsities, data=st.data())
def test_global_masks_with_ignored_and_fixed_layers(weights: dict[str, np.ndarray], s: float,
                                                     data: st.DataObject) -> None:
    TRIED["masks_ignore_fixed"] += 1
    names = list(weights)
    ignored = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    rest = [n for n in names if n not in ignored]
    fixed_names = data.draw(st.lists(st.sampled_from(rest), unique=True, max_size=len(rest))) if rest else []
    fixed = {n: data.draw(sparsities) for n in fixed_names}
    total = sum(w.size for w in weights.values())
    try:
        masks = global_magnitude_masks(weights, s, ignore=ignored, layer_sparsity=fixed)
    except UserError as exc:
        # only when the budget cannot be met by the free layers
        assert "cannot be reached" in str(exc) or "already" in str(exc)
        pool = [n for n in rest if n not in fixed]
        need = expected_pruned(s, total) - sum(expected_pruned(fixed[n], weights[n].size) for n in fixed)
        assert pool and not 0 <= need <= sum(weights[n].size for n in pool)
        return
    for n in ignored:
        assert masks[n].all(), f"ignored layer {n} was pruned"
    for n, fs in fixed.items():
        assert int((~masks[n]).sum()) == expected_pruned(fs, weights[n].size)
    pool = [n for n in rest if n not in fixed]
    pruned = sum(int((~m).sum()) for m in masks.values())
    if pool:
        assert pruned == expected_pruned(s, total)


@SETTINGS
@given(weights=weight_sets(), s=sparsities, scope=st.sampled_from(["global", "layer"]))
def test_torch_tensors_give_the_same_masks_as_numpy(weights: dict[str, np.ndarray], s: float, scope: str) -> None:
    import torch

    TRIED["masks_torch_input"] += 1
    fn = global_magnitude_masks if scope == "global" else layer_magnitude_masks
    from_numpy = fn(weights, s)
    from_torch = fn({n: torch.from_numpy(w.copy()).requires_grad_() for n, w in weights.items()}, s,
                    masks={n: torch.from_numpy(m) for n, m in from_numpy.items()})
    assert all(np.array_equal(from_numpy[n], from_torch[n]) for n in weights)


@SETTINGS
@given(weights=weight_sets(), s=sparsities, seed=st.integers(0, 2**31), scope=st.sampled_from(["global", "layer"]))
def test_random_masks_exact_and_seeded(weights: dict[str, np.ndarray], s: float, seed: int, scope: str) -> None:
    TRIED["masks_random"] += 1
    a = random_masks(weights, s, seed=seed, scope=scope)
    b = random_masks(weights, s, seed=seed, scope=scope)
    assert all(np.array_equal(a[n], b[n]) for n in weights)
    if scope == "global":
        assert sum(int((~m).sum()) for m in a.values()) == expected_pruned(s, sum(w.size for w in weights.values()))
    else:
        assert all(int((~a[n]).sum()) == expected_pruned(s, w.size) for n, w in weights.items())


def _valid_sparsity_text(text: str) -> bool:
    """'0.5' (a CLI argument) is a valid sparsity; only text outside [0, 1) must be refused."""
    try:
        return 0.0 <= float(text) < 1.0
    except ValueError:
        return False


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(bad=st.one_of(st.floats(1.0, 1e9), st.floats(-1e9, -1e-12), st.just(float("nan")), st.just(float("inf")),
                     st.text(max_size=5).filter(lambda t: not _valid_sparsity_text(t)), st.booleans()))
def test_bad_sparsity_is_a_user_error(bad: object) -> None:
    TRIED["masks_bad_sparsity"] += 1
    w = {"a.weight": np.ones((3, 3), np.float32)}
    with pytest.raises(UserError):
        global_magnitude_masks(w, bad)  # type: ignore[arg-type]
    with pytest.raises(UserError):
        layer_magnitude_masks(w, 0.5, layer_sparsity={"a.weight": bad})  # type: ignore[dict-item]


# --- artifacts -----------------------------------------------------------------

@st.composite
def specs(draw: st.DrawFn) -> ModelSpec:
    """Small MLPs and CNNs with arbitrary sizes (input, hidden, channels, classes)."""
    classes = draw(st.integers(1, 12))
    if draw(st.booleans()):
        side = draw(st.integers(1, 8))
        hidden = draw(st.lists(st.integers(1, 24), min_size=1, max_size=3))
        return mlp_spec(hidden, input_shape=(draw(st.integers(1, 2)), side, side), classes=classes)
    k = draw(st.sampled_from([1, 3]))
    side = draw(st.integers(k + 1, 10))
    channels = draw(st.lists(st.integers(1, 6), min_size=1, max_size=1))
    hidden = draw(st.lists(st.integers(1, 16), min_size=1, max_size=2))
    return cnn_spec(channels, hidden, kernel_size=k, input_shape=(draw(st.integers(1, 2)), side, side),
                    classes=classes)


@st.composite
def patterned_weights(draw: st.DrawFn, spec: ModelSpec) -> dict[str, np.ndarray]:
    """float32 weights for `spec` with an arbitrary sparsity pattern per tensor:
    random density, empty rows, all zero, all dense, or a single survivor.
    Values include ties, tiny (subnormal) and huge float32 numbers."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = {}
    for name, shape in param_names(spec):
        values = draw(st.sampled_from(["normal", "extreme", "ties"]))
        if values == "normal":
            w = rng.standard_normal(shape).astype(np.float32)
        elif values == "ties":
            w = rng.integers(-2, 3, size=shape).astype(np.float32)
        else:
            w = (rng.standard_normal(shape) * rng.choice([1e-40, 1e-20, 1.0, 1e20, 3e38], size=shape))
            w = np.clip(w, -3.4e38, 3.4e38).astype(np.float32)
        pattern = draw(st.sampled_from(["density", "rows", "zero", "dense", "one"]))
        if pattern == "density":
            w[rng.random(shape) >= draw(st.floats(0.0, 1.0))] = 0.0
        elif pattern == "rows" and w.ndim >= 2:
            w[rng.random(shape[0]) < 0.5] = 0.0
        elif pattern == "zero":
            w[...] = 0.0
        elif pattern == "one":
            keep = rng.integers(w.size)
            flat = w.reshape(-1)
            flat[np.arange(flat.size) != keep] = 0.0
        out[name] = w
    return out


META = st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                                                     st.floats(allow_nan=False, allow_infinity=False),
                                                     st.text(max_size=20)), max_size=4)


def round_trip(spec: ModelSpec, weights: dict[str, np.ndarray], precision: str,
               encodings: dict[str, str] | None, meta: dict | None = None) -> tuple[dict[str, np.ndarray], bytes]:
    data, infos = encode_artifact(spec, weights, precision, encodings, meta)
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.plsa"
        path.write_bytes(data)
        art = read_artifact(path)
        assert art.bytes == len(data)
        assert art.spec.to_dict() == spec.to_dict()
        assert art.meta == (meta or {})
        for info in infos:
            t = art.tensors[info.name]
            assert (t.encoding, t.nnz, t.size) == (info.encoding, info.nnz, info.size)
        return art.weights(), data


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-exact float32 equality, except that a sparse encoding may store -0.0 as +0.0
    (it keeps non-zeros only; -0.0 == 0.0 in every computation)."""
    a32 = np.where(a == 0, np.float32(0), a).astype(np.float32)
    b32 = np.where(b == 0, np.float32(0), b).astype(np.float32)
    return a.shape == b.shape and np.array_equal(a32.view(np.uint32), b32.view(np.uint32))


@SETTINGS
@given(data=st.data(), spec=specs(), forced=st.one_of(st.none(), st.sampled_from(ENCODINGS)), meta=META)
def test_fp32_artifact_round_trips_bit_exactly(data: st.DataObject, spec: ModelSpec, forced: str | None,
                                               meta: dict) -> None:
    TRIED["artifact_fp32_round_trip"] += 1
    weights = data.draw(patterned_weights(spec))
    encodings = {n: forced for n, _ in param_names(spec)} if forced else None
    back, _ = round_trip(spec, weights, "fp32", encodings, meta)
    assert set(back) == set(weights)
    for name, w in weights.items():
        assert back[name].dtype == np.float32
        assert same_bits(back[name], w), name
        assert np.array_equal(back[name] != 0, w != 0), f"{name}: sparsity pattern changed"


@SETTINGS
@given(data=st.data(), spec=specs(), forced=st.one_of(st.none(), st.sampled_from(ENCODINGS)))
def test_fp16_artifact_equals_the_float16_cast(data: st.DataObject, spec: ModelSpec, forced: str | None) -> None:
    TRIED["artifact_fp16"] += 1
    weights = data.draw(patterned_weights(spec))
    encodings = {n: forced for n, _ in param_names(spec)} if forced else None
    if any(np.abs(w).max(initial=0) > 65504 for w in weights.values()):
        with pytest.raises(UserError, match="float16 range"):
            encode_artifact(spec, weights, "fp16", encodings)
        return
    back, _ = round_trip(spec, weights, "fp16", encodings)
    for name, w in weights.items():
        assert same_bits(back[name], w.astype(np.float16).astype(np.float32)), name


@SETTINGS
@given(data=st.data(), spec=specs(), forced=st.one_of(st.none(), st.sampled_from(ENCODINGS)))
def test_int8_artifact_within_half_a_step_and_zeros_stay_zero(data: st.DataObject, spec: ModelSpec,
                                                              forced: str | None) -> None:
    TRIED["artifact_int8"] += 1
    weights = data.draw(patterned_weights(spec))
    # int8 weights, fp16 biases: keep biases inside the float16 range
    assume(all(np.abs(w).max(initial=0) <= 65504 for n, w in weights.items() if n.endswith(".bias")))
    encodings = {n: forced for n, _ in param_names(spec)} if forced else None
    back, _ = round_trip(spec, weights, "int8", encodings)
    for name, w in weights.items():
        r = back[name]
        assert np.all(r[w == 0] == 0), f"{name}: a zero came back non-zero"
        if name.endswith(".bias"):
            assert same_bits(r, w.astype(np.float16).astype(np.float32)), name
            continue
        rows = w.reshape(w.shape[0], -1).astype(np.float64)
        step = np.abs(rows).max(axis=1, keepdims=True) / 127.0
        err = np.abs(r.reshape(rows.shape).astype(np.float64) - rows)
        # half a step, plus the rounding of the stored scale times up to 127 steps: relative 2**-11
        # for a float16 scale, or half a subnormal float32 ulp (2**-150) when the row is ~1e-38 or smaller
        assert np.all(err <= step * (0.5 + 127 * 2.0**-10) + 127 * 2.0**-149), name


@SETTINGS
@given(data=st.data(), spec=specs(), where=st.floats(0.0, 1.0), cut=st.booleans())
def test_any_damaged_byte_or_truncation_is_one_user_error(data: st.DataObject, spec: ModelSpec, where: float,
                                                          cut: bool) -> None:
    TRIED["artifact_damage"] += 1
    weights = data.draw(patterned_weights(spec))
    blob, _ = encode_artifact(spec, weights, data.draw(st.sampled_from(["fp32", "fp16", "int8"]))
                              if all(np.abs(w).max(initial=0) <= 65504 for w in weights.values()) else "fp32")
    pos = min(int(where * len(blob)), len(blob) - 1)
    if cut:
        bad = blob[:pos]
    else:
        flip = data.draw(st.integers(1, 255))
        bad = blob[:pos] + bytes([blob[pos] ^ flip]) + blob[pos + 1:]
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.plsa"
        path.write_bytes(bad)
        with pytest.raises(UserError) as info:
            read_artifact(path)
        assert str(path) in str(info.value)  # the message names the file


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                       st.text(max_size=6), st.lists(st.integers(-5, 2**40), max_size=4),
                       st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON tree."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _replace(node: object, path: tuple, value: object) -> object:
    if not path:
        return value
    node = dict(node) if isinstance(node, dict) else list(node)  # type: ignore[call-overload]
    node[path[0]] = _replace(node[path[0]], path[1:], value)  # type: ignore[index]
    return node


@SETTINGS
@given(data=st.data(), spec=specs(), precision=st.sampled_from(["fp32", "fp16", "int8"]))
def test_a_tampered_header_with_a_valid_checksum_is_read_or_refused_cleanly(data: st.DataObject, spec: ModelSpec,
                                                                            precision: str) -> None:
    """Rewrite one value anywhere in the JSON header (shapes, counts, offsets, types, spec)
    and fix the checksum, so only the structural checks stand between the file and the
    decoder: reading must give a UserError or a consistent artifact, never another exception."""
    TRIED["artifact_header_tamper"] += 1
    weights = data.draw(patterned_weights(spec))
    weights = {n: np.clip(w, -1e4, 1e4) for n, w in weights.items()}
    blob, _ = encode_artifact(spec, weights, precision)
    md, header, blobs = split_artifact(blob)
    path = data.draw(st.sampled_from(_paths(header)[1:]))
    header = _replace(header, path, data.draw(JSON_VALUES))
    with TemporaryDirectory() as tmp:
        file = Path(tmp) / "t.plsa"
        file.write_bytes(join_artifact(header, blobs, md))
        try:
            art = read_artifact(file)
        except UserError as exc:
            assert str(file) in str(exc), exc
            return
        for name, t in art.tensors.items():  # accepted: it must decode to the spec's shapes
            assert t.to_dense().shape == dict(param_names(art.spec))[name]


def _tampered(tmp: Path, path: tuple, value: object) -> Path:
    """A small CNN artifact with one header value replaced and the checksum fixed."""
    spec = cnn_spec((2,), (4,), kernel_size=3, input_shape=(1, 6, 6), classes=3)
    blob, _ = encode_artifact(spec, {n: np.ones(s, np.float32) for n, s in param_names(spec)}, "fp32",
                              {n: "csr" for n, _ in param_names(spec)})
    md, header, blobs = split_artifact(blob)
    file = tmp / "t.plsa"
    file.write_bytes(join_artifact(_replace(header, path, value), blobs, md))
    return file


# regressions found by the property above: each escaped as a raw exception or an error without the file name
@pytest.mark.parametrize(("path", "value", "fragment"), [
    (("spec", "layers", 0, "stride"), 0, "stride"),  # ZeroDivisionError computing shapes
    (("spec", "classes"), float("inf"), "positive integers"),  # OverflowError in int()
    (("spec", "input_shape", 2), float("inf"), "positive integers"),  # OverflowError
    (("tensors", 0, "parts", "values", 1), float("inf"), "bad values location"),  # OverflowError sizing a part
    (("tensors", 0, "precision"), "", "unknown precision"),  # UserError without the file name
    (("precision",), "x", "unknown precision"),  # UserError without the file name
])
def test_regression_tampered_header_values(tmp_path: Path, path: tuple, value: object, fragment: str) -> None:
    file = _tampered(tmp_path, path, value)
    with pytest.raises(UserError) as info:
        read_artifact(file)
    assert str(file) in str(info.value) and fragment in str(info.value) and "export it again" in str(info.value)


@pytest.mark.parametrize(("layer_key", "value"), [("stride", 0), ("stride", -2), ("padding", -1), ("bias", "yes"),
                                                  ("stride", 1.5)])
def test_regression_spec_rejects_bad_optional_layer_fields(layer_key: str, value: object) -> None:
    d = cnn_spec((2,), (4,), kernel_size=3, input_shape=(1, 6, 6), classes=3).to_dict()
    d["layers"][0][layer_key] = value
    with pytest.raises(UserError, match=layer_key):
        ModelSpec.from_dict(d)
    d = mlp_spec((4,), input_shape=(1, 3, 3), classes=3).to_dict()
    with pytest.raises(UserError, match="positive integers"):
        ModelSpec.from_dict({**d, "classes": float("inf")})


@SETTINGS
@given(data=st.data(), spec=specs(), batch=st.integers(0, 5), forced=st.one_of(st.none(), st.sampled_from(ENCODINGS)))
def test_runtime_matches_torch_for_any_sparsity_pattern(data: st.DataObject, spec: ModelSpec, batch: int,
                                                        forced: str | None) -> None:
    """The torch-free runtime on a round-tripped artifact computes what torch computes
    with the same weights (any shapes, empty rows, all-zero layers, forced encodings)."""
    import torch

    from prunelab.models.builder import build, load_weights
    from prunelab.sparse.runtime import Runtime

    TRIED["runtime_vs_torch"] += 1
    weights = data.draw(patterned_weights(spec))
    weights = {n: np.clip(np.nan_to_num(w), -4, 4).astype(np.float32) for n, w in weights.items()}
    encodings = {n: forced for n, _ in param_names(spec)} if forced else None
    blob, _ = encode_artifact(spec, weights, "fp32", encodings)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 256, size=(batch, *spec.input_shape), dtype=np.uint8)
    with TemporaryDirectory() as tmp:
        file = Path(tmp) / "m.plsa"
        file.write_bytes(blob)
        rt = Runtime(read_artifact(file), threads=1)
        got = rt.logits(x)
    module = load_weights(build(spec), weights).eval()
    with torch.no_grad():
        want = module(torch.from_numpy(x.astype(np.float32) / 255.0)).numpy()
    assert got.shape == want.shape == (batch, spec.classes)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * (1 + float(np.abs(want).max(initial=0))))


# --- data selection ----------------------------------------------------------------

# strategies cheap enough for hypothesis on tiny inputs (every one of them, auto included)
STRATEGIES = list_strategies()


@st.composite
def selection_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(X (n, d), y, task) with duplicates, constant columns, tiny classes, string labels."""
    n = draw(st.integers(1, 160))
    d = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layout = draw(st.sampled_from(["normal", "duplicates", "constant", "integers", "huge", "offset"]))
    if layout == "normal":
        X = rng.standard_normal((n, d))
    elif layout == "huge":  # finite, but the squares overflow float64
        X = rng.standard_normal((n, d)) * draw(st.sampled_from([1e160, 1e300, 1e-300]))
    elif layout == "offset":  # tiny spread on a large offset
        X = 1e9 + rng.standard_normal((n, d))
    elif layout == "duplicates":
        X = rng.standard_normal((max(1, n // 4), d))[rng.integers(0, max(1, n // 4), n)]
    elif layout == "constant":
        X = np.full((n, d), 3.0)
    else:
        X = rng.integers(0, 3, size=(n, d))
    labels = draw(st.sampled_from(["int", "str", "rare", "none", "regression"]))
    if labels == "none":
        return X, None, "none"
    if labels == "regression":
        return X, rng.standard_normal(n) * 10 + 0.5, "regression"
    classes = draw(st.integers(1, min(n, 12)))
    y = rng.integers(0, classes, n)
    if labels == "rare":  # one sample of the last class, the rest spread over the others
        y = rng.integers(0, max(1, classes - 1), n)
        y[rng.integers(n)] = classes
    if labels == "str":
        return X, np.array([f"c{v}" for v in y]), "classification"
    return X, y, "classification"


@SETTINGS
@given(inputs=selection_inputs(), strategy=st.sampled_from(STRATEGIES), min_keep=st.integers(1, 60),
       budget=st.one_of(st.floats(1e-6, 1.0), st.integers(1, 400)), seed=st.integers(0, 1000))
def test_selection_floors_and_indices(inputs: tuple[np.ndarray, np.ndarray | None, str], strategy: str,
                                      min_keep: int, budget: float | int, seed: int) -> None:
    TRIED["select_floors"] += 1
    X, y, task = inputs
    n = len(X)
    keep, keep_count = (budget, None) if isinstance(budget, float) else (None, budget)
    sel = select(X, y, keep=keep, keep_count=keep_count, strategy=strategy, min_keep=min_keep,
                 random_state=seed, task=task if task != "none" else "auto")
    idx = sel.indices
    assert idx.dtype == np.int64 and idx.ndim == 1
    assert np.all(np.diff(idx) > 0), "indices must be sorted and distinct"
    assert idx.size == 0 or (idx[0] >= 0 and idx[-1] < n)
    assert sel.scores.shape == (n,)
    requested = min(n, int(math.floor(keep * n + 0.5))) if keep is not None else min(keep_count, n)
    classes = np.unique(y) if task == "classification" else np.array([])
    floor = max(requested, min(min_keep, n), len(classes))
    assert len(idx) == floor, (len(idx), requested, min_keep, len(classes))
    assert len(idx) >= min(min_keep, n), "min_keep not respected"
    if task == "classification":
        assert set(np.unique(y[idx])) == set(classes), "a class lost all its samples"
    if floor == requested:
        assert sel.report.floors == [], "a floor was reported although none applied"
    else:
        assert sel.report.floors and sel.report.floors[-1].after == floor
    assert sel.report.kept_count == len(idx) and sel.report.original_count == n
    again = select(X, y, keep=keep, keep_count=keep_count, strategy=strategy, min_keep=min_keep,
                   random_state=seed, task=task if task != "none" else "auto")
    assert np.array_equal(again.indices, idx), "the same seed must select the same samples"


@SETTINGS
@given(inputs=selection_inputs(), min_keep=st.integers(1, 60))
def test_auto_selection_without_a_budget_keeps_the_floors(inputs: tuple[np.ndarray, np.ndarray | None, str],
                                                          min_keep: int) -> None:
    TRIED["select_auto_floors"] += 1
    X, y, task = inputs
    sel = select(X, y, min_keep=min_keep, task=task if task != "none" else "auto")
    idx = sel.indices
    assert np.all(np.diff(idx) > 0) and (idx.size == 0 or 0 <= idx[0] <= idx[-1] < len(X))
    assert len(idx) >= min(min_keep, len(X))
    if task == "classification":
        assert set(np.unique(y[idx])) == set(np.unique(y))


@SETTINGS
@given(cap=st.integers(1, 80), batches=st.lists(st.integers(1, 70), min_size=1, max_size=6),
       min_keep=st.integers(1, 40), strategy=st.sampled_from(["random", "importance", "cluster"]),
       seed=st.integers(0, 1000))
def test_reservoir_never_exceeds_its_cap(cap: int, batches: list[int], min_keep: int, strategy: str,
                                         seed: int) -> None:
    TRIED["select_reservoir_cap"] += 1
    rng = np.random.default_rng(seed)
    res = Reservoir(cap=cap, strategy=strategy, min_keep=min_keep, random_state=seed)
    arrived = 0
    for size in batches:
        X = rng.standard_normal((size, 3))
        y = rng.integers(0, 3, size)
        try:
            res.add(X, y, timestamps=np.arange(arrived, arrived + size, dtype=np.float64))
        except UserError as exc:  # only allowed when one sample per class cannot fit
            assert cap < len(np.unique(np.concatenate([res.y if res.y is not None else y[:0], y]))), exc
            assert "raise the cap" in str(exc)
            return
        arrived += size
        assert len(res) <= cap, f"{len(res)} samples held, cap {cap}"
        if res.compactions == 0:
            assert len(res) == arrived
        ids = res.ids
        assert len(np.unique(ids)) == len(ids) and (ids.size == 0 or 0 <= ids.min() <= ids.max() < arrived)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_regression_selection_with_huge_finite_features(strategy: str) -> None:
    """Found by a scan: |x| ~1e300 overflowed the standardization sums to NaN, and k-means /
    NearestNeighbors crashed with "Input X contains NaN" on valid, finite input."""
    rng = np.random.default_rng(0)
    X = np.hstack([rng.standard_normal((80, 1)) * 1e300, rng.standard_normal((80, 2)) * 1e200,
                   rng.standard_normal((80, 1))])
    y = rng.integers(0, 3, 80)
    sel = select(X, y, keep=0.25, strategy=strategy, min_keep=5)
    assert len(sel.indices) == 20 and set(y[sel.indices]) == {0, 1, 2}
    assert np.all(np.isfinite(sel.scores))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), compressed=st.booleans(), cut=st.booleans(), where=st.floats(0.0, 1.0),
       flip=st.integers(1, 255))
def test_a_damaged_npz_is_read_or_refused_with_one_user_error(seed: int, compressed: bool, cut: bool,
                                                              where: float, flip: int) -> None:
    """`prunelab select --input FILE.npz` (and the explorer's upload) on a truncated or bit-flipped
    file: a UserError or a readable table, never a zlib/zipfile/MemoryError traceback."""
    import io

    from prunelab.data.tables import load

    TRIED["select_npz_damage"] += 1
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((int(rng.integers(1, 40)), int(rng.integers(1, 4))))
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, X=X, y=np.arange(len(X)) % 3)
    blob = bytearray(buf.getvalue())
    pos = min(int(where * len(blob)), len(blob) - 1)
    if cut:
        blob = blob[:pos]
    else:
        blob[pos] ^= flip
    with TemporaryDirectory() as tmp:
        file = Path(tmp) / "in.npz"
        file.write_bytes(bytes(blob))
        try:
            table = load(file)
        except UserError:
            return
        assert table.X.ndim == 2


def _forged_npz(path: Path, shape: tuple[int, ...], payload: bytes) -> Path:
    """An .npz whose X.npy header claims `shape` float64 but carries only `payload`."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X.npy", buf.getvalue() + payload)
    return path


def test_regression_npz_claiming_a_huge_array_is_refused_before_allocation(tmp_path: Path) -> None:
    """Found while fuzzing selection inputs: a 200-byte .npz claiming 10**11 floats made numpy
    try to allocate 745 GiB (MemoryError traceback from `prunelab select`)."""
    from prunelab.data.tables import load
    from tests.conftest import assert_user_error, run_cli

    bomb = _forged_npz(tmp_path / "bomb.npz", (10**5, 10**6), b"\0" * 64)
    with pytest.raises(UserError, match="claims shape"):
        load(bomb)
    assert_user_error(run_cli("select", "--input", str(bomb), "--keep", "0.5", "--out", str(tmp_path / "o.npz")),
                      "claims shape")
    assert not (tmp_path / "o.npz").exists()


def test_regression_runtime_empty_batch(tmp_path: Path) -> None:
    """Found by a scan of odd inputs: an empty batch raised "cannot reshape array of size 0"."""
    from prunelab.sparse.format import write_artifact
    from prunelab.sparse.runtime import load as load_runtime

    for spec in (mlp_spec((8,), input_shape=(1, 28, 28)), cnn_spec((2,), (4,), kernel_size=5)):
        write_artifact(tmp_path / "m.plsa", spec, {n: np.ones(s, np.float32) for n, s in param_names(spec)})
        rt = load_runtime(tmp_path / "m.plsa")
        assert rt.logits(np.zeros((0, 28, 28), np.uint8)).shape == (0, 10)
        assert rt.predict(np.zeros((0, 784), np.float32)).shape == (0,)

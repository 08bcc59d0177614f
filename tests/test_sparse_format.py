"""The artifact format: every encoding and index width round-trips; damaged,
truncated, foreign and wrong-version files fail with one clear UserError."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from prunelab.errors import UserError
from prunelab.models.presets import cnn_spec, mlp_spec
from prunelab.sparse import format as fmt
from prunelab.sparse.format import (
    ENCODINGS,
    choose_encoding,
    encode_artifact,
    encoded_sizes,
    index_dtype,
    read_artifact,
    write_artifact,
)


def sparse_weights(spec, density: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights for `spec` with about `density` of weight entries kept."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in fmt.param_names(spec):
        w = rng.standard_normal(shape).astype(np.float32)
        if name.endswith(".weight"):
            w[rng.random(shape) >= density] = 0.0
        out[name] = w
    return out


def small_mlp():
    return mlp_spec((30, 20), input_shape=(1, 6, 6), classes=5)


def parts(path: Path) -> dict[str, dict]:
    """The tensor table of an artifact, by tensor name (reads the JSON header)."""
    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(zlib.decompress(data[32:32 + json_len]))
    return {t["name"]: t for t in header["tensors"]}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("density", [0.0, 0.03, 0.4, 1.0])
def test_fp32_round_trip_is_exact_for_every_encoding(tmp_path: Path, encoding: str, density: float) -> None:
    spec = small_mlp()
    weights = sparse_weights(spec, density)
    path = tmp_path / "m.plsa"
    forced = {n: encoding for n, _ in fmt.param_names(spec)}
    nbytes, infos = write_artifact(path, spec, weights, "fp32", forced)
    assert nbytes == path.stat().st_size
    art = read_artifact(path)
    assert art.spec == spec and art.precision == "fp32"
    for name, w in weights.items():
        t = art.tensors[name]
        assert t.encoding == encoding
        np.testing.assert_array_equal(t.to_dense(), w)
        assert t.nnz == (w.size if encoding == "dense" else np.count_nonzero(w))
    # the sizes the writer reports are the payload bytes the reader finds
    assert {i.name: i.nbytes for i in infos} == {n: t.nbytes for n, t in art.tensors.items()}


def test_cnn_round_trip_and_smallest_encoding_chosen(tmp_path: Path) -> None:
    spec = cnn_spec((4, 6), (16,), kernel_size=3, padding=1, input_shape=(1, 8, 8), classes=3)
    weights = sparse_weights(spec, 0.05, seed=1)
    weights["conv1.weight"][:] = np.random.default_rng(2).standard_normal((4, 1, 3, 3))  # fully dense
    path = tmp_path / "c.plsa"
    _, infos = write_artifact(path, spec, weights)
    art = read_artifact(path)
    for name, w in weights.items():
        np.testing.assert_array_equal(art.tensors[name].to_dense(), w)
        sizes = encoded_sizes(w)
        assert art.tensors[name].encoding == min(ENCODINGS, key=lambda e: (sizes[e], ENCODINGS.index(e)))
    assert art.tensors["conv1.weight"].encoding == "dense"
    assert art.tensors["fc1.weight"].encoding == "rice"  # 5% density: Rice-coded gaps are smallest


def test_choose_encoding_follows_density() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((200, 300)).astype(np.float32)
    assert choose_encoding(w) == "dense"
    half = np.where(rng.random(w.shape) < 0.5, w, 0)
    assert choose_encoding(half) == "bitmask"
    sparse = np.where(rng.random(w.shape) < 0.03, w, 0)
    assert choose_encoding(sparse) == "rice"
    # sizes are exact: the chosen encoding's size matches the bytes written
    for q in (w, half, sparse):
        fields, arrays = fmt._encode(q, choose_encoding(q))
        assert sum(a.nbytes for a in arrays.values()) == encoded_sizes(q)[choose_encoding(q)]


@pytest.mark.parametrize("cols,nnz,want_idx,want_ptr", [
    (200, 100, "u1", "u1"),        # columns < 256, few non-zeros
    (1000, 300, "u2", "u2"),       # columns < 65536, non-zeros >= 256
    (70000, 50, "u4", "u1"),       # columns >= 65536 need 32-bit indices
    (70000, 66000, "u4", "u4"),    # >= 65536 non-zeros need 32-bit row pointers
])
def test_csr_uses_the_narrowest_index_width(tmp_path: Path, cols: int, nnz: int, want_idx: str,
                                            want_ptr: str) -> None:
    spec = mlp_spec((2,), input_shape=(1, 1, cols), classes=2)
    rng = np.random.default_rng(cols)
    w = np.zeros((2, cols), np.float32)
    flat = rng.choice(w.size, nnz, replace=False)
    w.flat[flat] = rng.standard_normal(nnz).astype(np.float32) + 3.0
    w.flat[-1] = 1.5  # the last column is used, so the widest index appears
    weights = {"fc1.weight": w, "fc1.bias": np.ones(2, np.float32),
               "fc2.weight": np.eye(2, dtype=np.float32), "fc2.bias": np.zeros(2, np.float32)}
    path = tmp_path / "w.plsa"
    write_artifact(path, spec, weights, "fp32", {"fc1.weight": "csr"})
    table = parts(path)["fc1.weight"]
    assert table["parts"]["indices"][2] == want_idx
    assert table["parts"]["indptr"][2] == want_ptr
    np.testing.assert_array_equal(read_artifact(path).tensors["fc1.weight"].to_dense(), w)


def test_index_dtype_bounds() -> None:
    assert [index_dtype(v) for v in (0, 255, 256, 65535, 65536, 2**32 - 1)] == \
        ["u1", "u1", "u2", "u2", "u4", "u4"]
    with pytest.raises(UserError):
        index_dtype(2**32)


def test_rice_handles_long_gaps_and_edges(tmp_path: Path) -> None:
    for positions in ([0], [5], [0, 1, 2, 3], [3, 40000, 40001, 99999], []):
        q = np.zeros(100000, np.float32)
        q[positions] = 1.0
        fields, arrays = fmt._encode(q.reshape(100, 1000), "rice")
        assert fields["nnz"] == len(positions)
    spec = mlp_spec((1000,), input_shape=(1, 1, 100), classes=2)
    w = sparse_weights(spec, 0.0)
    w["fc1.weight"][0, 0] = 2.0
    w["fc1.weight"][-1, -1] = -2.0  # gap of ~100k entries: a large Rice parameter
    data, _ = encode_artifact(spec, w, "fp32", {"fc1.weight": "rice", "fc2.weight": "rice"})
    p = tmp_path / "r.plsa"
    p.write_bytes(data)
    art = read_artifact(p)
    np.testing.assert_array_equal(art.tensors["fc1.weight"].to_dense(), w["fc1.weight"])
    assert art.tensors["fc2.weight"].nnz == 0


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_round_trip(tmp_path: Path, precision: str) -> None:
    spec = small_mlp()
    weights = sparse_weights(spec, 0.2, seed=3)
    path = tmp_path / f"{precision}.plsa"
    write_artifact(path, spec, weights, precision)
    art = read_artifact(path)
    assert art.precision == precision
    for name, w in weights.items():
        got = art.tensors[name].to_dense()
        assert got.dtype == np.float32
        # pruned entries stay exactly zero
        assert np.all(got[w == 0] == 0)
        if precision == "int8" and name.endswith(".weight"):
            step = np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127  # one quantisation step per row
            err = np.abs(got - w).reshape(w.shape[0], -1).max(axis=1)
            assert np.all(err <= step * 0.5 * 1.01 + 1e-7)
            assert art.tensors[name].values.dtype == np.int8
        else:
            np.testing.assert_allclose(got, w, rtol=1e-3, atol=1e-4)
    # smaller than fp32 of the same weights
    assert path.stat().st_size < write_artifact(tmp_path / "f.plsa", spec, weights, "fp32")[0]


# --- bad files ----------------------------------------------------------------


@pytest.fixture()
def artifact(tmp_path: Path) -> Path:
    spec = small_mlp()
    path = tmp_path / "good.plsa"
    write_artifact(path, spec, sparse_weights(spec, 0.1))
    return path


def expect_error(path: Path, fragment: str) -> str:
    with pytest.raises(UserError) as info:
        read_artifact(path)
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg
    return msg


def test_flipped_byte_is_caught_by_the_checksum(artifact: Path) -> None:
    data = bytearray(artifact.read_bytes())
    data[len(data) - 10] ^= 0x40
    artifact.write_bytes(bytes(data))
    expect_error(artifact, "checksum")


@pytest.mark.parametrize("keep", [0, 5, 31, 32, 100, -1])
def test_truncated_file(artifact: Path, keep: int) -> None:
    data = artifact.read_bytes()
    artifact.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    msg = expect_error(artifact, str(artifact))
    assert ("truncated" in msg) or ("not a prunelab artifact" in msg and keep == 0)


def test_trailing_bytes(artifact: Path) -> None:
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    expect_error(artifact, "extra bytes")


def test_wrong_version(artifact: Path) -> None:
    data = bytearray(artifact.read_bytes())
    struct.pack_into("<H", data, 8, 99)
    artifact.write_bytes(bytes(data))
    expect_error(artifact, "version 99")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"hello world\n", b"PK\x03\x04zip"])
def test_foreign_file(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.plsa"
    p.write_bytes(content)
    expect_error(p, "not a prunelab artifact")


def test_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="folder"):
        read_artifact(tmp_path)
    with pytest.raises(UserError, match="cannot read"):
        read_artifact(tmp_path / "missing.plsa")


def rewrite(path: Path, edit) -> None:
    """Change the JSON header with `edit(header)` and re-seal the file with a valid checksum:
    a crafted file whose damage only the structural checks can catch."""
    data = path.read_bytes()
    _, version, flags, json_len, payload_len, _ = fmt._FIXED.unpack(data[:32])
    header = json.loads(zlib.decompress(data[32:32 + json_len]))
    edit(header)
    text = zlib.compress(json.dumps(header).encode())
    payload = data[32 + json_len:]
    crc = zlib.crc32(payload, zlib.crc32(text))
    path.write_bytes(fmt._FIXED.pack(fmt.MAGIC, version, flags, len(text), len(payload), crc) + text + payload)


def _fc1(header: dict) -> dict:
    return next(t for t in header["tensors"] if t["name"] == "fc1.weight")


@pytest.mark.parametrize("edit,fragment", [
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(1, 10**12), "expected"),
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(0, 10**9), "past the end"),
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(2, "O"), "unsupported type"),
    (lambda h: _fc1(h).__setitem__("nnz", 10**15), "non-zero count"),
    (lambda h: _fc1(h).__setitem__("shape", [3, 3]), "shape"),
    (lambda h: _fc1(h).__setitem__("encoding", "zip"), "unknown encoding"),
    (lambda h: h["tensors"].pop(), "do not match"),
    (lambda h: h.__setitem__("format", "other"), "not a prunelab-sparse header"),
    (lambda h: (h["spec"]["layers"][1].__setitem__("out_features", 10**8),
                h["spec"]["layers"][3].__setitem__("in_features", 10**8)), "parameters"),
    (lambda h: h["spec"]["layers"][1].__setitem__("out_features", 7), "bad model spec"),
    (lambda h: h.pop("precision"), "malformed header"),
])
def test_crafted_headers_fail_before_allocating(artifact: Path, edit, fragment: str) -> None:
    rewrite(artifact, edit)
    expect_error(artifact, fragment)


def test_header_zip_bomb_is_refused(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the stored (deflated) header fits the limit, its inflated form does not
    monkeypatch.setattr(fmt, "MAX_JSON", struct.unpack_from("<I", artifact.read_bytes(), 12)[0])
    expect_error(artifact, "unreadable JSON header")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_random_header_damage_only_ever_raises_user_error(tmp_path: Path, encoding: str) -> None:
    """Crafted files (valid checksum, nonsense in one header field) never crash the reader."""
    import copy
    import random

    spec = small_mlp()
    path = tmp_path / "f.plsa"
    write_artifact(path, spec, sparse_weights(spec, 0.2), "int8", {n: encoding for n, _ in fmt.param_names(spec)})
    original = json.loads(zlib.decompress(path.read_bytes()[32:32 + struct.unpack_from("<I", path.read_bytes(),
                                                                                       12)[0]]))
    junk = [None, -1, 0, 2**40, "x", [], [1, 2], {}, 3.5, True, "u4", "f4"]
    rnd = random.Random(encoding)
    for _ in range(150):
        damaged = copy.deepcopy(original)
        entry = rnd.choice(damaged["tensors"])
        key = rnd.choice(list(entry))
        if key == "parts" and rnd.random() < 0.8:
            part = rnd.choice(list(entry["parts"]))
            entry["parts"][part][rnd.randrange(3)] = rnd.choice(junk)
        else:
            entry[key] = rnd.choice(junk)
        rewrite(path, lambda h, d=damaged: (h.clear(), h.update(d)))
        try:
            read_artifact(path)
        except UserError:
            pass


def _decode_one(q: np.ndarray, encoding: str, precision: str = "fp32") -> np.ndarray:
    """Encode one tensor as a one-layer model's weight, read it back, return it dense."""
    rows, cols = q.shape
    spec = mlp_spec((rows,), input_shape=(1, 1, cols), classes=2)
    weights = {"fc1.weight": q, "fc1.bias": np.zeros(rows, np.float32),
               "fc2.weight": np.ones((2, rows), np.float32), "fc2.bias": np.zeros(2, np.float32)}
    data, _ = encode_artifact(spec, weights, precision, {"fc1.weight": encoding})
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "one.plsa"
        p.write_bytes(data)
        return read_artifact(p).tensors["fc1.weight"].to_dense()


def test_round_trip_property() -> None:
    """Any shape, any sparsity pattern (runs, isolated entries, empty rows), every encoding."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(rows=st.integers(1, 40), cols=st.integers(1, 300), density=st.floats(0, 1),
           seed=st.integers(0, 2**16), encoding=st.sampled_from(ENCODINGS))
    def check(rows: int, cols: int, density: float, seed: int, encoding: str) -> None:
        rng = np.random.default_rng(seed)
        q = rng.standard_normal((rows, cols)).astype(np.float32)
        q[rng.random((rows, cols)) >= density] = 0.0
        if rows > 2:
            q[rng.integers(rows)] = 0.0  # an empty row
        np.testing.assert_array_equal(_decode_one(q, encoding), q)

    check()

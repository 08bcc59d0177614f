"""The artifact format: every encoding and index width round-trips; the
container is a standard safetensors file; damaged, truncated, foreign,
version-1 and wrong-version files fail with one clear UserError."""

from __future__ import annotations

import json
import struct
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
    join_artifact,
    read_artifact,
    split_artifact,
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
    """The tensor table of an artifact, by tensor name (reads the prunelab header)."""
    return {t["name"]: t for t in split_artifact(path.read_bytes())[1]["tensors"]}


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


# --- the container ---------------------------------------------------------------


def test_container_is_plain_safetensors(tmp_path: Path) -> None:
    """Any safetensors reader opens the file: one U8 tensor holding every encoded part
    and prunelab's metadata (format, version, precision, checksum, header)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    spec = small_mlp()
    path = tmp_path / "m.plsa"
    _, infos = write_artifact(path, spec, sparse_weights(spec, 0.1), "int8", meta={"model_id": "abc123"})
    blobs = load_file(str(path))
    assert set(blobs) == {"payload"} and blobs["payload"].dtype == np.uint8
    assert blobs["payload"].nbytes == sum(i.nbytes for i in infos)
    with safe_open(str(path), "np") as f:
        md = f.metadata()
    assert md["format"] == "prunelab-sparse" and md["version"] == "2" and md["precision"] == "int8"
    assert md["checksum"].startswith("crc32:") and split_artifact(path.read_bytes())[1]["meta"]["model_id"] == "abc123"
    # the header is bounded: the length field is checked before anything is read
    assert struct.unpack_from("<Q", path.read_bytes())[0] < 4096


def test_values_are_stored_deflated_only_when_smaller(tmp_path: Path) -> None:
    spec = small_mlp()
    rng = np.random.default_rng(0)
    weights = sparse_weights(spec, 1.0)
    weights["fc1.weight"] = np.round(weights["fc1.weight"] * 4) / 4  # few distinct values: deflates well
    path = tmp_path / "d.plsa"
    write_artifact(path, spec, weights, "fp32", {n: "dense" for n, _ in fmt.param_names(spec)})
    table = parts(path)
    assert len(table["fc1.weight"]["parts"]["values"]) == 4  # 4th field: stored (deflated) bytes
    assert table["fc1.weight"]["parts"]["values"][3] < 30 * 36 * 4
    art = read_artifact(path)
    np.testing.assert_array_equal(art.tensors["fc1.weight"].to_dense(), weights["fc1.weight"])
    noise = {n: rng.standard_normal(s).astype(np.float32) * 1e3 for n, s in fmt.param_names(spec)}
    write_artifact(path, spec, noise, "fp16")
    for name, t in parts(path).items():  # random mantissas: deflating would not pay, stored raw
        assert len(t["parts"]["values"]) in (3, 4), name
    for name, w in noise.items():
        np.testing.assert_allclose(read_artifact(path).tensors[name].to_dense(), w, rtol=1e-3)


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
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize("where", ["data", "metadata", "header_length"])
def test_flipped_byte_is_caught(artifact: Path, where: str) -> None:
    data = bytearray(artifact.read_bytes())
    n = struct.unpack_from("<Q", data)[0]
    pos = {"data": len(data) - 10, "metadata": data.index(b'"precision":"') + 14, "header_length": 1}[where]
    data[pos] ^= 0x01
    artifact.write_bytes(bytes(data))
    msg = expect_error(artifact, str(artifact))
    assert {"data": "checksum", "metadata": "checksum", "header_length": "export it again"}[where] in msg
    assert n > 0


@pytest.mark.parametrize("keep", [0, 5, 8, 9, 100, -1])
def test_truncated_file(artifact: Path, keep: int) -> None:
    data = artifact.read_bytes()
    artifact.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    msg = expect_error(artifact, str(artifact))
    assert ("truncated" in msg) or ("not a prunelab artifact" in msg and keep < 9)


def test_trailing_bytes(artifact: Path) -> None:
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    expect_error(artifact, "extra bytes")


def test_wrong_version(artifact: Path) -> None:
    md, header, blobs = split_artifact(artifact.read_bytes())
    artifact.write_bytes(join_artifact(header, blobs, {**md, "version": "99"}))
    expect_error(artifact, "version 99")


def test_version_1_file_fails_with_one_line(tmp_path: Path) -> None:
    """A file in the hand-written container of version 1 (32-byte fixed header with the
    signature below, then deflated JSON) is refused, saying to export again."""
    p = tmp_path / "old.plsa"
    p.write_bytes(b"\x89PLSPAR\n" + struct.pack("<HHIQI4x", 1, 1, 10, 20, 0) + b"\0" * 30)
    msg = expect_error(p, "version-1 prunelab artifact")
    assert "export the model again" in msg


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"hello world\n", b"PK\x03\x04zip",
                                     struct.pack("<Q", 2**40) + b"{" + b" " * 20])
def test_foreign_file(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.plsa"
    p.write_bytes(content)
    expect_error(p, "not a prunelab artifact")


def test_other_safetensors_file(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    p = tmp_path / "weights.safetensors"
    save_file({"w": np.ones((3, 3), np.float32)}, str(p))
    expect_error(p, "safetensors file but not a prunelab artifact")


def test_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="folder"):
        read_artifact(tmp_path)
    with pytest.raises(UserError, match="cannot read"):
        read_artifact(tmp_path / "missing.plsa")


def rewrite(path: Path, edit) -> None:
    """Change the prunelab header with `edit(header)` and re-seal the file with a valid
    checksum: a crafted file whose damage only the structural checks can catch."""
    md, header, blobs = split_artifact(path.read_bytes())
    edit(header)
    path.write_bytes(join_artifact(header, blobs, md))


def _fc1(header: dict) -> dict:
    return next(t for t in header["tensors"] if t["name"] == "fc1.weight")


@pytest.mark.parametrize("edit,fragment", [
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(1, 10**12), "expected"),
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(0, 10**9), "past the end"),
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(2, "O"), "unsupported type"),
    (lambda h: _fc1(h)["parts"]["quot"].append(10), "bad quot location"),
    (lambda h: _fc1(h)["parts"]["values"].__setitem__(0, 0), "overlaps another part"),  # in bounds, wrong bytes
    (lambda h: _fc1(h).__setitem__("nnz", 10**15), "non-zero count"),
    (lambda h: _fc1(h).__setitem__("shape", [3, 3]), "shape"),
    (lambda h: _fc1(h).__setitem__("encoding", "zip"), "unknown encoding"),
    (lambda h: h["tensors"].pop(), "do not match"),
    (lambda h: h.__setitem__("format", "other"), "not a prunelab-sparse header"),
    (lambda h: h.__setitem__("version", 1), "not a prunelab-sparse header"),
    (lambda h: (h["spec"]["layers"][1].__setitem__("out_features", 10**8),
                h["spec"]["layers"][3].__setitem__("in_features", 10**8)), "parameters"),
    (lambda h: h["spec"]["layers"][1].__setitem__("out_features", 7), "bad model spec"),
    (lambda h: h.pop("precision"), "malformed header"),
])
def test_crafted_headers_fail_before_allocating(artifact: Path, edit, fragment: str) -> None:
    rewrite(artifact, edit)
    expect_error(artifact, fragment)


def test_crafted_safetensors_tables(artifact: Path) -> None:
    """Tensor tables that break safetensors' rules (gaps, overlaps, wrong dtype or shape)."""
    data = artifact.read_bytes()
    n = struct.unpack_from("<Q", data)[0]
    table = json.loads(data[8:8 + n])
    body = data[8 + n:]

    def write(t: dict) -> None:
        text = json.dumps(t).encode()
        artifact.write_bytes(struct.pack("<Q", len(text)) + text + body)

    first = min((k for k in table if k != "__metadata__"), key=lambda k: table[k]["data_offsets"][0])
    for change, fragment in [({"dtype": "F32"}, "bad safetensors entry"), ({"shape": [1]}, "bad safetensors entry"),
                             ({"data_offsets": [1, 1 + table[first]["shape"][0]]}, "gap"),
                             ({"data_offsets": [-1, 5]}, "bad safetensors entry")]:
        write({**table, first: {**table[first], **change}})
        expect_error(artifact, fragment)
    write({**table, "extra": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}})
    expect_error(artifact, "checksum")  # an extra empty tensor changes what the checksum covers
    text = json.dumps(table).encode() + b"\t"  # padding must be spaces
    artifact.write_bytes(struct.pack("<Q", len(text)) + text + body)
    expect_error(artifact, "padding")


def test_deflated_part_cannot_inflate_beyond_its_size(artifact: Path) -> None:
    import zlib

    md, header, blobs = split_artifact(artifact.read_bytes())
    entry = _fc1(header)
    off, count, code = entry["parts"]["values"][:3]
    bomb = zlib.compress(b"\0" * (count * 4 * 1000))
    blob = blobs["payload"]
    blobs["payload"] = blob[:off] + bomb + blob[off + count * 4:]
    entry["parts"]["values"] = [off, count, code, len(bomb)]
    artifact.write_bytes(join_artifact(header, blobs, md))
    expect_error(artifact, "does not inflate")


def test_header_zip_bomb_is_refused(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the stored (deflated) header fits the limit, its inflated form does not
    import base64

    md = split_artifact(artifact.read_bytes())[0]
    monkeypatch.setattr(fmt, "MAX_INFLATED", len(base64.b64decode(md["prunelab"])))
    expect_error(artifact, "unreadable prunelab header")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_random_header_damage_is_refused_or_decodes_consistently(tmp_path: Path, encoding: str) -> None:
    """Crafted files (valid checksum, nonsense in one header field): each is either
    refused with one UserError naming the file and the fix, or read into tensors of
    exactly the spec's shapes that the runtime runs to the same logits as torch does
    with those tensors (the original model's logits when the edit changed nothing);
    most are refused, and every refusal is an error we wrote."""
    import copy
    import random
    import warnings

    import torch

    from prunelab.models.model import Model
    from prunelab.sparse.runtime import load

    spec = small_mlp()
    path = tmp_path / "f.plsa"
    write_artifact(path, spec, sparse_weights(spec, 0.2), "int8", {n: encoding for n, _ in fmt.param_names(spec)})
    md, original, blobs = split_artifact(path.read_bytes())
    good = read_artifact(path).weights()
    x = np.random.default_rng(0).random((16, 1, 6, 6)).astype(np.float32)
    good_logits = load(path).logits(x)
    shapes = dict(fmt.param_names(spec))
    junk = [None, -1, 0, 2**40, "x", [], [1, 2], {}, 3.5, True, "u4", "f4"]
    rnd = random.Random(encoding)
    refused = accepted = 0
    moved = []  # accepted edits that changed the decoded weights
    for _ in range(150):
        damaged = copy.deepcopy(original)
        entry = rnd.choice(damaged["tensors"])
        key = rnd.choice(list(entry))
        if key == "parts" and rnd.random() < 0.8:
            part, i, value = rnd.choice(list(entry["parts"])), rnd.randrange(3), rnd.choice(junk)
            edit = f"{entry['name']} parts.{part}[{i}]={value!r}"
            entry["parts"][part][i] = value
        else:
            value = rnd.choice(junk)
            edit = f"{entry['name']} {key}={value!r}"
            entry[key] = value
        path.write_bytes(join_artifact(damaged, blobs, md))
        try:
            art = read_artifact(path)
        except UserError as exc:
            msg = str(exc)
            assert str(path) in msg and "\n" not in msg, msg
            assert "export" in msg, msg  # says how to fix it
            refused += 1
            continue
        accepted += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # junk bytes read as a scale may be inf/nan
            weights = art.weights()
            for name, w in weights.items():
                assert w.shape == shapes[name] and w.dtype == np.float32, (edit, name)
            # its predictions: the runtime agrees with torch on the decoded weights...
            logits = load(path).logits(x)
            with torch.no_grad():
                want = Model(spec=art.spec, weights=weights).to_torch()(torch.from_numpy(x)).numpy()
        if all(np.isfinite(w).all() for w in weights.values()):  # nan * 0: sparse kernels skip what dense multiplies
            np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()), err_msg=edit)
        if all(np.array_equal(weights[n], good[n]) for n in good):
            np.testing.assert_array_equal(logits, good_logits, err_msg=edit)  # ...and are the model's own
        else:
            moved.append(edit)
    assert refused > 100, (refused, accepted)
    # A part's offset moved onto other bytes of the same tensor's blob used to pass every bounds
    # check; the reader now checks that the parts tile the blob exactly, so no accepted edit may
    # change the weights.
    assert moved == [], moved


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

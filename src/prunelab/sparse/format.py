"""The `.plsa` artifact: one safetensors file holding a model spec and its
tensors, each in whichever encoding is smallest for it. Full description:
docs/artifact-format.md. No pickles, no code on load: safetensors' bounded
JSON header, then raw bytes.

    8 bytes   header length N (uint64 little-endian)        } the safetensors
    N bytes   JSON: {"__metadata__": {...}, "payload":      } container
              {"dtype": "U8", "shape": [k], "data_offsets": [0, k]}}
    k bytes   the payload: every tensor's encoded parts, back to back

`__metadata__` (strings, as safetensors requires): format
"prunelab-sparse", version "2", precision, checksum "crc32:XXXXXXXX" (of
the other metadata, then the tensor's name and bytes), and `prunelab`: the
base64 of the deflated JSON header (spec, per-tensor encoding and parts
table, meta) - base64 of deflate keeps the header about the size of the old
hand-written one's.

Encodings (per tensor, viewed as (rows, cols) = (out channels, rest)):
    dense    every value
    csr      row pointers + column indices, each in the narrowest unsigned
             type that fits (uint8/16/32), + the non-zero values
    bitmask  one bit per entry (1 = stored) + the non-zero values
    rice     Golomb-Rice coded gaps between flat positions of non-zeros
             (unary quotients + k-bit remainders) + the non-zero values
A `values` part is stored byte-shuffled and deflated when that is smaller
(the exponents of a trained layer's weights repeat).

Reading validates the container, the version, the lengths against the file
size, the checksum and every array's bounds before decoding anything, so a
damaged, truncated or foreign file fails with one `UserError` and no large
allocation. A file in the version-1 container (before safetensors) is
refused with one line saying to export it again.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunelab.atomic import write_bytes_atomic
from prunelab.errors import UserError
from prunelab.models.spec import ModelSpec
from prunelab.sparse.quant import VALUE_DTYPE, as_rows, check_precision, dequantize, quantize, scale_dtype

LEGACY_MAGIC = b"\x89PLSPAR\n"  # the version-1 container (before safetensors)
FORMAT = "prunelab-sparse"
VERSION = 2
PAYLOAD = "payload"  # the one safetensors tensor: every encoded part, back to back
SUFFIX = ".plsa"
MAX_JSON = 16 << 20  # a spec + tensor table is a few KB; anything bigger is not ours
MAX_INFLATED = 16 << 20  # the same bound for the deflated prunelab header once inflated
MAX_PARAMS = 1 << 28  # 1 GiB of float32: refuse specs that would allocate more
ENCODINGS = ("dense", "csr", "bitmask", "rice")
_PART_DTYPES = {"u1", "u2", "u4", "i1", "f2", "f4"}


def list_encodings() -> list[str]:
    return list(ENCODINGS)


# --- decoded tensors ------------------------------------------------------


@dataclass
class Tensor:
    """One tensor as stored: `positions` are the sorted flat indices of the
    stored entries (None for dense), `values` their stored values (f4/f2/i1),
    `scale` the per-row int8 scale (float32) or None."""

    name: str
    shape: tuple[int, ...]
    encoding: str
    values: np.ndarray
    positions: np.ndarray | None = None
    scale: np.ndarray | None = None
    nbytes: int = 0  # bytes this tensor takes in the payload

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nnz(self) -> int:
        return self.size if self.positions is None else int(self.positions.size)

    def rows(self) -> np.ndarray:
        """Output row of each stored value."""
        cols = as_rows(self.shape)[1]
        if self.positions is None:
            return np.repeat(np.arange(as_rows(self.shape)[0]), cols)
        return self.positions // max(cols, 1)

    def to_dense(self) -> np.ndarray:
        """float32 array of `shape` (dequantised)."""
        if self.positions is None:
            return dequantize(self.values.reshape(self.shape), self.scale)
        out = np.zeros(self.size, np.float32)
        out[self.positions] = dequantize(self.values, self.scale, self.rows())
        return out.reshape(self.shape)

    def to_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr int32, indices int32, data float32) of the (rows, cols) view."""
        rows, cols = as_rows(self.shape)
        if self.positions is None:
            dense = self.to_dense().reshape(rows, cols)
            pos = np.flatnonzero(dense)
            data = dense.ravel()[pos]
        else:
            pos = self.positions
            data = dequantize(self.values, self.scale, self.rows())
        counts = np.bincount(pos // max(cols, 1), minlength=rows)
        indptr = np.zeros(rows + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        if pos.size >= 2**31:
            raise UserError("tensor too large for the CSR kernel")
        return (indptr.astype(np.int32), (pos % max(cols, 1)).astype(np.int32),
                np.ascontiguousarray(data, np.float32))

    def __repr__(self) -> str:
        return (f"Tensor({self.name!r}, shape={self.shape}, encoding={self.encoding!r}, "
                f"nnz={self.nnz}, dtype={self.values.dtype}, nbytes={self.nbytes})")


@dataclass
class Artifact:
    """A read artifact: spec, storage precision, tensors by name, metadata."""

    spec: ModelSpec
    precision: str
    tensors: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    bytes: int = 0

    def weights(self) -> dict[str, np.ndarray]:
        """Dense float32 weights, as the store holds them."""
        return {name: t.to_dense() for name, t in self.tensors.items()}

    def __repr__(self) -> str:
        encs = ", ".join(f"{n}:{t.encoding}" for n, t in self.tensors.items())
        return f"Artifact({self.path!r}, {self.bytes} bytes, {self.precision}, arch={self.spec.arch!r}, [{encs}])"


# --- sizes and choice of encoding -------------------------------------------


def index_dtype(max_value: int) -> str:
    """Narrowest unsigned dtype code holding 0..max_value."""
    if max_value < 1 << 8:
        return "u1"
    if max_value < 1 << 16:
        return "u2"
    if max_value < 1 << 32:
        return "u4"
    raise UserError("tensor too large for this format (index >= 2**32)")


def _itemsize(code: str) -> int:
    return np.dtype(code).itemsize


def _gaps(positions: np.ndarray) -> np.ndarray:
    """Zero-based gaps: first position, then distance - 1 between neighbours."""
    if positions.size == 0:
        return positions.astype(np.int64)
    return np.diff(positions.astype(np.int64), prepend=-1) - 1


def rice_parameter(gaps: np.ndarray) -> tuple[int, int]:
    """(k, bits) minimising the Rice-coded size of `gaps`: each gap g costs
    (g >> k) + 1 unary bits plus k remainder bits."""
    if gaps.size == 0:
        return 0, 0
    best = (0, 1 << 62)
    for k in range(0, 32):
        bits = int(gaps.size) * (k + 1) + int((gaps >> k).sum())
        if bits < best[1]:
            best = (k, bits)
        if (int(gaps.max()) >> k) == 0:
            break  # larger k only adds remainder bits
    return best


def encoded_sizes(q: np.ndarray) -> dict[str, int]:
    """Payload bytes of each encoding for stored values `q` (any shape)."""
    rows, cols = as_rows(q.shape)
    n = rows * cols
    item = q.dtype.itemsize
    flat = q.reshape(-1)
    positions = np.flatnonzero(flat)
    nnz = int(positions.size)
    k, bits = rice_parameter(_gaps(positions))
    quot_bits = bits - nnz * k
    return {
        "dense": n * item,
        "csr": (rows + 1) * _itemsize(index_dtype(nnz)) + nnz * _itemsize(index_dtype(max(cols - 1, 0)))
        + nnz * item,
        "bitmask": (n + 7) // 8 + nnz * item,
        "rice": (quot_bits + 7) // 8 + (nnz * k + 7) // 8 + nnz * item,
    }


def choose_encoding(q: np.ndarray) -> str:
    """The smallest encoding for `q`; ties go to the simpler one (ENCODINGS order)."""
    sizes = encoded_sizes(q)
    return min(ENCODINGS, key=lambda e: (sizes[e], ENCODINGS.index(e)))


# --- encoders: stored values -> (json fields, list of named arrays) ----------


def _encode(q: np.ndarray, encoding: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    rows, cols = as_rows(q.shape)
    flat = q.reshape(-1)
    if encoding == "dense":
        return {}, {"values": flat}
    positions = np.flatnonzero(flat)
    values = flat[positions]
    nnz = int(positions.size)
    if encoding == "csr":
        r = positions // max(cols, 1)
        indptr = np.zeros(rows + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=rows), out=indptr[1:])
        return {"nnz": nnz}, {
            "indptr": indptr.astype(index_dtype(nnz)),
            "indices": (positions % max(cols, 1)).astype(index_dtype(max(cols - 1, 0))),
            "values": values,
        }
    if encoding == "bitmask":
        mask = np.zeros(flat.size, np.uint8)
        mask[positions] = 1
        return {"nnz": nnz}, {"mask": np.packbits(mask, bitorder="little"), "values": values}
    if encoding == "rice":
        gaps = _gaps(positions)
        k, _ = rice_parameter(gaps)
        quot = gaps >> k
        # unary: quot[i] one-bits then a zero-bit; zeros sit at cumsum(quot + 1) - 1
        total = int(quot.sum()) + nnz
        ubits = np.ones(total, np.uint8)
        ubits[np.cumsum(quot + 1) - 1] = 0
        rem = gaps & ((1 << k) - 1)
        rbits = ((rem[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.uint8).reshape(-1)
        return {"nnz": nnz, "k": k, "quot_bits": total}, {
            "quot": np.packbits(ubits, bitorder="little"),
            "rem": np.packbits(rbits, bitorder="little"),
            "values": values,
        }
    raise UserError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")


# --- writer ---------------------------------------------------------------


@dataclass
class TensorInfo:
    name: str
    encoding: str
    nnz: int
    size: int
    nbytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "encoding": self.encoding, "nnz": self.nnz, "size": self.size,
                "bytes": self.nbytes}


def param_names(spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(tensor name, shape) of every parameter the spec needs, in order."""
    out: list[tuple[str, tuple[int, ...]]] = []
    for layer in spec.weight_layers():
        shape = layer.weight_shape()
        out.append((f"{layer.name}.weight", shape))
        if layer.args.get("bias", True):
            out.append((f"{layer.name}.bias", (shape[0],)))
    return out


def _shuffle_deflate(data: bytes, itemsize: int) -> bytes:
    """Byte-shuffle (all first bytes, then all second bytes, ...) and deflate."""
    if itemsize > 1:
        data = np.frombuffer(data, np.uint8).reshape(-1, itemsize).T.tobytes()
    return zlib.compress(data, 9)


def _inflate_unshuffle(stored: bytes, size: int, itemsize: int) -> bytes:
    """Inverse of _shuffle_deflate; at most `size` bytes come out (no zip bomb)."""
    inflater = zlib.decompressobj()
    data = inflater.decompress(stored, size)
    if len(data) != size or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("a deflated part does not inflate to its size")
    if itemsize > 1:
        data = np.frombuffer(data, np.uint8).reshape(itemsize, -1).T.tobytes()
    return data


def encode_artifact(
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    precision: str = "fp32",
    encodings: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[bytes, list[TensorInfo]]:
    """The artifact bytes for `weights` (float arrays keyed 'fc1.weight', ...).

    Weights are stored in `precision`; biases in fp32, or fp16 when the
    precision is fp16 or int8. `encodings` forces an encoding per tensor
    name (default: the smallest for each).
    """
    from safetensors.numpy import save

    check_precision(precision)
    encodings = encodings or {}
    unknown = set(encodings) - {n for n, _ in param_names(spec)}
    if unknown:
        raise UserError(f"encodings given for unknown tensors {sorted(unknown)}")
    table: list[dict[str, Any]] = []
    infos: list[TensorInfo] = []
    chunks: list[bytes] = []
    offset = 0
    for name, shape in param_names(spec):
        if name not in weights:
            raise UserError(f"the model has no tensor {name!r} that its spec needs")
        w = np.asarray(weights[name])
        if tuple(w.shape) != shape:
            raise UserError(f"tensor {name!r} has shape {tuple(w.shape)}, the spec says {shape}")
        tprec = precision if name.endswith(".weight") else ("fp32" if precision == "fp32" else "fp16")
        q, scale = quantize(w, tprec)
        encoding = encodings.get(name) or choose_encoding(q)
        fields, arrays = _encode(q, encoding)
        if scale is not None:
            arrays["scale"] = scale
        parts: dict[str, list[Any]] = {}
        start = offset
        for part_name, arr in arrays.items():
            if part_name == "values":
                code = VALUE_DTYPE[tprec]
            elif part_name == "scale":
                code = scale_dtype(arr)
            else:
                code = arr.dtype.str[1:]
            data = np.ascontiguousarray(arr, dtype=np.dtype(code).newbyteorder("<")).tobytes()
            part: list[Any] = [offset, int(arr.size), code]
            if part_name == "values" and data:
                packed = _shuffle_deflate(data, np.dtype(code).itemsize)
                if len(packed) < len(data):
                    data = packed
                    part.append(len(data))  # a 4th field: stored bytes, deflated
            parts[part_name] = part
            chunks.append(data)
            offset += len(data)
        table.append({"name": name, "shape": list(shape), "encoding": encoding, "precision": tprec,
                      **fields, "parts": parts})
        infos.append(TensorInfo(name, encoding, int(fields.get("nnz", q.size)), int(q.size), offset - start))
    # one U8 tensor holds every part: a safetensors entry per model tensor would cost ~60 header
    # bytes each, a few percent of a small int8 artifact
    blobs = {PAYLOAD: b"".join(chunks)}
    header = {"format": FORMAT, "version": VERSION, "precision": precision, "spec": spec.to_dict(),
              "tensors": table, "meta": meta or {}}
    text = base64.b64encode(zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=True)
                                          .encode("utf-8"), 9)).decode("ascii")
    metadata = {"format": FORMAT, "version": str(VERSION), "precision": precision, "prunelab": text}
    metadata["checksum"] = checksum(metadata, blobs)
    data = save({n: np.frombuffer(b, np.uint8) for n, b in blobs.items()}, metadata=metadata)
    return data, infos


def checksum(metadata: dict[str, Any], blobs: dict[str, bytes]) -> str:
    """'crc32:XXXXXXXX' of the metadata other than the checksum (JSON, keys
    sorted, so it covers the `prunelab` header) followed by each tensor's
    name and blob, in name order."""
    rest = {k: v for k, v in metadata.items() if k != "checksum"}
    crc = zlib.crc32(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for name in sorted(blobs):
        crc = zlib.crc32(blobs[name], zlib.crc32(name.encode("utf-8"), crc))
    return f"crc32:{crc:08x}"


def split_artifact(data: bytes) -> tuple[dict[str, str], dict[str, Any], dict[str, bytes]]:
    """(safetensors metadata, decoded prunelab header, tensor blobs) of artifact
    bytes written by `encode_artifact` (no validation: for tools and tests)."""
    from safetensors.numpy import load

    (n,) = struct.unpack_from("<Q", data)
    metadata = json.loads(data[8:8 + n])["__metadata__"]
    header = json.loads(zlib.decompress(base64.b64decode(metadata["prunelab"])))
    return metadata, header, {k: v.tobytes() for k, v in load(data).items()}


def join_artifact(header: dict[str, Any], blobs: dict[str, bytes], metadata: dict[str, str] | None = None) -> bytes:
    """Artifact bytes from a prunelab header and tensor blobs, with a valid
    checksum (the inverse of `split_artifact`; tests use it to craft files
    whose damage only the structural checks can catch)."""
    from safetensors.numpy import save

    text = base64.b64encode(zlib.compress(json.dumps(header).encode("utf-8"))).decode("ascii")
    md = {"format": FORMAT, "version": str(VERSION), **(metadata or {})}
    md["prunelab"] = text
    md["checksum"] = checksum(md, blobs)
    return save({n: np.frombuffer(b, np.uint8) for n, b in blobs.items()}, metadata=md)


def write_artifact(path: str | Path, spec: ModelSpec, weights: dict[str, np.ndarray],
                   precision: str = "fp32", encodings: dict[str, str] | None = None,
                   meta: dict[str, Any] | None = None) -> tuple[int, list[TensorInfo]]:
    """Encode and write atomically; returns (file bytes, per-tensor info)."""
    data, infos = encode_artifact(spec, weights, precision, encodings, meta)
    write_bytes_atomic(path, data)
    return len(data), infos


# --- reader ---------------------------------------------------------------


def _bad(path: str, what: str) -> UserError:
    return UserError(f"{path} is damaged ({what}); export it again with `prunelab export MODEL --out FILE`")


def _foreign(path: Path) -> UserError:
    return UserError(f"{path} is not a prunelab artifact (not a safetensors file written by prunelab); "
                     "create one with `prunelab export MODEL --out FILE`")


def read_container(path: str | Path) -> tuple[dict[str, str], dict[str, bytes], int]:
    """(metadata, tensor blobs by name, file size) of a prunelab safetensors
    file, checked against the file size and the checksum; one UserError on
    any problem. The header is read only when its stated length fits both
    MAX_JSON and the file."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a folder; give the artifact file written by `prunelab export`")
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(9)
            if head.startswith(LEGACY_MAGIC[:len(head)]) and len(head) >= 8:
                raise UserError(f"{p} is a version-1 prunelab artifact (the container before safetensors); "
                                "this prunelab reads version 2: export the model again with "
                                "`prunelab export MODEL --out FILE`")
            if len(head) < 9 or head[8:9] != b"{":
                if len(head) < 9 and len(head) and LEGACY_MAGIC.startswith(head[:8]):
                    raise UserError(f"{p} is truncated ({size} bytes); export it again")
                raise _foreign(p)
            (json_len,) = struct.unpack("<Q", head[:8])
            if json_len > MAX_JSON:
                raise _foreign(p)
            if 8 + json_len > size:
                raise UserError(f"{p} is truncated: its header promises at least {8 + json_len} bytes but the "
                                f"file has {size}; export it again")
            f.seek(8)
            raw = f.read(json_len)
            body = f.read(size - 8 - json_len)  # bounded by the real file size
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(raw) != json_len or len(body) != size - 8 - json_len:
        raise UserError(f"{p} changed while being read; try again")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(str(p), "unreadable safetensors header") from None
    if not raw.rstrip(b" ").endswith(b"}"):  # safetensors pads with spaces (0x20) only
        raise _bad(str(p), "bad padding after the safetensors header")
    if not isinstance(header, dict):
        raise _bad(str(p), "unreadable safetensors header")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise UserError(f"{p} is a safetensors file but not a prunelab artifact (no format "
                        f"{FORMAT!r} in its metadata); create one with `prunelab export MODEL --out FILE`")
    if metadata.get("version") != str(VERSION):
        raise UserError(f"{p} has artifact format version {str(metadata.get('version'))[:20]}; this prunelab "
                        f"reads version {VERSION}: export the model again with this prunelab")
    if not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(str(p), "metadata values must be strings")
    spans = []
    for name, entry in header.items():
        try:
            start, end = entry["data_offsets"]
            ok = (entry["dtype"] == "U8" and isinstance(start, int) and isinstance(end, int)
                  and not isinstance(start, bool) and not isinstance(end, bool) and 0 <= start <= end
                  and entry["shape"] == [end - start])
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise _bad(str(p), f"tensor {str(name)[:40]!r} has a bad safetensors entry")
        spans.append((start, end, name))
    spans.sort()
    pos = 0
    for start, end, name in spans:  # safetensors: the tensors tile the data exactly
        if start != pos:
            raise _bad(str(p), f"tensor {str(name)[:40]!r} overlaps another or leaves a gap")
        pos = end
    if pos != len(body):
        raise UserError(f"{p} is truncated or has extra bytes: its tensors end at byte {8 + json_len + pos} "
                        f"but the file has {size}; export it again")
    blobs = {name: body[start:end] for start, end, name in spans}
    if checksum(metadata, blobs) != metadata.get("checksum"):
        raise _bad(str(p), "checksum mismatch")
    return metadata, blobs, size


def read_artifact(path: str | Path) -> Artifact:
    """Read and validate an artifact; raises one UserError on any problem."""
    p = Path(path)
    metadata, blobs, size = read_container(p)
    try:
        stored = base64.b64decode(metadata["prunelab"], validate=True)
        inflater = zlib.decompressobj()
        text = inflater.decompress(stored, MAX_INFLATED)  # bounded: no zip bomb
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("header too large")
        header = json.loads(text.decode("utf-8"))
    except (KeyError, UnicodeDecodeError, ValueError, zlib.error, binascii.Error):
        raise _bad(str(p), "unreadable prunelab header") from None
    try:
        return _parse(str(p), header, blobs, size)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
        if isinstance(exc, UserError):
            if str(p) in str(exc):
                raise
            raise _bad(str(p), str(exc)) from None  # e.g. an unknown precision: name the file and the fix
        raise _bad(str(p), f"malformed header: {exc!r}") from None  # ArithmeticError: inf/0 in sizes, strides


def _parse(path: str, header: dict[str, Any], blobs: dict[str, bytes], size: int) -> Artifact:
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise _bad(path, "not a prunelab-sparse header")
    precision = header["precision"]
    check_precision(precision)
    try:
        spec = ModelSpec.from_dict(header["spec"])
    except UserError as exc:
        raise _bad(path, f"bad model spec: {exc}") from None
    if spec.num_params() > MAX_PARAMS:
        raise _bad(path, f"spec claims {spec.num_params()} parameters, more than {MAX_PARAMS}")
    expected = dict(param_names(spec))
    entries = {e["name"]: e for e in header["tensors"] if isinstance(e, dict)}
    if set(entries) != set(expected):
        raise _bad(path, f"tensors {sorted(entries)} do not match the spec's {sorted(expected)}")
    if set(blobs) != {PAYLOAD}:
        raise _bad(path, f"the file holds tensors {sorted(blobs)[:8]}; a prunelab artifact holds one, "
                         f"{PAYLOAD!r}")
    payload = blobs[PAYLOAD]
    tensors = {}
    spans: list[tuple[int, int, str]] = []
    for name, shape in expected.items():
        tensors[name] = _decode_entry(path, entries[name], shape, payload)
        spans += _part_spans(path, entries[name])
    pos = 0
    for start, end, what in sorted(spans):  # the parts tile the payload exactly, as the writer lays them out
        if start != pos:
            raise _bad(path, f"{what} overlaps another part or leaves a gap")
        pos = end
    if pos != len(payload):
        raise _bad(path, f"the parts cover {pos} of the {len(payload)} payload bytes")
    return Artifact(spec=spec, precision=precision, tensors=tensors, meta=dict(header.get("meta") or {}),
                    path=path, bytes=size)


def _part(path: str, entry: dict[str, Any], key: str, blob: bytes, count: int | None = None,
          dtypes: tuple[str, ...] | None = None) -> np.ndarray:
    """A bounds-checked copy of one stored array (inflated when stored deflated)."""
    try:
        offset, n, code, *packed = entry["parts"][key]
    except (KeyError, ValueError, TypeError):
        raise _bad(path, f"tensor {entry.get('name')!r} lacks its {key!r} array") from None
    if code not in _PART_DTYPES or (dtypes is not None and code not in dtypes):
        raise _bad(path, f"tensor {entry['name']!r}: {key} has unsupported type {code!r}")
    if not (isinstance(offset, int) and isinstance(n, int)) or offset < 0 or n < 0 or len(packed) > 1:
        raise _bad(path, f"tensor {entry['name']!r}: bad {key} location")
    if count is not None and n != count:
        raise _bad(path, f"tensor {entry['name']!r}: {key} holds {n} items, expected {count}")
    dt = np.dtype(code).newbyteorder("<")
    stored = packed[0] if packed else n * dt.itemsize
    if not isinstance(stored, int) or stored < 0 or (packed and key != "values"):
        raise _bad(path, f"tensor {entry['name']!r}: bad {key} location")
    end = offset + stored
    if end > len(blob):
        raise _bad(path, f"tensor {entry['name']!r}: {key} runs past the end of the payload")
    data = blob[offset:end]
    if packed:
        try:
            data = _inflate_unshuffle(data, n * dt.itemsize, dt.itemsize)
        except (ValueError, zlib.error):
            raise _bad(path, f"tensor {entry['name']!r}: {key} does not inflate to {n} items") from None
    return np.frombuffer(data, dtype=dt).astype(dt.newbyteorder("="))


def _decode_entry(path: str, e: dict[str, Any], shape: tuple[int, ...], payload: bytes) -> Tensor:
    parts = e.get("parts") if isinstance(e, dict) else None
    if not isinstance(parts, dict) or not all(isinstance(v, list) and len(v) in (3, 4) for v in parts.values()):
        raise _bad(path, f"tensor entry {e.get('name') if isinstance(e, dict) else e!r} has no valid parts table")
    name = e["name"]
    if tuple(e["shape"]) != shape:
        raise _bad(path, f"tensor {name!r} has shape {e['shape']}, the spec says {list(shape)}")
    tprec = e["precision"]
    check_precision(tprec)
    vcode = (VALUE_DTYPE[tprec],)
    rows, cols = as_rows(shape)
    n = rows * cols
    enc = e["encoding"]
    scale = None
    if tprec == "int8":
        scale = _part(path, e, "scale", payload, rows, ("f2", "f4")).astype(np.float32)
    if enc == "dense":
        values = _part(path, e, "values", payload, n, vcode)
        return Tensor(name, shape, enc, values, None, scale, _stored_bytes(path, e))
    nnz = e["nnz"]
    if not isinstance(nnz, int) or not 0 <= nnz <= n:
        raise _bad(path, f"tensor {name!r}: bad non-zero count {nnz!r}")
    values = _part(path, e, "values", payload, nnz, vcode)
    if enc == "csr":
        indptr = _part(path, e, "indptr", payload, rows + 1, ("u1", "u2", "u4")).astype(np.int64)
        indices = _part(path, e, "indices", payload, nnz, ("u1", "u2", "u4")).astype(np.int64)
        if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0) or np.any(indices >= cols):
            raise _bad(path, f"tensor {name!r}: inconsistent CSR indices")
        positions = np.repeat(np.arange(rows, dtype=np.int64) * cols, np.diff(indptr)) + indices
        if nnz > 1 and np.any(np.diff(positions) <= 0):
            raise _bad(path, f"tensor {name!r}: CSR columns not sorted")
    elif enc == "bitmask":
        mask = _part(path, e, "mask", payload, (n + 7) // 8, ("u1",))
        positions = np.flatnonzero(np.unpackbits(mask, count=n, bitorder="little"))
        if positions.size != nnz:
            raise _bad(path, f"tensor {name!r}: bitmask holds {positions.size} entries, expected {nnz}")
    elif enc == "rice":
        k, total = e["k"], e["quot_bits"]
        if not (isinstance(k, int) and 0 <= k < 32 and isinstance(total, int) and nnz <= total):
            raise _bad(path, f"tensor {name!r}: bad Rice parameters")
        quot = _part(path, e, "quot", payload, (total + 7) // 8, ("u1",))
        rem = _part(path, e, "rem", payload, (nnz * k + 7) // 8, ("u1",))
        ubits = np.unpackbits(quot, count=total, bitorder="little")
        ends = np.flatnonzero(ubits == 0)
        if ends.size != nnz:
            raise _bad(path, f"tensor {name!r}: Rice stream holds {ends.size} gaps, expected {nnz}")
        q = np.diff(ends, prepend=-1) - 1
        gaps = q.astype(np.int64) << k
        if k:
            rbits = np.unpackbits(rem, count=nnz * k, bitorder="little").reshape(nnz, k).astype(np.int64)
            gaps |= rbits @ (1 << np.arange(k - 1, -1, -1, dtype=np.int64))
        positions = np.cumsum(gaps + 1) - 1
        if nnz and positions[-1] >= n:
            raise _bad(path, f"tensor {name!r}: Rice positions run past the tensor")
    else:
        raise _bad(path, f"tensor {name!r}: unknown encoding {enc!r}")
    return Tensor(name, shape, enc, values, positions.astype(np.int64), scale, _stored_bytes(path, e))


def _stored_bytes(path: str, e: dict[str, Any]) -> int:
    """Bytes a tensor's parts take in the payload."""
    return sum(end - start for start, end, _ in _part_spans(path, e))


def _part_spans(path: str, e: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(start, end, 'tensor NAME: PART') byte span of each stored part of a decoded entry."""
    spans = []
    for key, part in e["parts"].items():
        offset, n, code, *packed = part
        if code not in _PART_DTYPES or not all(isinstance(v, int) and not isinstance(v, bool)
                                               for v in (offset, n, *packed)):
            raise _bad(path, f"tensor {e['name']!r}: bad {key} location")
        spans.append((offset, offset + (packed[0] if packed else n * np.dtype(code).itemsize),
                      f"tensor {e['name']!r}: {key}"))
    return spans

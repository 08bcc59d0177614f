"""Imported `torch.export` programs: read a `.pt2` without unpickling anything,
keep it as (graph JSON, tensors), rebuild a runnable module from it.

    model = read_pt2("net.pt2")            # ExportedModel: spec (graph + shapes), weights, masks
    net = model.to_torch()                 # a torch.fx GraphModule of ATen ops, trainable

A `.pt2` written by `torch.export.save` (torch 2.6+) is a zip holding the
program as JSON (`models/<name>.json`), each weight as raw bytes described by
a JSON config (`data/weights/`), constants likewise (`data/constants/`), and
the example inputs pickled with `torch.save` (`data/sample_inputs/`). Only
the JSON and the raw bytes are read here: `torch.export.load` would also
`torch.load` the sample inputs (falling back to `weights_only=False`) and
unpickle any weight or constant flagged `use_pickle`, so it is not used. We
hand the graph to the same deserializer `torch.export.load` uses, with the
tensors we decoded ourselves and no sample inputs, after checking what it
would otherwise turn into code: every node must call an ATen op (or
`operator.getitem`), symbolic-shape strings (which it parses with
`sympy.sympify`, an `eval`) must be plain size expressions, names must be
identifiers, guard code (which it would compile) and node metadata (stack
traces it prints into generated code) are dropped.

The registry stores the checked graph JSON in the safetensors header of the
model's weights file (metadata key `prunelab.graph`) and the tensors as
safetensors: no pickles anywhere. This module imports torch only to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from prunelab.errors import UserError
from prunelab.models.model import RegistryRecord

if TYPE_CHECKING:
    from torch import nn

FORMAT = "torch.export"
GRAPH_KEY = "prunelab.graph"
MASK_PREFIX = "mask:"
SCHEMA_MAJOR = 8  # torch.export's serialization schema this code was written against (torch 2.6 - 2.13)

# ScalarType codes of torch/_export/serde/schema.py -> numpy dtypes we can store in safetensors
_DTYPES: dict[int, Any] = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float16,
                           7: np.float32, 8: np.float64, 12: np.bool_}
_DTYPE_NAMES = {0: "unknown", 9: "complex32", 10: "complex64", 11: "complex128", 13: "bfloat16",
                28: "uint16", 34: "uint32", 35: "uint64"}
_OPERATORS = {"_operator.getitem", "_operator.add", "_operator.sub", "_operator.mul", "_operator.floordiv",
              "_operator.truediv", "_operator.mod", "_operator.neg", "_operator.eq", "_operator.ne",
              "_operator.lt", "_operator.le", "_operator.gt", "_operator.ge"}
# ATen ops whose argument `weight` (position 1) is the weight pruning acts on
WEIGHT_OPS = {"torch.ops.aten.linear.default", "torch.ops.aten.conv1d.default", "torch.ops.aten.conv2d.default",
              "torch.ops.aten.conv3d.default", "torch.ops.aten.convolution.default",
              "torch.ops.aten.conv1d.padding", "torch.ops.aten.conv2d.padding", "torch.ops.aten.conv3d.padding"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FQN_ATOM = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)\Z")
_SYMBOL = re.compile(r"[a-z]+[0-9]+\Z")  # s0, s77, u3: torch's shape symbols
_SYM_WORDS = {"Symbol", "Integer", "Rational", "Float", "True", "False", "positive", "integer", "real",
              "nonnegative", "finite", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv",
              "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv",
              "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
              "RoundDecimal", "ToFloat", "Identity", "Max", "Min", "Abs", "oo", "zoo", "nan"}
_SYM_CHARS = re.compile(r"[A-Za-z0-9_ +\-*/%(),.'=<>]*\Z")
EXPORT_HINT = ("export it with `torch.export.export(net.eval(), (x,), dynamic_shapes=({0: "
               "torch.export.Dim('batch')},))` and save it with `torch.export.save(program, 'model.pt2')`")


def is_exported_record(rec: dict[str, Any]) -> bool:
    """Whether a registry record holds an imported torch.export program (not a prunelab spec)."""
    spec = rec.get("spec")
    return isinstance(spec, dict) and spec.get("format") == FORMAT


@dataclass(frozen=True)
class ExportedSpec:
    """An imported program: `graph` is the checked ExportedProgram JSON (text);
    input_shape: one sample's shape (the batch axis is dynamic); classes:
    output features; parameters / buffers / constants: tensor names in the
    program's signature; prunable: names of the weights that feed a
    Linear/Conv op (ATen linear/convolution), the ones pruning acts on;
    ops: how many nodes call each op."""

    graph: str = field(repr=False)
    input_shape: tuple[int, ...]
    classes: int
    parameters: tuple[str, ...]
    buffers: tuple[str, ...]
    constants: tuple[str, ...]
    prunable: tuple[str, ...]
    ops: tuple[tuple[str, int], ...]
    torch_version: str = ""
    arch: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The registry's `spec` column: everything but the graph text (which lives in the weights file)."""
        return {"format": FORMAT, "arch": self.arch, "input_shape": list(self.input_shape),
                "classes": self.classes, "parameters": list(self.parameters), "buffers": list(self.buffers),
                "constants": list(self.constants), "prunable": list(self.prunable), "ops": dict(self.ops),
                "torch": self.torch_version, "graph_sha256": hashlib.sha256(self.graph.encode()).hexdigest()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], graph: str) -> ExportedSpec:
        if hashlib.sha256(graph.encode()).hexdigest() != data.get("graph_sha256"):
            raise UserError("the stored graph does not match its registry record (damaged file); "
                            "remove the model with `prunelab rm` and import it again")
        return cls(graph=graph, input_shape=tuple(int(v) for v in data["input_shape"]),
                   classes=int(data["classes"]), parameters=tuple(data["parameters"]),
                   buffers=tuple(data["buffers"]), constants=tuple(data["constants"]),
                   prunable=tuple(data["prunable"]), ops=tuple(sorted(data["ops"].items())),
                   torch_version=str(data.get("torch", "")), arch=str(data.get("arch", FORMAT)))

    def flops(self) -> int:
        """Multiply-accumulates of one sample's forward pass through its Linear/Conv ops (dense)."""
        return sum(macs for _, macs in weight_op_macs(json.loads(self.graph)))


@dataclass
class ExportedModel(RegistryRecord):
    """An imported program as data: spec (graph + shapes), weights (name ->
    array in its dtype: parameters, buffers, constants), masks (weight name ->
    bool, True = kept; empty when dense), meta (the registry record)."""

    spec: ExportedSpec
    weights: dict[str, np.ndarray]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def weight_names(self) -> list[str]:
        """The prunable weights (inputs of ATen linear/convolution)."""
        return list(self.spec.prunable)

    def params(self) -> int:
        """Parameters of the program (buffers and constants not counted)."""
        return int(sum(self.weights[n].size for n in self.spec.parameters))

    def nonzero(self) -> int:
        return int(sum(np.count_nonzero(self.weights[n]) for n in self.spec.parameters))

    def sparsity(self) -> float:
        """Fraction of the prunable weights that are exactly zero."""
        total = sum(self.weights[n].size for n in self.spec.prunable)
        zeros = sum(self.weights[n].size - np.count_nonzero(self.weights[n]) for n in self.spec.prunable)
        return zeros / total if total else 0.0

    def payload(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """(tensors, header metadata) of the safetensors file the registry writes."""
        tensors = {k: np.ascontiguousarray(v) for k, v in self.weights.items()}
        tensors.update({MASK_PREFIX + k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in self.masks.items()})
        return tensors, {GRAPH_KEY: self.spec.graph, "format": FORMAT}

    def with_meta(self, meta: dict[str, Any]) -> ExportedModel:
        return replace(self, meta=meta)

    def to_torch(self) -> nn.Module:
        """A fresh trainable module (a torch.fx GraphModule) running the graph with these weights."""
        return build_module(self.spec.graph, self.weights, self.spec)

    def __repr__(self) -> str:
        return (f"ExportedModel(id={self.id!r}, input_shape={self.spec.input_shape}, classes={self.spec.classes}, "
                f"params={self.params()}, sparsity={self.sparsity():.3f})")


# --- reading a .pt2 ----------------------------------------------------------------------------


def read_pt2(path: str | Path) -> ExportedModel:
    """Read and check a `.pt2` written by `torch.export.save`; raises `UserError`
    naming what cannot be loaded safely and how to fix it. Nothing is unpickled."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p} does not exist; give the .pt2 file written by torch.export.save")
    if p.is_dir():
        raise UserError(f"{p} is a folder; give the .pt2 file written by torch.export.save")
    if not zipfile.is_zipfile(p):
        raise UserError(f"{p.name} is not a .pt2 archive (a zip written by torch.export.save); {EXPORT_HINT}")
    try:
        with zipfile.ZipFile(p) as zf:
            return _read_archive(p.name, zf)
    except (zipfile.BadZipFile, KeyError, IndexError, AttributeError, StopIteration, OSError, EOFError, ValueError,
            TypeError, json.JSONDecodeError, zipfile.LargeZipFile) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{p.name} is a damaged .pt2 archive ({type(exc).__name__}: {exc}); "
                        f"save it again with torch.export.save") from None


def _read_archive(fname: str, zf: zipfile.ZipFile) -> ExportedModel:
    names = [n for n in zf.namelist() if not n.endswith("/")]
    roots = {PurePosixPath(n).parts[0] for n in names}
    if len(roots) != 1:
        raise UserError(f"{fname} does not look like a torch.export archive (files under {sorted(roots)[:3]}); "
                        f"{EXPORT_HINT}")
    root = roots.pop() + "/"
    files = {n[len(root):] for n in names}

    def text(rel: str) -> str:
        return zf.read(root + rel).decode("utf-8")

    if "archive_format" not in files or text("archive_format").strip() != "pt2":
        legacy = "serialized_exported_program.json" in files or any(f.endswith(".pt") for f in files)
        why = ("an archive from torch < 2.6 whose weights are pickled" if legacy
               else "no archive_format 'pt2' record")
        raise UserError(f"{fname}: {why}; prunelab reads only .pt2 files written by torch.export.save in "
                        "torch 2.6 or later (raw weights, no pickles): load it with your torch and save it again")
    version = text("archive_version").strip() if "archive_version" in files else "?"
    if version != "0":
        raise UserError(f"{fname}: archive version {version!r} is not supported (prunelab reads version 0, "
                        "torch 2.6-2.13); save it with torch 2.13")
    if "byteorder" in files and text("byteorder").strip() != "little":
        raise UserError(f"{fname}: weights are stored {text('byteorder').strip()}-endian; save it on a "
                        "little-endian machine")
    for sub, what in (("data/aotinductor/", "AOTInductor compiled code"), ("data/executorch/", "ExecuTorch code"),
                      ("data/mtia", "MTIA code"), ("xl_model_weights/", "external (XL) weights")):
        if any(f.startswith(sub) for f in files):
            raise UserError(f"{fname} holds {what}; prunelab imports plain torch.export programs: {EXPORT_HINT}")
    models = sorted(f for f in files if f.startswith("models/") and f.endswith(".json"))
    if len(models) != 1:
        raise UserError(f"{fname} holds {len(models)} programs ({', '.join(models) or 'none'}); "
                        f"save exactly one: {EXPORT_HINT}")
    model_name = models[0][len("models/"):-len(".json")]
    if f"data/weights/{model_name}.pt" in files or f"data/constants/{model_name}.pt" in files:
        raise UserError(f"{fname} stores its weights in the legacy pickled format; save it again with "
                        "torch.export.save in torch 2.6 or later")
    program = json.loads(text(models[0]))
    weights = _read_tensors(fname, zf, root, files, "data/weights/", f"data/weights/{model_name}_weights_config.json",
                            "weight")
    constants = _read_tensors(fname, zf, root, files, "data/constants/",
                              f"data/constants/{model_name}_constants_config.json", "constant")
    graph = check_program(program, fname)
    spec = describe_program(graph, {**weights, **constants}, fname)
    missing = [n for n in (*spec.parameters, *spec.buffers, *spec.constants) if n not in weights and n not in constants]
    if missing:
        raise UserError(f"{fname}: the program uses tensors the archive does not hold ({', '.join(missing[:5])}); "
                        "save it again with torch.export.save")
    tensors = {n: (weights.get(n) if n in weights else constants[n]) for n in
               (*spec.parameters, *spec.buffers, *spec.constants)}
    model = ExportedModel(spec=spec, weights={k: v for k, v in tensors.items() if v is not None})
    _smoke_test(model, fname)
    return model


def _read_tensors(fname: str, zf: zipfile.ZipFile, root: str, files: set[str], folder: str, config_file: str,
                  what: str) -> dict[str, np.ndarray]:
    """Decode every raw tensor a payload config lists; refuse pickled entries."""
    if config_file not in files:
        if what == "constant":
            return {}
        raise UserError(f"{fname} has no {config_file}; save it again with torch.export.save (torch 2.6+)")
    config = json.loads(zf.read(root + config_file).decode("utf-8")).get("config", {})
    out: dict[str, np.ndarray] = {}
    for fqn, entry in config.items():
        path_name = str(entry.get("path_name", ""))
        if entry.get("use_pickle") or not path_name.startswith(("weight_", "tensor_")):
            kind = ("a custom (TorchBind) object" if path_name.startswith("custom_obj_") else
                    "an opaque Python object" if path_name.startswith("opaque_obj_") else
                    "a pickled tensor (a tensor subclass)")
            raise UserError(f"{fname}: {what} {fqn!r} is stored as {kind}, which prunelab will not unpickle; "
                            f"make it a plain tensor (or a parameter/buffer) before exporting")
        meta = entry["tensor_meta"]
        code = int(meta["dtype"])
        if code not in _DTYPES:
            raise UserError(f"{fname}: {what} {fqn!r} has dtype {_DTYPE_NAMES.get(code, code)}; prunelab stores "
                            "float16/32/64, integer and bool tensors: convert the model (e.g. net.float()) first")
        dtype = np.dtype(_DTYPES[code])
        shape = tuple(_as_int(s, fname) for s in meta["sizes"])
        strides = tuple(_as_int(s, fname) for s in meta["strides"])
        offset = _as_int(meta["storage_offset"], fname)
        raw = zf.read(root + folder + path_name)
        if len(raw) % dtype.itemsize:
            raise UserError(f"{fname}: {what} {fqn!r} has {len(raw)} bytes, not a whole number of {dtype} values "
                            "(damaged archive)")
        flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        size = int(np.prod(shape)) if shape else 1
        if size == 0:
            out[fqn] = np.zeros(shape, dtype)
            continue
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        if offset < 0 or min(strides, default=0) < 0 or last >= flat.size:
            raise UserError(f"{fname}: {what} {fqn!r} (shape {shape}) does not fit its {flat.size} stored values "
                            "(damaged archive)")
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape,
                                               strides=tuple(s * dtype.itemsize for s in strides))
        out[fqn] = np.array(view, dtype=dtype)  # a copy: owns its memory, native byte order
    return out


def _as_int(value: Any, fname: str) -> int:
    if isinstance(value, dict) and "as_int" in value and isinstance(value["as_int"], int):
        return int(value["as_int"])
    if isinstance(value, int):
        return value
    raise UserError(f"{fname}: a stored tensor has a symbolic size; only the graph's batch axis may be dynamic")


# --- checking the graph -------------------------------------------------------------------------


def check_program(program: dict[str, Any], fname: str = "the program") -> str:
    """The program JSON with node metadata and guard code removed, after checking
    everything the deserializer turns into code or objects. Returns JSON text."""
    if not isinstance(program, dict) or "graph_module" not in program:
        raise UserError(f"{fname}: the program JSON has no graph_module (damaged archive)")
    version = program.get("schema_version") or {}
    if version.get("major") != SCHEMA_MAJOR:
        raise UserError(f"{fname}: saved with torch.export schema {version.get('major')}.{version.get('minor')} "
                        f"(torch {program.get('torch_version', '?')}); prunelab reads schema {SCHEMA_MAJOR}.x: "
                        "save it again with torch 2.13")
    gm = program["graph_module"]
    graph = gm["graph"]
    problems: list[str] = []
    for node in graph["nodes"]:
        target = str(node.get("target", ""))
        if not _allowed_target(target):
            problems.append(_describe_target(target))
        node["metadata"] = {}  # stack traces, module stacks: never needed to run, printed into generated code
    if problems:
        unique = sorted(set(problems))
        raise UserError(f"{fname} uses ops prunelab cannot rebuild safely: {'; '.join(unique)}. Only ATen ops "
                        "(what torch.export produces from standard PyTorch layers) are supported: replace custom "
                        "ops and control flow (torch.cond, loops over tensors) before exporting")
    sig = gm["signature"]
    kinds = [next(iter(s)) for s in sig["input_specs"]]
    bad_in = sorted({k for k in kinds if k not in ("parameter", "buffer", "tensor_constant", "user_input")})
    if bad_in:
        raise UserError(f"{fname}: program inputs of kind {', '.join(bad_in)} are not supported (custom objects, "
                        f"tokens of side effects); {EXPORT_HINT}")
    out_kinds = sorted({next(iter(s)) for s in sig["output_specs"]} - {"user_output"})
    if out_kinds:
        why = ("it updates buffers (BatchNorm statistics in training mode)" if "buffer_mutation" in out_kinds
               else f"it has outputs of kind {', '.join(out_kinds)}")
        raise UserError(f"{fname}: {why}; export the model in eval mode: {EXPORT_HINT}")
    for node in graph["nodes"]:
        _check_training_op(node, fname)
    _walk_strings(program, fname)
    program["guards_code"] = []  # compiled into a checking function by torch; our own shape checks replace it
    gm["metadata"] = {}
    return json.dumps(program, sort_keys=True)


def _allowed_target(target: str) -> bool:
    if target in _OPERATORS:
        return True
    parts = target.split(".")
    return (len(parts) == 5 and parts[:3] == ["torch", "ops", "aten"]
            and all(_IDENT.match(p) for p in parts[3:]))


def _describe_target(target: str) -> str:
    if target.startswith("torch.ops.higher_order."):
        return f"{target} (control flow / higher-order op)"
    if target.startswith("torch.ops."):
        return f"{target} (a custom op)"
    return f"{target or 'an empty target'} (not an ATen op)"


def _check_training_op(node: dict[str, Any], fname: str) -> None:
    """Refuse BatchNorm/dropout captured in training mode: the graph would keep behaving that way."""
    target = node["target"]
    flags = {i["name"]: i["arg"].get("as_bool") for i in node.get("inputs", []) if "as_bool" in i.get("arg", {})}
    training = ((target.startswith("torch.ops.aten.batch_norm") and flags.get("training"))
                or (target.startswith("torch.ops.aten.dropout") and flags.get("train"))
                or target.startswith(("torch.ops.aten._native_batch_norm_legit.",
                                      "torch.ops.aten._native_batch_norm_legit_functional")))
    if training:
        raise UserError(f"{fname} was exported in training mode ({target} uses batch statistics or drops "
                        f"units); {EXPORT_HINT}")


def _walk_strings(value: Any, fname: str, key: str = "") -> None:
    """Names must be identifiers (or dotted paths of them); symbolic expressions plain arithmetic."""
    if isinstance(value, dict):
        for k, v in value.items():
            if key == "range_constraints":
                _check_sym(str(k), fname)
            _walk_strings(v, fname, k)
    elif isinstance(value, list):
        for v in value:
            _walk_strings(v, fname, key)
    elif isinstance(value, str):
        if key == "expr_str":
            _check_sym(value, fname)
        elif key in ("name", "parameter_name", "buffer_name", "tensor_constant_name", "fqn"):
            if value and not all(_FQN_ATOM.match(a) for a in value.split(".")):
                raise UserError(f"{fname}: name {value[:60]!r} is not a Python identifier path; rename it in "
                                "your module before exporting")
        elif "\n" in value or "\r" in value:
            raise UserError(f"{fname}: field {key!r} holds a multi-line string (damaged or crafted archive)")


def _check_sym(expr: str, fname: str) -> None:
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)
    bad = [w for w in words if w not in _SYM_WORDS and not _SYMBOL.match(w)]
    if len(expr) > 2000 or not _SYM_CHARS.match(expr) or bad:
        raise UserError(f"{fname}: symbolic shape {expr[:60]!r} is not a plain size expression "
                        "(damaged or crafted archive)")


def _value_sizes(graph: dict[str, Any], name: str) -> list[Any]:
    return list(graph["tensor_values"][name]["sizes"])


def weight_op_macs(program: dict[str, Any]) -> list[tuple[str, int]]:
    """(weight name, multiply-accumulates per sample) for every ATen linear/convolution node."""
    gm = program["graph_module"]
    graph = gm["graph"]
    placeholder_to_fqn = {}
    for s in gm["signature"]["input_specs"]:
        kind, body = next(iter(s.items()))
        fqn = body.get("parameter_name") or body.get("buffer_name") or body.get("tensor_constant_name")
        if fqn:
            placeholder_to_fqn[body["arg"]["name"]] = fqn
    out = []
    for node in graph["nodes"]:
        if node["target"] not in WEIGHT_OPS:
            continue
        args = node["inputs"]
        w_arg = args[1]["arg"].get("as_tensor") if len(args) > 1 else None
        outs = node.get("outputs") or []
        if not w_arg or not outs or "as_tensor" not in outs[0]:
            continue
        fqn = placeholder_to_fqn.get(w_arg["name"])
        if fqn is None:
            continue
        w = [s.get("as_int", 1) for s in _value_sizes(graph, w_arg["name"])]
        o = [s.get("as_int", 1) for s in _value_sizes(graph, outs[0]["as_tensor"]["name"])[1:]]
        per_out = int(np.prod(w[1:])) if len(w) > 1 else 1
        out.append((fqn, int(np.prod(o)) * per_out))
    return out


def describe_program(graph_text: str, tensors: dict[str, np.ndarray], fname: str = "the program") -> ExportedSpec:
    """Shapes, tensor names and prunable weights of a checked program."""
    program = json.loads(graph_text)
    gm = program["graph_module"]
    graph = gm["graph"]
    params, buffers, constants, user_inputs = [], [], [], []
    for s in gm["signature"]["input_specs"]:
        kind, body = next(iter(s.items()))
        if kind == "parameter":
            params.append(body["parameter_name"])
        elif kind == "buffer":
            buffers.append(body["buffer_name"])
        elif kind == "tensor_constant":
            constants.append(body["tensor_constant_name"])
        else:
            user_inputs.append(body["arg"])
    if len(user_inputs) != 1 or "as_tensor" not in user_inputs[0]:
        raise UserError(f"{fname}: the program takes {len(user_inputs)} inputs; prunelab imports models that "
                        "take one batch of images (one tensor)")
    outputs = [next(iter(s.values()))["arg"] for s in gm["signature"]["output_specs"]]
    if len(outputs) != 1 or "as_tensor" not in outputs[0]:
        raise UserError(f"{fname}: the program returns {len(outputs)} values; prunelab imports classifiers "
                        "that return one (batch, classes) tensor of scores")
    x = graph["tensor_values"][user_inputs[0]["as_tensor"]["name"]]
    y = graph["tensor_values"][outputs[0]["as_tensor"]["name"]]
    if x["dtype"] != 7:
        raise UserError(f"{fname}: the program's input is {_DTYPE_NAMES.get(x['dtype'], x['dtype'])}, not "
                        "float32; export it with a float32 example batch")
    if not x["sizes"] or "as_int" in x["sizes"][0]:
        fixed = x["sizes"][0]["as_int"] if x["sizes"] else "none"
        raise UserError(f"{fname}: the program's batch axis is fixed to {fixed}, so it cannot run other batch "
                        f"sizes; {EXPORT_HINT}")
    if any("as_int" not in s for s in x["sizes"][1:]):
        raise UserError(f"{fname}: only the batch axis of the input may be dynamic; {EXPORT_HINT}")
    input_shape = tuple(int(s["as_int"]) for s in x["sizes"][1:])
    if len(y["sizes"]) != 2 or "as_int" not in y["sizes"][1]:
        raise UserError(f"{fname}: the program returns a tensor of rank {len(y['sizes'])}; prunelab imports "
                        "classifiers returning (batch, classes) scores")
    ops: dict[str, int] = {}
    for node in graph["nodes"]:
        op = node["target"].removeprefix("torch.ops.")
        ops[op] = ops.get(op, 0) + 1
    prunable = []
    for fqn, _ in weight_op_macs(program):
        if fqn in params and fqn.endswith(".weight") and fqn not in prunable and tensors[fqn].ndim >= 2:
            prunable.append(fqn)
    return ExportedSpec(graph=graph_text, input_shape=input_shape, classes=int(y["sizes"][1]["as_int"]),
                        parameters=tuple(params), buffers=tuple(buffers), constants=tuple(constants),
                        prunable=tuple(prunable), ops=tuple(sorted(ops.items())),
                        torch_version=str(program.get("torch_version", "")))


# --- rebuilding ----------------------------------------------------------------------------------


def deserialize(graph_text: str, weights: dict[str, np.ndarray], spec: ExportedSpec) -> Any:
    """The `torch.export.ExportedProgram` of a checked graph with these tensors (no pickles)."""
    import warnings

    import torch
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    program = json.loads(check_program(json.loads(graph_text)))  # checked again: the store file may be edited
    state: dict[str, torch.Tensor] = {}
    for n in spec.parameters:
        state[n] = torch.nn.Parameter(torch.from_numpy(np.array(weights[n])), requires_grad=True)
    for n in spec.buffers:
        state[n] = torch.from_numpy(np.array(weights[n]))
    constants = {n: torch.from_numpy(np.array(weights[n])) for n in spec.constants}
    serialized = _dict_to_dataclass(schema.ExportedProgram, program)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ExportedProgramDeserializer().deserialize(serialized, state, constants, None)


def build_module(graph_text: str, weights: dict[str, np.ndarray], spec: ExportedSpec) -> nn.Module:
    """A trainable GraphModule. `train()`/`eval()` only set the flag: the graph was
    captured in eval mode, so BatchNorm uses its running statistics and dropout is off."""
    module = deserialize(graph_text, weights, spec).module(check_guards=False)
    # torch.export replaces train()/eval() on the instance with functions that raise; the graph is
    # fixed, so the flag changes nothing and nn.Module's own methods are safe (and fit/evaluate call them)
    for attr in ("train", "eval"):
        module.__dict__.pop(attr, None)
    return module  # type: ignore[no-any-return]


def _smoke_test(model: ExportedModel, fname: str) -> None:
    """Rebuild and run two zero samples: what import accepts, eval and prune can run."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of import
        raise UserError("prunelab import needs PyTorch: pip install torch") from None
    try:
        net = model.to_torch()
        with torch.no_grad():
            out = net(torch.zeros((2, *model.spec.input_shape)))
    except UserError:
        raise
    except Exception as exc:  # the deserializer and the graph raise many types; none may escape as a traceback
        raise UserError(f"{fname}: torch could not rebuild or run the program ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); {EXPORT_HINT}") from None
    out = out[0] if isinstance(out, (tuple, list)) else out
    if tuple(out.shape) != (2, model.spec.classes):
        raise UserError(f"{fname}: the program returns shape {tuple(out.shape)} for 2 samples, expected "
                        f"(2, {model.spec.classes})")


# --- the registry's side -------------------------------------------------------------------------


def load_stored(rec: dict[str, Any], path: Path) -> ExportedModel:
    """An imported model from its registry record and safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"weights file {path} of model {rec['id']} is damaged ({exc}); "
                        f"remove the entry with `prunelab rm {rec['id']}`") from None
    graph = header.get(GRAPH_KEY)
    if graph is None:
        raise UserError(f"weights file {path} of model {rec['id']} has no graph; "
                        f"remove the entry with `prunelab rm {rec['id']}` and import the model again")
    spec = ExportedSpec.from_dict(rec["spec"], graph)
    weights = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    masks = {k[len(MASK_PREFIX):]: v.astype(bool) for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    return ExportedModel(spec=spec, weights=weights, masks=masks, meta=rec)

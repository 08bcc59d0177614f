"""Model specs: plain JSON that fully describes a network's architecture.

A model is (spec, weights, masks). Every network, pruned or not, is rebuilt
from its spec, never by introspecting a live framework object. A spec is a
frozen dataclass holding the input shape, the class count and a tuple of
layers; each layer is a `Layer` with a kind, a unique name and its sizes.
This module has no torch import: shapes and parameter counts are computed
from the spec alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prunelab.errors import UserError

# kind -> (required int fields, optional fields with defaults)
LAYER_FIELDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "flatten": ((), {}),
    "relu": ((), {}),
    "linear": (("in_features", "out_features"), {"bias": True}),
    "conv2d": (
        ("in_channels", "out_channels", "kernel_size"),
        {"stride": 1, "padding": 0, "bias": True},
    ),
    "maxpool2d": (("kernel_size",), {"stride": None}),
}
PARAM_KINDS = ("linear", "conv2d")


@dataclass(frozen=True)
class Layer:
    """One layer: `kind` is a key of LAYER_FIELDS, `args` its sizes."""

    kind: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, **self.args}

    @property
    def has_weights(self) -> bool:
        return self.kind in PARAM_KINDS

    def weight_shape(self) -> tuple[int, ...]:
        a = self.args
        if self.kind == "linear":
            return (a["out_features"], a["in_features"])
        if self.kind == "conv2d":
            k = a["kernel_size"]
            return (a["out_channels"], a["in_channels"], k, k)
        return ()

    def num_params(self) -> int:
        if not self.has_weights:
            return 0
        n = 1
        for d in self.weight_shape():
            n *= d
        if self.args.get("bias", True):
            n += self.weight_shape()[0]
        return n

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


@dataclass(frozen=True)
class ModelSpec:
    """Input shape (C, H, W), class count, layers in order; `arch` names the family."""

    input_shape: tuple[int, ...]
    classes: int
    layers: tuple[Layer, ...]
    arch: str = "custom"

    # --- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Validate and build a spec; unknown keys and bad sizes fail loudly."""
        if not isinstance(data, dict):
            raise UserError("a model spec must be a JSON object")
        unknown = set(data) - {"arch", "input_shape", "classes", "layers"}
        if unknown:
            raise UserError(f"unknown model spec keys {sorted(unknown)}")
        try:
            layers = tuple(_layer_from_dict(d) for d in data["layers"])
        except KeyError:
            raise UserError("model spec is missing 'layers'") from None
        except UserError:
            raise
        except (TypeError, ValueError):  # layers is not a list of objects
            raise UserError("model spec layers must be a list of layer objects") from None
        try:
            spec = cls(
                input_shape=tuple(int(v) for v in data["input_shape"]),
                classes=int(data["classes"]),
                layers=layers,
                arch=str(data.get("arch", "custom")),
            )
        except KeyError as exc:
            raise UserError(f"model spec is missing {exc}") from None
        except (TypeError, ValueError, OverflowError):  # e.g. classes: Infinity or "ten"
            raise UserError("model spec input_shape and classes must be positive integers") from None
        if len(spec.input_shape) < 1 or min(spec.input_shape) < 1 or spec.classes < 1:
            raise UserError(f"model spec input_shape {list(spec.input_shape)} and classes {spec.classes} "
                            "must be positive integers")
        spec.output_shapes()  # validates that the sizes chain
        return spec

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls.from_dict(json.loads(text))

    # --- questions the spec answers about itself ------------------------
    def num_params(self) -> int:
        """Total trainable parameters (weights + biases)."""
        return sum(layer.num_params() for layer in self.layers)

    def weight_layers(self) -> list[Layer]:
        """Linear and conv layers, in order: the ones pruning acts on."""
        return [layer for layer in self.layers if layer.has_weights]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(la.name for la in self.weight_layers())
        raise UserError(f"no layer named {name!r}; weight layers are: {names}")

    def output_shapes(self) -> list[tuple[int, ...]]:
        """Shape after each layer (without batch), checking that sizes chain."""
        shape = tuple(self.input_shape)
        shapes = []
        for layer in self.layers:
            shape = _next_shape(layer, shape)
            shapes.append(shape)
        if shape != (self.classes,):
            raise UserError(f"model ends with shape {shape}, expected ({self.classes},) for {self.classes} classes")
        return shapes

    def flops(self) -> int:
        """Multiply-accumulates of one forward pass for a dense network."""
        total = 0
        shape = tuple(self.input_shape)
        for layer in self.layers:
            out = _next_shape(layer, shape)
            if layer.kind == "linear":
                total += layer.args["in_features"] * layer.args["out_features"]
            elif layer.kind == "conv2d":
                k = layer.args["kernel_size"]
                total += out[0] * out[1] * out[2] * layer.args["in_channels"] * k * k
            shape = out
        return total


def _layer_from_dict(d: dict[str, Any]) -> Layer:
    d = dict(d)
    kind = d.pop("kind", None)
    name = d.pop("name", None)
    if kind not in LAYER_FIELDS:
        raise UserError(f"unknown layer kind {kind!r}; choose from {sorted(LAYER_FIELDS)}")
    if not isinstance(name, str) or not name.isidentifier():
        raise UserError(f"layer name {name!r} must be a Python identifier like 'fc1'")
    required, optional = LAYER_FIELDS[kind]
    unknown = set(d) - set(required) - set(optional)
    if unknown:
        raise UserError(f"layer {name!r} ({kind}) has unknown keys {sorted(unknown)}")
    args: dict[str, Any] = {}
    for key in required:
        if key not in d:
            raise UserError(f"layer {name!r} ({kind}) is missing {key!r}")
        value = d[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"layer {name!r}: {key} must be a positive integer, got {value!r}")
        args[key] = value
    for key, default in optional.items():
        value = d.get(key, default)
        # a stride of 0 would divide by zero when shapes are computed; padding must be >= 0
        ok = (isinstance(value, bool) if key == "bias"
              else (value is None and default is None) or (isinstance(value, int) and not isinstance(value, bool)
                                                           and value >= (0 if key == "padding" else 1)))
        if not ok:
            raise UserError(f"layer {name!r}: {key} has a bad value {value!r}")
        args[key] = value
    return Layer(kind=kind, name=name, args=args)


def _next_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    a = layer.args
    if layer.kind == "flatten":
        n = 1
        for d in shape:
            n *= d
        return (n,)
    if layer.kind == "relu":
        return shape
    if layer.kind == "linear":
        if shape != (a["in_features"],):
            raise UserError(f"layer {layer.name!r} expects {a['in_features']} inputs but gets shape {shape}")
        return (a["out_features"],)
    if len(shape) != 3:
        raise UserError(f"layer {layer.name!r} ({layer.kind}) needs (C, H, W) input, gets {shape}")
    c, h, w = shape
    if layer.kind == "conv2d":
        if c != a["in_channels"]:
            raise UserError(f"layer {layer.name!r} expects {a['in_channels']} channels but gets {c}")
        k, s, p = a["kernel_size"], a["stride"], a["padding"]
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if oh < 1 or ow < 1:
            raise UserError(f"layer {layer.name!r}: kernel {k} does not fit input {h}x{w}")
        return (a["out_channels"], oh, ow)
    # maxpool2d
    k = a["kernel_size"]
    s = a["stride"] or k
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    if oh < 1 or ow < 1:
        raise UserError(f"layer {layer.name!r}: pool {k} does not fit input {h}x{w}")
    return (c, oh, ow)

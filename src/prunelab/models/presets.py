"""Named architectures: a registry of functions that return a `ModelSpec`.

`create_spec("lenet-300-100")`, `list_presets()`. Custom `mlp` and `cnn`
take their sizes (`hidden=(512, 256)`, `channels=(32, 64)`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prunelab.errors import UserError
from prunelab.models.spec import Layer, ModelSpec

_PRESETS: dict[str, Callable[..., ModelSpec]] = {}


def register(name: str) -> Callable[[Callable[..., ModelSpec]], Callable[..., ModelSpec]]:
    def deco(fn: Callable[..., ModelSpec]) -> Callable[..., ModelSpec]:
        _PRESETS[name] = fn
        return fn

    return deco


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def create_spec(arch: str, **kwargs: Any) -> ModelSpec:
    """Spec for a named architecture; kwargs the family takes (hidden, channels, ...)."""
    if arch not in _PRESETS:
        raise UserError(f"unknown architecture {arch!r}; choose from {', '.join(list_presets())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return _PRESETS[arch](**kwargs)
    except TypeError as exc:
        raise UserError(f"architecture {arch!r}: {exc}") from None


def _check_sizes(what: str, sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(s) for s in sizes)
    if not sizes or any(s < 1 for s in sizes):
        raise UserError(f"{what} must be a comma-separated list of positive integers, got {list(sizes)}")
    return sizes


def mlp_spec(
    hidden: Sequence[int], input_shape: Sequence[int] = (1, 28, 28), classes: int = 10, arch: str = "mlp"
) -> ModelSpec:
    """Flatten, then Linear+ReLU per hidden size, then a Linear to the classes."""
    hidden = _check_sizes("--hidden", hidden)
    n_in = 1
    for d in input_shape:
        n_in *= d
    layers = [Layer("flatten", "flatten")]
    sizes = (n_in, *hidden)
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
        layers += [Layer("linear", f"fc{i}", {"in_features": a, "out_features": b, "bias": True}),
                   Layer("relu", f"relu{i}")]
    layers.append(Layer("linear", f"fc{len(hidden) + 1}",
                        {"in_features": sizes[-1], "out_features": classes, "bias": True}))
    return ModelSpec(tuple(input_shape), classes, tuple(layers), arch)


def cnn_spec(
    channels: Sequence[int],
    hidden: Sequence[int],
    kernel_size: int = 5,
    padding: int = 0,
    relu_after_conv: bool = True,
    input_shape: Sequence[int] = (1, 28, 28),
    classes: int = 10,
    arch: str = "cnn",
) -> ModelSpec:
    """Per channel size: conv kxk (+ReLU), maxpool 2x2; then an MLP head."""
    channels = _check_sizes("--channels", channels)
    hidden = _check_sizes("--hidden", hidden)
    c, h, w = input_shape
    layers: list[Layer] = []
    for i, out in enumerate(channels, start=1):
        layers.append(Layer("conv2d", f"conv{i}", {"in_channels": c, "out_channels": out,
                                                   "kernel_size": kernel_size, "stride": 1,
                                                   "padding": padding, "bias": True}))
        if relu_after_conv:
            layers.append(Layer("relu", f"crelu{i}"))
        layers.append(Layer("maxpool2d", f"pool{i}", {"kernel_size": 2, "stride": 2}))
        c = out
        h = (h + 2 * padding - kernel_size + 1) // 2
        w = (w + 2 * padding - kernel_size + 1) // 2
        if h < 1 or w < 1:
            raise UserError(f"too many conv layers ({len(channels)}) for a {input_shape[1]}x{input_shape[2]} input")
    layers.append(Layer("flatten", "flatten"))
    sizes = (c * h * w, *hidden)
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
        layers += [Layer("linear", f"fc{i}", {"in_features": a, "out_features": b, "bias": True}),
                   Layer("relu", f"relu{i}")]
    layers.append(Layer("linear", f"fc{len(hidden) + 1}",
                        {"in_features": sizes[-1], "out_features": classes, "bias": True}))
    spec = ModelSpec(tuple(input_shape), classes, tuple(layers), arch)
    spec.output_shapes()
    return spec


@register("lenet-300-100")
def lenet_300_100(input_shape: Sequence[int] = (1, 28, 28), classes: int = 10) -> ModelSpec:
    """784-300-100-10 with ReLU (LeCun et al. 1998; Han et al. 2015)."""
    return mlp_spec((300, 100), input_shape, classes, arch="lenet-300-100")


@register("lenet-5")
def lenet_5(input_shape: Sequence[int] = (1, 28, 28), classes: int = 10) -> ModelSpec:
    """The Caffe LeNet-5 of the pruning literature: conv 20@5x5, pool, conv 50@5x5, pool,
    fc 500, fc 10 (no ReLU after the convolutions, as in Caffe's lenet.prototxt)."""
    return cnn_spec((20, 50), (500,), relu_after_conv=False, input_shape=input_shape,
                    classes=classes, arch="lenet-5")


@register("mlp")
def mlp(hidden: Sequence[int] = (512, 256), input_shape: Sequence[int] = (1, 28, 28),
        classes: int = 10) -> ModelSpec:
    """Custom MLP: `--hidden 512,256`."""
    return mlp_spec(hidden, input_shape, classes)


@register("cnn")
def cnn(channels: Sequence[int] = (32, 64), hidden: Sequence[int] = (128,),
        input_shape: Sequence[int] = (1, 28, 28), classes: int = 10) -> ModelSpec:
    """Custom CNN: `--channels 32,64 --hidden 128` (conv 5x5 'same' + ReLU + pool each)."""
    return cnn_spec(channels, hidden, kernel_size=5, padding=2, input_shape=input_shape, classes=classes)

"""Removing parametrizations without touching classes shared with copies.

`torch.nn.utils.parametrize` gives each parametrized module its own class
(`ParametrizedConv2d`) holding the `weight` property; `copy.deepcopy` of
such a module shares that class, and `remove_parametrizations` deletes the
property from it, which breaks every copy still parametrized (a user who
kept a deep copy as a checkpoint, or our own ONNX export copy). `bake`
does the same removal but only swaps the instance back to its base class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize


def base_class(module: nn.Module) -> type:
    """The module's own class, `Conv2d` for a `ParametrizedConv2d`."""
    cls = type(module)
    return cls.__bases__[0] if parametrize.is_parametrized(module) else cls


def bake(module: nn.Module) -> None:
    """Replace every parametrized tensor of `module` (not its children) by its
    current value, keeping the original Parameter objects (so an optimizer
    built on them still updates the module)."""
    if not parametrize.is_parametrized(module):
        return
    plist: Any = module.parametrizations
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in list(plist.keys()):
            value = getattr(module, name).detach().clone()
            original = plist[name].original
            original.set_(value)
            tensors[name] = original
    cls = base_class(module)
    delattr(module, "parametrizations")
    module.__class__ = cls
    for name, t in tensors.items():
        if isinstance(t, nn.Parameter):
            module.register_parameter(name, t)
        else:
            module.register_buffer(name, t)


def bake_all(module: nn.Module) -> nn.Module:
    """`bake` every sub-module; returns `module`."""
    for m in list(module.modules()):
        bake(m)
    return module

"""`prune_module`: prune any `torch.nn.Module` in place, in the user's own loop.

    pruning = prunelab.prune_module(net, 0.9)            # one-shot, global magnitude
    for x, y in loader:                                   # the user's loop, any optimizer
        loss_fn(net(x), y).backward(); opt.step(); opt.zero_grad()
        pruning.step()                                    # advances gradual/lottery schedules
    pruning.sparsity(), pruning.report()                  # measured on the module
    net = pruning.finalize()                              # plain weights with zeros baked in

Unstructured pruning registers a `torch.nn.utils.parametrize` parametrization
w -> w * mask on every pruned weight: the module computes with the masked
weight, so the gradient of a pruned entry is zero and no optimizer step or
optimizer state (Adam moments, SGD momentum, weight decay) can make it
non-zero again; the stored `original` may drift under momentum, but only
the masked product ever reaches the forward pass or `finalize()`. The
Parameter object is kept, so an optimizer built before pruning still trains
the module. Structured pruning (`method="structured"`) instead removes whole
channels with Torch-Pruning and leaves a smaller dense module (build the
optimizer after it: the parameters are new tensors).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelab.errors import UserError
from prunelab.prune.engine.criteria import Criterion, get_criterion
from prunelab.prune.engine.parametrized import bake, base_class
from prunelab.prune.engine.schedules import OneShot, Schedule, make_schedule
from prunelab.prune.engine.structured import PRUNABLE, GroupCut, prune_channels
from prunelab.prune.masks import check_sparsity, global_magnitude_masks, layer_magnitude_masks

SCOPES = ("global", "layer")
METHODS = ("magnitude", "structured")

LayerSpec = str | type  # a module name ("layer1" or "layer1.conv.weight") or a module type (nn.Embedding)


def list_methods() -> list[str]:
    return list(METHODS)


def list_scopes() -> list[str]:
    return list(SCOPES)


@dataclass(frozen=True)
class PruneSettings:
    """Everything that decides a `prune_module` run, validated once.

    sparsity: fraction in [0, 1) of the pruned weights set to zero
    (magnitude) or of the prunable channels removed (structured).
    scope: "global" (one ranking over all pruned layers) or "layer" (each
    layer to `sparsity`). method: "magnitude" (single weights) or
    "structured" (whole channels/neurons). criterion: a name from
    `list_criteria()`. schedule: a `Schedule` (one-shot, gradual, lottery).
    ignore / include: module names or types left out / pruned in addition
    to Linear and Conv layers. seed: for the random criterion.
    """

    sparsity: float
    scope: str = "global"
    method: str = "magnitude"
    criterion: str = "l1"
    schedule: Schedule = field(default_factory=OneShot)
    ignore: tuple[LayerSpec, ...] = ()
    include: tuple[LayerSpec, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsity", check_sparsity(self.sparsity, "sparsity"))
        if self.scope not in SCOPES:
            raise UserError(f"unknown scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        get_criterion(self.criterion)
        if not isinstance(self.schedule, Schedule):
            raise UserError(f"schedule must be a name or a Schedule object, got {self.schedule!r}")
        if self.method == "structured" and not isinstance(self.schedule, OneShot):
            raise UserError("method='structured' is one-shot: drop schedule= (fine-tune afterwards in your loop)")
        if self.method == "structured" and self.include:
            raise UserError("include= is for unstructured pruning; structured pruning works on Linear/Conv channels")
        for spec in (*self.ignore, *self.include):
            if not isinstance(spec, str) and not (isinstance(spec, type) and issubclass(spec, nn.Module)):
                raise UserError(f"ignore/include take module names or nn.Module types, got {spec!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (types become their names)."""
        def names(specs: tuple[LayerSpec, ...]) -> list[str]:
            return [s if isinstance(s, str) else s.__name__ for s in specs]

        return {"sparsity": self.sparsity, "scope": self.scope, "method": self.method,
                "criterion": self.criterion, "schedule": self.schedule.name, "ignore": names(self.ignore),
                "include": names(self.include), "seed": self.seed}


@dataclass(frozen=True)
class LayerRow:
    """One weight of the report. shape_before/shape: weight shapes before
    pruning and now; weights_before/weights: their element counts; nonzero:
    non-zero entries now; pruned: whether this weight was a pruning target."""

    name: str
    kind: str
    shape_before: tuple[int, ...]
    shape: tuple[int, ...]
    weights_before: int
    weights: int
    nonzero: int
    pruned: bool

    @property
    def sparsity(self) -> float:
        """Fraction of the original weights that are gone or zero."""
        return 1.0 - self.nonzero / self.weights_before if self.weights_before else 0.0


@dataclass(frozen=True)
class Report:
    """`Pruning.report()`: one row per Linear/Conv (and included) weight.

    sparsity: as `Pruning.sparsity()`; params_before / params: all parameters
    of the module (biases and BatchNorm included) before pruning and now;
    nonzero_params: the non-zero ones now."""

    method: str
    sparsity: float
    params_before: int
    params: int
    nonzero_params: int
    rows: tuple[LayerRow, ...]

    def __str__(self) -> str:
        lines = [f"{'layer':<28} {'kind':<8} {'shape':<22} {'nonzero':>9} {'sparsity':>8}"]
        for r in self.rows:
            shape = "x".join(map(str, r.shape)) + ("" if r.shape == r.shape_before else
                                                   " (was " + "x".join(map(str, r.shape_before)) + ")")
            mark = "" if r.pruned else " *"
            lines.append(f"{r.name + mark:<28} {r.kind:<8} {shape:<22} {r.nonzero:>9} {r.sparsity:>8.4f}")
        lines.append(f"{self.method} sparsity {self.sparsity:.4f}; params {self.params_before} -> {self.params} "
                     f"({self.nonzero_params} non-zero); * = not pruned")
        return "\n".join(lines)


class WeightMask(nn.Module):
    """The parametrization w -> w * mask; `mask` (a buffer shaped like w,
    1 = kept, 0 = pruned) is updated in place by schedules."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def weight_of(m: nn.Module) -> torch.Tensor:
    """The layer's (effective, masked when parametrized) weight, detached."""
    w = getattr(m, "weight")  # noqa: B009  (typed access to a dynamic attribute)
    return w.detach() if isinstance(w, torch.Tensor) else torch.zeros(0)


def original_of(m: nn.Module) -> torch.Tensor:
    """The unmasked Parameter under a parametrized weight, detached."""
    plist: Any = m.parametrizations
    return plist.weight.original.detach()  # type: ignore[no-any-return]


def _matches(name: str, module: nn.Module, spec: LayerSpec) -> bool:
    if isinstance(spec, str):
        spec = spec.removesuffix(".weight")
        return name == spec or name.startswith(spec + ".")
    return isinstance(module, spec)


def _check_specs(module: nn.Module, specs: Iterable[LayerSpec], what: str, exact: bool = False) -> None:
    named = list(module.named_modules())
    for spec in specs:
        found = any((n == spec.removesuffix(".weight")) if exact else _matches(n, m, spec)
                    for n, m in named if n) if isinstance(spec, str) else True
        if not found:
            layers = ", ".join(n for n, m in named if isinstance(m, PRUNABLE))
            raise UserError(f"{what}: no module named {spec!r}; Linear/Conv layers are: {layers}")


def target_layers(module: nn.Module, ignore: Sequence[LayerSpec], include: Sequence[LayerSpec]) -> dict[str, nn.Module]:
    """name -> layer whose `weight` is pruned: every Linear/Conv, plus
    `include` (exact module names, or types) minus `ignore` (module names,
    with all their sub-modules, or types)."""
    _check_specs(module, ignore, "ignore")
    _check_specs(module, include, "include", exact=True)
    out: dict[str, nn.Module] = {}
    for name, m in module.named_modules():
        if isinstance(m, (WeightMask, parametrize.ParametrizationList)):
            continue
        by_name = any(isinstance(s, str) and s.removesuffix(".weight") == name for s in include)
        chosen = isinstance(m, PRUNABLE) or by_name or any(isinstance(m, s) for s in include if isinstance(s, type))
        if not chosen or any(_matches(name, m, s) for s in ignore):
            continue
        if not isinstance(getattr(m, "weight", None), torch.Tensor):
            if by_name:
                raise UserError(f"include: module {name!r} ({type(m).__name__}) has no weight tensor to prune")
            continue
        if parametrize.is_parametrized(m, "weight"):
            raise UserError(f"{name or 'the module'}.weight already has a parametrization (an earlier "
                            "prune_module?); call pruning.finalize() on it first")
        out[name] = m
    if not out:
        raise UserError("nothing to prune: the module has no Linear/Conv layer left after ignore=; "
                        "add layers with include=['name'] or include=[nn.Embedding]")
    return out


def weight_shapes(module: nn.Module, layers: dict[str, nn.Module]) -> dict[str, tuple[int, ...]]:
    """name -> weight shape of every Linear/Conv and every pruned layer, in module order."""
    return {n: tuple(weight_of(m).shape) for n, m in module.named_modules()
            if n in layers or (isinstance(m, PRUNABLE) and isinstance(getattr(m, "weight", None), torch.Tensor))}


def _param_count(module: nn.Module) -> tuple[int, int]:
    """(all parameters, non-zero ones), counting masked weights as they compute."""
    total = nonzero = 0
    seen: set[int] = set()
    for m in module.modules():
        for p in m.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            nonzero += int(torch.count_nonzero(p.detach()))
        if parametrize.is_parametrized(m):
            plist: Any = m.parametrizations
            for tname in plist:
                orig = plist[tname].original
                seen.add(id(orig))
                t = getattr(m, tname).detach()
                total += t.numel()
                nonzero += int(torch.count_nonzero(t))
    return total, nonzero


class Pruning:
    """A pruning run attached to a module. Made by `prune_module`.

    step(): advance the schedule by one (call it after each optimizer step
    for `gradual`, once per round for `lottery`; a no-op once the target is
    reached). rewind(): lottery only, survivors back to the weights the
    module had when it was given. sparsity(), report(): measured on the
    module. masks(): name -> bool mask. finalize(): plain weights, zeros baked in.
    """

    def __init__(self, module: nn.Module, settings: PruneSettings, layers: dict[str, nn.Module],
                 cuts: list[GroupCut] | None = None, shapes_before: dict[str, tuple[int, ...]] | None = None,
                 params_before: int = 0) -> None:
        self.module = module
        self.settings = settings
        self.criterion: Criterion = get_criterion(settings.criterion)
        self.layers = layers
        self.cuts = cuts
        self.shapes_before = shapes_before or weight_shapes(module, layers)
        self.params_before = params_before
        self.t = 0
        self.finalized = False
        self.initial: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.start = 0.0
        self.current = 0.0
        self.dead: set[str] = set()

    # -- unstructured machinery -------------------------------------------------
    def _attach(self) -> None:
        """Register the mask parametrizations; existing zeros count as pruned."""
        self.start = self.current = self.sparsity()
        if self.settings.sparsity < self.start - 1e-12:
            raise UserError(f"the pruned layers are already {self.start:.4f} sparse; ask for a sparsity >= that")
        if self.settings.schedule.name == "lottery":
            tensors = [*self.module.parameters(), *self.module.buffers()]
            self.initial = [(t, t.detach().clone()) for t in tensors]
        try:
            for m in self.layers.values():
                w = weight_of(m)
                parametrize.register_parametrization(m, "weight", WeightMask((w != 0).to(w.dtype)))
            self._apply(self.settings.schedule.target(0, self.start, self.settings.sparsity))
        except BaseException:
            for m in self.layers.values():  # leave the module as it was given (masks only held its zeros)
                bake(m)
            raise

    def _mask_of(self, m: nn.Module) -> torch.Tensor:
        plist: Any = m.parametrizations
        return plist.weight[0].mask  # type: ignore[no-any-return]

    def _apply(self, target: float) -> None:
        if target <= self.current:
            return
        scores = {n: self.criterion.weight_scores(original_of(m), self.settings.seed + self.t)
                  for n, m in self.layers.items()}
        old = {n: self._mask_of(m).detach().cpu().numpy() != 0 for n, m in self.layers.items()}
        make = global_magnitude_masks if self.settings.scope == "global" else layer_magnitude_masks
        new = make(scores, target, masks=old)
        with torch.no_grad():
            for n, m in self.layers.items():
                mask = self._mask_of(m)
                mask.copy_(torch.from_numpy(new[n]).to(mask.dtype))
        dead = [n for n in self.layers if not new[n].any() and n not in self.dead]
        if dead:
            self.dead.update(dead)
            warnings.warn(f"the global ranking pruned every weight of {', '.join(dead)}: nothing flows through "
                          "it any more (its weights are smaller than the others', e.g. untrained or a wide "
                          "fan-in). Use scope='layer', or ignore= those layers", UserWarning, stacklevel=3)
        self.current = target

    # -- public API -------------------------------------------------------------
    @property
    def target(self) -> float:
        """The sparsity the schedule asks for now."""
        return self.current if self.cuts is None else self.settings.sparsity

    @property
    def steps(self) -> int:
        """`step()` calls after which the final sparsity is reached."""
        return self.settings.schedule.steps_to_target(self.start, self.settings.sparsity)

    @property
    def done(self) -> bool:
        return self.cuts is not None or self.t >= self.steps

    def step(self) -> float:
        """Advance the schedule by one step; returns the target sparsity now."""
        if self.finalized:
            raise UserError("this pruning was finalized; call prune_module again to prune further")
        self.t += 1
        if self.cuts is None:
            self._apply(self.settings.schedule.target(self.t, self.start, self.settings.sparsity))
        return self.target

    def rewind(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Lottery rewinding: every parameter and buffer back to the value it
        had when `prune_module` was called, masks kept (pruned entries stay
        zero). optimizer: its state (moments, momentum) is cleared too."""
        if not self.initial:
            raise UserError("rewind() needs schedule='lottery' (which keeps a copy of the initial weights)")
        if self.finalized:
            raise UserError("this pruning was finalized; rewind before finalize()")
        with torch.no_grad():
            for tensor, value in self.initial:
                tensor.copy_(value)
        if optimizer is not None:
            optimizer.state.clear()

    def masks(self) -> dict[str, torch.Tensor]:
        """weight name -> bool mask (True = kept), measured from the module."""
        return {f"{n}.weight": weight_of(m) != 0 for n, m in self.layers.items()}

    def sparsity(self) -> float:
        """Measured: the fraction of pruned-layer weights that are zero
        (magnitude), or of prunable channels removed (structured)."""
        if self.cuts is not None:
            total = sum(c.channels for c in self.cuts)
            return sum(len(c.removed) for c in self.cuts) / total if total else 0.0
        total = zeros = 0
        for m in self.layers.values():
            w = weight_of(m)
            total += w.numel()
            zeros += w.numel() - int(torch.count_nonzero(w))
        return zeros / total if total else 0.0

    def report(self) -> Report:
        """Per-layer rows measured on the module now."""
        rows = []
        names = dict(self.module.named_modules())
        for name, before in self.shapes_before.items():
            m = names.get(name)
            w = weight_of(m) if m is not None else torch.zeros(0)
            kind = base_class(m).__name__ if m is not None else "removed"
            rows.append(LayerRow(name=name, kind=kind, shape_before=before, shape=tuple(w.shape),
                                 weights_before=int(np.prod(before)), weights=w.numel(),
                                 nonzero=int(torch.count_nonzero(w)), pruned=name in self.layers))
        params, nonzero = _param_count(self.module)
        return Report(method=self.settings.method, sparsity=self.sparsity(), params_before=self.params_before,
                      params=params, nonzero_params=nonzero, rows=tuple(rows))

    def finalize(self) -> nn.Module:
        """Bake the masks into plain weights (zeros stay zero) and remove the
        parametrizations; returns the module. The Parameter objects are kept,
        so the user's optimizer still works. Idempotent."""
        if not self.finalized and self.cuts is None:
            for m in self.layers.values():
                bake(m)
        self.finalized = True
        self.initial = []
        return self.module

    def __repr__(self) -> str:
        s = self.settings
        return (f"Pruning(method={s.method!r}, scope={s.scope!r}, schedule={s.schedule.name!r}, "
                f"target={s.sparsity}, step={self.t}/{self.steps}, sparsity={self.sparsity():.4f}, "
                f"layers={len(self.layers)}{', finalized' if self.finalized else ''})")


def prune_module(
    module: nn.Module,
    sparsity: float,
    *,
    scope: str = "global",
    method: str = "magnitude",
    schedule: str | Schedule | None = None,
    ignore: Iterable[LayerSpec] = (),
    example_input: Any = None,
    criterion: str = "l1",
    include: Iterable[LayerSpec] = (),
    steps: int | None = None,
    seed: int = 0,
) -> Pruning:
    """Prune `module` in place and return the `Pruning` that drives it.

    sparsity: target in [0, 1). scope: "global" | "layer". method:
    "magnitude" (single weights of every Linear/Conv, held at zero by a
    parametrization) or "structured" (whole channels/neurons removed with
    Torch-Pruning; needs `example_input`, a batch the module accepts, to
    trace it). schedule: "oneshot" (default), "gradual" (with `steps`, the
    total optimizer steps of your loop) or "lottery", or a Schedule object.
    ignore / include: module names ("fc", "layer2" with its children) or
    types (nn.Embedding) to leave out / prune in addition. criterion: one of
    `list_criteria()`. seed: for the random criterion.
    """
    if not isinstance(module, nn.Module):
        raise UserError(f"prune_module takes a torch.nn.Module, got {type(module).__name__}")
    settings = PruneSettings(sparsity=sparsity, scope=scope, method=method, criterion=criterion,
                             schedule=make_schedule(schedule, steps), ignore=tuple(ignore), include=tuple(include),
                             seed=seed)
    params_before = _param_count(module)[0]
    if settings.method == "structured":
        if example_input is None:
            raise UserError("method='structured' needs example_input=, a batch shaped like your data "
                            "(e.g. torch.zeros(1, 1, 28, 28)), to trace the module")
        layers = target_layers(module, settings.ignore, ())
        shapes = weight_shapes(module, layers)
        ignored = [m for n, m in module.named_modules() if isinstance(m, PRUNABLE) and n not in layers]
        cuts = prune_channels(module, settings.sparsity, example_input=example_input,
                              criterion=get_criterion(settings.criterion), scope=settings.scope,
                              ignore=ignored, seed=settings.seed)
        return Pruning(module, settings, layers, cuts=cuts, shapes_before=shapes, params_before=params_before)
    layers = target_layers(module, settings.ignore, settings.include)
    pruning = Pruning(module, settings, layers, params_before=params_before)
    pruning._attach()
    return pruning

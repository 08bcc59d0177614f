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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelab.errors import UserError
from prunelab.prune.engine.criteria import Criterion, get_criterion
from prunelab.prune.engine.parametrized import bake, base_class
from prunelab.prune.engine.schedules import SCHEDULES, Schedule, make_schedule
from prunelab.prune.engine.structured import PRUNABLE, GroupCut, prune_channels
from prunelab.prune.finetune import DEFAULT_RECIPE, Recipe
from prunelab.prune.masks import check_sparsity, global_magnitude_masks, layer_magnitude_masks

SCOPES = ("global", "layer")
METHODS = ("magnitude", "structured")
BUDGETS = ("sensitivity",)

LayerSpec = str | type  # a module name ("layer1" or "layer1.conv.weight") or a module type (nn.Embedding)


def list_methods() -> list[str]:
    return list(METHODS)


def list_scopes() -> list[str]:
    return list(SCOPES)


def default_scope(method: str) -> str:
    """'global' for magnitude pruning; 'layer' for structured, where a global
    ranking emptied fc1 first and lost 1.3 pp at 75% vs +0.04 (docs/pruning.md)."""
    return "layer" if method == "structured" else "global"


def default_schedule(method: str) -> str:
    """`prunelab.prune`'s schedule: gradual for magnitude pruning (it beat
    one-shot at 90/95/98% on LeNet-300-100, docs/pruning.md); structured
    pruning is one-shot only. (`prune_module` defaults to one-shot: your loop
    decides how long it trains.)"""
    return "oneshot" if method == "structured" else "gradual"


def _check_int(value: Any, what: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a non-negative integer" if low == 0 else f"an integer >= {low}"
        raise UserError(f"{what} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class PruneSettings:
    """Everything that decides a pruning run, validated once, here.

    `prune_module` reads the first group; `prunelab.prune` (which also
    fine-tunes a stored model and stores the child) reads all of them.

    sparsity: fraction in [0, 1) of the pruned weights set to zero
    (magnitude) or of the prunable channels/hidden units removed
    (structured). scope: "global" (one ranking over all pruned layers) or
    "layer" (each layer to `sparsity`); None: global for magnitude, layer
    for structured. method: "magnitude" (single weights) or "structured"
    (whole channels/neurons). criterion: a name from `list_criteria()`.
    schedule: a `Schedule` object or a name from `list_schedules()`; None:
    gradual for magnitude, one-shot for structured (`prune_module` passes
    one-shot unless told). ignore / include: module names or types left out
    / pruned in addition to Linear and Conv layers ("fc3" or "fc3.weight";
    a comma-separated string is split). layer_sparsity: layer name -> its
    own sparsity (the rest of the budget is spent on the other layers; with
    a gradual or lottery schedule these targets rise along with the overall
    one). seed: for the random criterion, and `prunelab.prune`'s
    fine-tune shuffling.

    Used by `prunelab.prune` only (`prune_module` leaves training to your
    loop): recipe (default `DEFAULT_RECIPE`) and the overrides
    finetune_epochs (None: the parent's own training epochs), lr, distill
    (weight in [0, 1] of distillation from the dense parent); budget:
    "sensitivity" picks per-layer sparsities from a sensitivity scan;
    threads: torch CPU threads (None: torch's).
    """

    sparsity: float
    scope: str | None = None
    method: str = "magnitude"
    criterion: str = "l1"
    schedule: Schedule | str | None = None
    ignore: tuple[LayerSpec, ...] = ()
    include: tuple[LayerSpec, ...] = ()
    layer_sparsity: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    recipe: Recipe | None = None
    finetune_epochs: int | None = None
    lr: float | None = None
    distill: float | None = None
    budget: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once, here
        set_(self, "sparsity", check_sparsity(self.sparsity, "--sparsity"))
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        set_(self, "scope", self.scope or default_scope(self.method))
        if self.scope not in SCOPES:
            raise UserError(f"unknown scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        get_criterion(self.criterion)
        schedule = self.schedule if self.schedule is not None else default_schedule(self.method)
        if not isinstance(schedule, (Schedule, str)):
            raise UserError(f"schedule must be a name or a Schedule object, got {schedule!r}")
        if isinstance(schedule, str) and schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
        set_(self, "schedule", schedule)
        if self.method == "structured" and self.schedule_name != "oneshot":
            raise UserError("structured pruning is one-shot (schedule 'oneshot'): drop the schedule and "
                            "fine-tune afterwards")
        if self.method == "structured" and self.include:
            raise UserError("include= is for unstructured pruning; structured pruning works on Linear/Conv channels")
        set_(self, "ignore", _layer_specs(self.ignore))
        set_(self, "include", _layer_specs(self.include))
        for spec in (*self.ignore, *self.include):
            if not isinstance(spec, str) and not (isinstance(spec, type) and issubclass(spec, nn.Module)):
                raise UserError(f"ignore/include take module names or nn.Module types, got {spec!r}")
        if not isinstance(self.layer_sparsity, Mapping):
            raise UserError(f"layer_sparsity must map layer names to sparsities like {{'fc3': 0.5}}, "
                            f"got {self.layer_sparsity!r}")
        set_(self, "layer_sparsity", {str(k).strip(): check_sparsity(v, f"layer sparsity of {k}")
                                      for k, v in self.layer_sparsity.items()})
        _check_int(self.seed, "--seed", 0)
        if self.threads is not None:
            _check_int(self.threads, "--threads", 1)
        if self.budget is not None and self.budget not in BUDGETS:
            raise UserError(f"unknown budget {self.budget!r}; choose from {', '.join(BUDGETS)}")
        if self.budget == "sensitivity" and self.method != "magnitude":
            raise UserError("--budget sensitivity works with --method magnitude")
        if self.recipe is not None and not isinstance(self.recipe, Recipe):
            raise UserError(f"recipe must be a prunelab.prune.Recipe, got {type(self.recipe).__name__}")
        self.finetune_recipe()  # bad epochs / lr / distill fail here, before any work

    @property
    def schedule_name(self) -> str:
        s = self.schedule
        return s.name if isinstance(s, Schedule) else str(s)

    def finetune_recipe(self, train_config: Mapping[str, Any] | None = None) -> Recipe:
        """The fine-tune recipe: `recipe` (default `DEFAULT_RECIPE`) with the
        finetune_epochs / lr / distill overrides; epochs None becomes the
        parent's training epochs (`train_config`, default 8). Lottery without
        an explicit recipe retrains each round with the parent's own training
        recipe (lr, optimizer, lr schedule), as Frankle & Carbin do."""
        tcfg = dict(train_config or {})
        rec = (self.recipe or DEFAULT_RECIPE).with_(epochs=self.finetune_epochs, lr=self.lr, distill=self.distill)
        if train_config is None:
            return rec
        rec = rec.with_(epochs=rec.epochs if rec.epochs is not None else int(tcfg.get("epochs", 8)))
        if self.schedule_name == "lottery" and self.recipe is None:
            rec = rec.with_(lr=self.lr if self.lr is not None else tcfg.get("lr"), optimizer=tcfg.get("optimizer"),
                            lr_schedule=tcfg.get("lr_schedule"))
        return rec

    def with_(self, **changes: Any) -> PruneSettings:
        """A copy with `changes` applied and validated again."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (types become their names, the recipe a dict)."""
        def names(specs: tuple[LayerSpec, ...]) -> list[str]:
            return [s if isinstance(s, str) else s.__name__ for s in specs]

        return {"sparsity": self.sparsity, "scope": self.scope, "method": self.method,
                "criterion": self.criterion, "schedule": self.schedule_name, "ignore": names(self.ignore),
                "include": names(self.include), "layer_sparsity": dict(self.layer_sparsity), "seed": self.seed,
                "recipe": self.recipe.to_dict() if self.recipe is not None else None,
                "finetune_epochs": self.finetune_epochs, "lr": self.lr, "distill": self.distill,
                "budget": self.budget, "threads": self.threads}


def _layer_specs(specs: Any) -> tuple[LayerSpec, ...]:
    """A tuple of layer specs from a tuple/list, or a comma-separated string of names."""
    if isinstance(specs, str):
        return tuple(v.strip() for v in specs.split(",") if v.strip())
    return tuple(v.strip() if isinstance(v, str) else v for v in specs)


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
    module had when it was given (or those given to `set_rewind`).
    sparsity(), report(): measured on the module. masks(): name -> bool
    mask. finalize(): plain weights, zeros baked in.
    """

    def __init__(self, module: nn.Module, settings: PruneSettings, layers: dict[str, nn.Module],
                 cuts: list[GroupCut] | None = None, shapes_before: dict[str, tuple[int, ...]] | None = None,
                 params_before: int = 0) -> None:
        self.module = module
        self.settings = settings
        self.schedule: Schedule = make_schedule(settings.schedule)
        self.criterion: Criterion = get_criterion(settings.criterion)
        self.layers = layers
        self.fixed = _layer_targets(settings.layer_sparsity, layers) if cuts is None else {}
        self.cuts = cuts
        self.shapes_before = shapes_before or weight_shapes(module, layers)
        self.params_before = params_before
        self.t = 0
        self.finalized = False
        self.initial: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.initial_names: list[str] = []
        self.start = 0.0
        self.current = 0.0
        self.dead: set[str] = set()

    # -- unstructured machinery -------------------------------------------------
    def _attach(self) -> None:
        """Register the mask parametrizations; existing zeros count as pruned."""
        self.start = self.current = self.sparsity()
        if self.settings.sparsity < self.start - 1e-12:
            raise UserError(f"the pruned layers are already {self.start:.4f} sparse; ask for a sparsity >= that")
        if self.schedule.name == "lottery":
            named = [*self.module.named_parameters(), *self.module.named_buffers()]
            self.initial_names = [n for n, _ in named]
            self.initial = [(t, t.detach().clone()) for _, t in named]
        try:
            for m in self.layers.values():
                w = weight_of(m)
                parametrize.register_parametrization(m, "weight", WeightMask((w != 0).to(w.dtype)))
            self._apply(self.schedule.target(0, self.start, self.settings.sparsity))
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
        new = make(scores, target, masks=old, layer_sparsity=self._fixed_at(target, old))
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

    def _fixed_at(self, target: float, old: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The layer_sparsity targets when the overall target is `target`: they
        rise in proportion along the schedule, never below a layer's current sparsity."""
        s_f = self.settings.sparsity
        frac = 1.0 if s_f == self.start else (target - self.start) / (s_f - self.start)
        return {n: max(v * frac, float((~old[n]).mean())) for n, v in self.fixed.items()}

    # -- public API -------------------------------------------------------------
    @property
    def target(self) -> float:
        """The sparsity the schedule asks for now."""
        return self.current if self.cuts is None else self.settings.sparsity

    @property
    def steps(self) -> int:
        """`step()` calls after which the final sparsity is reached."""
        return self.schedule.steps_to_target(self.start, self.settings.sparsity)

    @property
    def done(self) -> bool:
        return self.cuts is not None or self.t >= self.steps

    def step(self) -> float:
        """Advance the schedule by one step; returns the target sparsity now."""
        if self.finalized:
            raise UserError("this pruning was finalized; call prune_module again to prune further")
        self.t += 1
        if self.cuts is None:
            self._apply(self.schedule.target(self.t, self.start, self.settings.sparsity))
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

    def set_rewind(self, state: Mapping[str, Any]) -> None:
        """Lottery: make `rewind()` restore `state` (names as in the module's
        `state_dict()` before pruning, e.g. "fc1.weight"; tensors or arrays)
        instead of the values the module had when it was given: prune a
        trained module, rewind to its weights at initialisation. Entries not
        in `state` keep their saved values."""
        if not self.initial:
            raise UserError("set_rewind() needs schedule='lottery' (which keeps a copy of the initial weights)")
        index = {n: i for i, n in enumerate(self.initial_names)}
        unknown = [n for n in state if n not in index]
        if unknown:
            raise UserError(f"set_rewind: no parameter or buffer named {', '.join(map(repr, unknown))}; "
                            f"names are: {', '.join(self.initial_names)}")
        for name, value in state.items():
            tensor, saved = self.initial[index[name]]
            new = torch.as_tensor(value).to(dtype=saved.dtype, device=saved.device).clone()
            if new.shape != saved.shape:
                raise UserError(f"set_rewind: {name} has shape {tuple(new.shape)}, the module's is "
                                f"{tuple(saved.shape)}")
            self.initial[index[name]] = (tensor, new)

    def mask_arrays(self) -> dict[str, np.ndarray]:
        """weight name -> bool mask (True = kept) as held by the parametrization
        (unlike `masks()`, a kept weight that happens to be zero counts as kept).
        Unstructured pruning before `finalize()` only."""
        if self.cuts is not None or self.finalized:
            raise UserError("mask_arrays() is for unstructured pruning before finalize(); use masks()")
        return {f"{n}.weight": self._mask_of(m).detach().cpu().numpy() != 0 for n, m in self.layers.items()}

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
        return (f"Pruning(method={s.method!r}, scope={s.scope!r}, schedule={s.schedule_name!r}, "
                f"target={s.sparsity}, step={self.t}/{self.steps}, sparsity={self.sparsity():.4f}, "
                f"layers={len(self.layers)}{', finalized' if self.finalized else ''})")


def _layer_targets(layer_sparsity: Mapping[str, float], layers: Mapping[str, nn.Module]) -> dict[str, float]:
    """layer_sparsity with keys resolved to pruned layer names ("fc3.weight" -> "fc3")."""
    out: dict[str, float] = {}
    for key, value in layer_sparsity.items():
        name = key.removesuffix(".weight")
        if name not in layers:
            raise UserError(f"layer_sparsity: no pruned layer named {key!r}; pruned layers are: {', '.join(layers)}")
        out[name] = value
    return out


def prune_with(module: nn.Module, settings: PruneSettings, example_input: Any = None) -> Pruning:
    """`prune_module` from a `PruneSettings` (whose schedule must be an object
    or a name that needs no parameters: gradual needs `Gradual(steps=...)`)."""
    if not isinstance(module, nn.Module):
        raise UserError(f"prune_module takes a torch.nn.Module, got {type(module).__name__}")
    make_schedule(settings.schedule)  # a gradual schedule named without its steps fails before any change
    params_before = _param_count(module)[0]
    if settings.method == "structured":
        if example_input is None:
            raise UserError("method='structured' needs example_input=, a batch shaped like your data "
                            "(e.g. torch.zeros(1, 1, 28, 28)), to trace the module")
        if settings.layer_sparsity:
            raise UserError("layer_sparsity= is for unstructured pruning; structured pruning takes one sparsity")
        layers = target_layers(module, settings.ignore, ())
        shapes = weight_shapes(module, layers)
        ignored = [m for n, m in module.named_modules() if isinstance(m, PRUNABLE) and n not in layers]
        cuts = prune_channels(module, settings.sparsity, example_input=example_input,
                              criterion=get_criterion(settings.criterion), scope=str(settings.scope),
                              ignore=ignored, seed=settings.seed)
        return Pruning(module, settings, layers, cuts=cuts, shapes_before=shapes, params_before=params_before)
    layers = target_layers(module, settings.ignore, settings.include)
    pruning = Pruning(module, settings, layers, params_before=params_before)
    pruning._attach()
    return pruning


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
    layer_sparsity: Mapping[str, float] | None = None,
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
    `list_criteria()`. seed: for the random criterion. layer_sparsity:
    layer name -> its own sparsity, the rest of the budget spread by `scope`
    (magnitude only).
    """
    if not isinstance(module, nn.Module):
        raise UserError(f"prune_module takes a torch.nn.Module, got {type(module).__name__}")
    settings = PruneSettings(sparsity=sparsity, scope=scope, method=method, criterion=criterion,
                             schedule=make_schedule(schedule, steps), ignore=tuple(ignore), include=tuple(include),
                             seed=seed, layer_sparsity=dict(layer_sparsity or {}))
    return prune_with(module, settings, example_input)

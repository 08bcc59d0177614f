"""`prunelab.prune(model, sparsity=0.9, ...)`: prune, fine-tune, store a child.

A client of the module-level engine (`prunelab.prune.engine`): the parent's
network is built from its stored spec, the engine prunes it (criteria and
schedules from the engine's registries, masks held by its parametrization),
our loop fine-tunes it, and the child is stored as arrays + spec. It is
always rebuilt from the spec (never from a live torch module).

    settings = PruneSettings(sparsity=0.95, schedule="oneshot")
    prunelab.prune("my-model", settings)                 # or, the same:
    prunelab.prune("my-model", sparsity=0.95, schedule="oneshot")
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from prunelab.data.datasets import Dataset
from prunelab.errors import UserError
from prunelab.models.builder import get_weights
from prunelab.models.model import Model
from prunelab.progress import Callback, Event
from prunelab.prune import masks as M
from prunelab.prune import structured as S
from prunelab.prune.engine.pruning import (
    BUDGETS,
    METHODS,
    SCOPES,
    PruneSettings,
    Pruning,
    default_schedule,
    default_scope,
    list_methods,
    list_scopes,
    prune_with,
)
from prunelab.prune.engine.schedules import Gradual, Lottery, OneShot
from prunelab.prune.finetune import Recipe, distillation_loss, logits_of
from prunelab.prune.parent import initial_weights, resolve_model, train_config, training_data
from prunelab.prune.sensitivity import sensitivity
from prunelab.train import evaluate, fit, set_threads, to_input, versions

if TYPE_CHECKING:
    from prunelab.store import Store

__all__ = [
    "BUDGETS", "METHODS", "SCOPES", "PruneResult", "PruneSettings", "default_schedule", "default_scope",
    "initial_weights", "list_methods", "list_scopes", "make_settings", "prune", "resolve_settings", "train_config",
]

LOTTERY_RATE = 0.2  # Frankle & Carbin: each round prunes 20% of the remaining weights


@dataclass
class PruneResult:
    """A pruned, fine-tuned child and how it got there.

    sparsity: achieved fraction of prunable weights that are zero (magnitude)
    or of hidden neurons/filters removed (structured). Accuracies in [0, 1]:
    `val_accuracy` on the validation split held out of the training data (make
    choices on it), `test_accuracy` on the test split (report it).
    history: one dict per fine-tune epoch (epoch, train_loss, train_accuracy,
    test_accuracy, seconds, sparsity; lottery rounds add `round`).
    """

    model: Model
    parent: str | None
    sparsity: float
    accuracy_before_finetune: float
    test_accuracy: float
    seconds: float
    parent_accuracy: float | None = None
    val_accuracy: float | None = None
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str | None:
        return self.model.id

    def to_dict(self) -> dict[str, Any]:
        m = self.model
        return {
            "id": m.id, "name": m.name, "parent": self.parent, "kind": m.meta.get("kind", "pruned"),
            "sparsity": self.sparsity, "weight_sparsity": m.sparsity(),
            "accuracy_before_finetune": self.accuracy_before_finetune, "test_accuracy": self.test_accuracy,
            "val_accuracy": self.val_accuracy, "parent_accuracy": self.parent_accuracy,
            "params": m.params(), "nonzero": m.nonzero(),
            "layer_sparsity": self.layer_sparsity, "layers": _layer_sizes(m), "seconds": self.seconds,
            "settings": self.settings, "history": self.history,
        }

    def __repr__(self) -> str:
        return (f"PruneResult(id={self.model.id!r}, parent={self.parent!r}, sparsity={self.sparsity:.4f}, "
                f"accuracy_before_finetune={self.accuracy_before_finetune:.4f}, "
                f"test_accuracy={self.test_accuracy:.4f}, seconds={self.seconds:.1f})")


def _layer_sizes(model: Model) -> dict[str, list[int]]:
    return {la.name: list(la.weight_shape()) for la in model.spec.weight_layers()}


_FIELDS = frozenset(f.name for f in fields(PruneSettings))
_ALIASES = {"ignore_layers": "ignore"}  # the spec API's older keyword names


def make_settings(settings: PruneSettings | float | None = None, **overrides: Any) -> PruneSettings:
    """The run's `PruneSettings`: `settings` (a number is the sparsity; None:
    sparsity 0.9) with the keyword `overrides` applied, validated once (by
    `PruneSettings`). `ignore_layers=` is accepted for `ignore=`."""
    for old, new in _ALIASES.items():
        if old in overrides:
            if new in overrides:
                raise TypeError(f"give {new}= or {old}=, not both")
            overrides[new] = overrides.pop(old)
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise TypeError(f"prune() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"settings are: {', '.join(sorted(_FIELDS))}")
    if isinstance(settings, PruneSettings):
        return settings.with_(**overrides) if overrides else settings
    if settings is not None and "sparsity" in overrides:
        raise TypeError("sparsity given twice (positionally and as sparsity=)")
    return PruneSettings(**{"sparsity": 0.9 if settings is None else settings, **overrides})


def resolve_settings(sparsity: Any, method: str, scope: str | None,
                     schedule: str | None) -> tuple[float, str, str]:
    """(sparsity, scope, schedule name) with the measured defaults filled in,
    checked by `PruneSettings`, so that callers that must fail before queueing
    work (the explorer) give the same answers as `prune` itself."""
    s = PruneSettings(sparsity=sparsity, method=method, scope=scope, schedule=schedule)
    return s.sparsity, str(s.scope), s.schedule_name


@dataclass(frozen=True)
class _Run:
    """What every fine-tune of one `prune` call shares: the parent's training
    data (x: (N, C, H, W) float, y: (N,) int64), the test split the history
    reports, the recipe, the distillation teacher's logits, seed, callback."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int
    rec: Recipe
    teacher: torch.Tensor | None
    seed: int
    cb: Callback

    def accuracy(self, module: torch.nn.Module) -> float:
        return evaluate(module, self.x_test, self.y_test, classes=self.classes).accuracy

    def finetune(self, module: torch.nn.Module, phase: str = "finetune", epochs: int | None = None,
                 rec: Recipe | None = None, seed: int | None = None,
                 before_step: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Train `module` in place; its zeros are held by the engine's masks, not by `fit`."""
        rec = rec or self.rec
        loss_fn = distillation_loss(self.teacher, rec.distill, rec.temperature) if self.teacher is not None else None
        epochs = (rec.epochs or 0) if epochs is None else epochs
        return fit(module, self.x, self.y, epochs=epochs, lr=rec.lr, warmup_steps=rec.warmup_steps(len(self.y), epochs),
                   batch_size=rec.batch_size, optimizer=rec.optimizer, lr_schedule=rec.lr_schedule,
                   seed=self.seed if seed is None else seed, x_val=self.x_test, y_val=self.y_test,
                   callback=self.cb, loss_fn=loss_fn, phase=phase, before_step=before_step)

    def split(self) -> tuple[int, bool]:
        """(epochs of the first run, whether an annealed second run follows): with
        `rec.anneal`, the first gradual_fraction of the epochs run at
        `rec.lr_schedule`, the rest with the lr annealed to zero (cosine)."""
        epochs = self.rec.epochs or 0
        if not (self.rec.anneal and epochs >= 2):
            return epochs, False
        return max(1, min(epochs - 1, round(epochs * self.rec.gradual_fraction))), True

    def anneal_tail(self, module: torch.nn.Module, first: int) -> list[dict[str, Any]]:
        """The annealed second run (masks fixed, lr cosine to 0, seed + 1), epochs numbered on."""
        tail = self.finetune(module, phase="anneal", epochs=(self.rec.epochs or 0) - first,
                             rec=self.rec.with_(lr_schedule="cosine", warmup=0.0), seed=self.seed + 1)
        for row in tail:
            row["epoch"] += first
        return tail

    def finetune_annealed(self, module: torch.nn.Module) -> list[dict[str, Any]]:
        """Fixed masks, the same lr profile as the gradual schedule (so the two compare fairly)."""
        first, anneal = self.split()
        hist = self.finetune(module, epochs=first)
        return hist + self.anneal_tail(module, first) if anneal else hist


def prune(
    model: Model | str,
    settings: PruneSettings | float | None = None,
    *,
    dataset: Dataset | None = None,
    store: Store | None = None,
    name: str | None = None,
    callback: Callback | None = None,
    **overrides: Any,
) -> PruneResult:
    """Prune `model`, fine-tune it and return the child.

    model: a `Model` or the id/name of one in `store` (default store:
    $PRUNELAB_HOME). The child is saved to `store` when one is given or the
    model was named by id; otherwise it is returned unsaved.
    settings: a `PruneSettings` (or just the sparsity); keyword `overrides`
    set or replace its fields: sparsity (default 0.9), scope, method,
    criterion, schedule, ignore (alias ignore_layers), layer_sparsity,
    budget, recipe, finetune_epochs, lr, distill, threads, seed; see
    `PruneSettings`. Ignored layers stay dense but count in the overall
    sparsity ("fraction of prunable weights"). dataset: base dataset (default:
    the one the parent was trained on); the parent's train_limit and split are
    reused so fine-tuning sees the parent's training data. callback: progress
    events (phase 'finetune'); raising `Cancelled` stops the run and nothing
    is stored.
    """
    t_start = time.perf_counter()
    s = make_settings(settings, **overrides)
    parent, store = resolve_model(model, store)
    if store is not None:
        if name is not None:
            name = store.check_new_name(name)
        if parent.id is not None:
            store.resolve(parent.id)  # the parent must live in the store the child goes to
    weight_names = parent.weight_names()
    if not all(isinstance(v, str) for v in s.ignore) or s.include:
        raise UserError("prunelab.prune takes layer names in ignore= (e.g. 'fc3'); types and include= are "
                        "for prune_module")
    ignored = M.resolve_layer_names([str(v) for v in s.ignore], weight_names)
    fixed = {M.resolve_layer_names([k], weight_names)[0]: v for k, v in s.layer_sparsity.items()}
    if s.method == "structured":  # impossible targets fail before any data is loaded
        _select_units(parent, s, ignored, fixed)
    elif s.budget is None:
        _engine_prune(parent.to_torch(), s, ignored, fixed, OneShot())
    tcfg = train_config(parent)
    rec = s.finetune_recipe(tcfg)
    used_threads = set_threads(s.threads)
    ds, data_info = training_data(parent, dataset)
    x, y = to_input(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = to_input(ds.x_test), torch.from_numpy(ds.y_test)
    cb = callback or (lambda e: None)
    parent_module = parent.to_torch()
    parent_acc = evaluate(parent_module, x_test, y_test, classes=ds.classes).accuracy
    scope = str(s.scope)
    if s.budget == "sensitivity":
        fixed = {**sensitivity(parent, dataset=dataset).budget(s.sparsity, ignore=ignored), **fixed}
        scope = "layer"
        s = s.with_(scope=scope)

    settings_out = {
        "method": s.method, "scope": scope, "schedule": s.schedule_name, "criterion": s.criterion,
        "target_sparsity": s.sparsity, "ignore_layers": ignored, "layer_sparsity": fixed, "budget": s.budget,
        "seed": s.seed, "recipe": rec.to_dict(), "finetune_epochs": rec.epochs, "lr": rec.lr, "distill": rec.distill,
    }
    run = _Run(x=x, y=y, x_test=x_test, y_test=y_test, classes=ds.classes, rec=rec,
               teacher=logits_of(parent_module, x) if rec.distill > 0 else None, seed=s.seed, cb=cb)
    if s.method == "structured":
        child, achieved, per_layer, acc_before, history = _structured(parent, s, ignored, fixed, run)
    else:
        child, achieved, per_layer, acc_before, history = _magnitude(parent, s, ignored, fixed, run, tcfg)

    module = child.to_torch()
    test = evaluate(module, x_test, y_test, classes=ds.classes)
    assert ds.x_val is not None and ds.y_val is not None  # training_data always carves one
    val = evaluate(module, to_input(ds.x_val), torch.from_numpy(ds.y_val), classes=ds.classes)
    seconds = time.perf_counter() - t_start
    config = {
        **settings_out,
        "dataset": data_info["dataset"], "train_limit": data_info["train_limit"],
        "val_fraction": data_info["val_fraction"], "data_seed": data_info["data_seed"],
        "val_seen_by_parent": data_info["val_seen_by_parent"], "val_count": int(len(ds.y_val)),
        "threads": used_threads, "train": tcfg,
    }
    child.meta = {
        "name": name, "parent": parent.id, "kind": "pruned",
        "metrics": {"test_accuracy": test.accuracy, "test_loss": test.loss, "confusion": test.confusion,
                    "val_accuracy": val.accuracy, "accuracy_before_finetune": acc_before, "parent_accuracy": parent_acc,
                    "sparsity_achieved": achieved, "layer_sparsity": per_layer,
                    "finetune_seconds": seconds},
        "history": history, "config": config, "dataset": ds.describe(), "seed": s.seed, "versions": versions(),
    }
    if store is not None:
        child = store.save(child)
    cb(Event("info", phase="prune", message=f"child {child.id}: accuracy {test.accuracy:.4f}"))
    return PruneResult(model=child, parent=parent.id, sparsity=achieved, accuracy_before_finetune=acc_before,
                       test_accuracy=test.accuracy, seconds=seconds, parent_accuracy=parent_acc,
                       val_accuracy=val.accuracy, layer_sparsity=per_layer, history=history,
                       settings=settings_out)


def _engine_prune(module: torch.nn.Module, s: PruneSettings, ignored: list[str], fixed: Mapping[str, float],
                  schedule: OneShot | Gradual | Lottery) -> Pruning:
    """The engine on a module built from the spec. Ignored layers are pruned to
    their current sparsity (usually 0): they stay dense, but, unlike the
    engine's ignore=, still count in the overall sparsity, which the spec API
    defines over all prunable weights."""
    return prune_with(module, PruneSettings(
        sparsity=s.sparsity, scope=s.scope, method="magnitude", criterion=s.criterion, schedule=schedule,
        layer_sparsity={**dict.fromkeys(ignored, 0.0), **fixed}, seed=s.seed))


def _history_rows(hist: list[dict[str, Any]], sparsity: float, extra: dict[str, Any] | None = None
                  ) -> list[dict[str, Any]]:
    rows = []
    for h in hist:
        row = dict(h)
        row["test_accuracy"] = row.pop("val_accuracy")
        row["sparsity"] = sparsity
        row.update(extra or {})
        rows.append(row)
    return rows


def _magnitude(parent: Model, s: PruneSettings, ignored: list[str], fixed: dict[str, float], run: _Run,
               tcfg: dict[str, Any]) -> tuple[Model, float, dict[str, float], float, list[dict[str, Any]]]:
    rec = run.rec
    # accuracy right after pruning (one-shot to the final masks, no fine-tune)
    module: torch.nn.Module = parent.to_torch()
    pruning = _engine_prune(module, s, ignored, fixed, OneShot())
    acc_before = run.accuracy(module)
    run.cb(Event("info", phase="prune", message=f"pruned to {M.mask_sparsity(pruning.mask_arrays()):.4f}: "
                 f"accuracy before fine-tune {acc_before:.4f}", extra={"accuracy_before_finetune": acc_before}))
    history: list[dict[str, Any]] = []
    schedule = s.schedule_name
    if schedule == "oneshot" or (schedule == "gradual" and not rec.epochs):
        if rec.epochs:
            history = _history_rows(run.finetune_annealed(module), M.mask_sparsity(pruning.mask_arrays()))
    elif schedule == "gradual":
        module, pruning, history = _gradual(parent, s, ignored, fixed, run)
    else:
        module, pruning, history = _lottery(parent, s, ignored, fixed, run, tcfg)
    final = pruning.mask_arrays()
    pruning.finalize()
    child_weights = dict(parent.weights)
    child_weights.update({k: v + np.float32(0) for k, v in get_weights(module).items()})  # -0.0 -> 0.0
    child_masks = {n: m for n, m in final.items() if not m.all() or n in parent.masks}
    # no clean-up here: the engine's masks keep pruned weights at exactly zero through every
    # optimizer step, and the tests check the stored weights
    child = Model(spec=parent.spec, weights=child_weights, masks=child_masks)
    return child, M.mask_sparsity(final), M.per_layer_sparsity(final), acc_before, history


def _gradual(parent: Model, s: PruneSettings, ignored: list[str], fixed: dict[str, float], run: _Run
             ) -> tuple[torch.nn.Module, Pruning, list[dict[str, Any]]]:
    """Zhu & Gupta's ramp over the first run's optimizer steps (with anneal: all
    of them, then the annealed run at the final masks)."""
    rec = run.rec
    epochs, anneal = run.split()
    steps = max(1, math.ceil(len(run.y) / rec.batch_size)) * epochs
    ramp = Gradual(steps=steps, prune_fraction=1.0 if anneal else rec.gradual_fraction, updates=rec.gradual_updates)
    module = parent.to_torch()
    pruning = _engine_prune(module, s, ignored, fixed, ramp)

    def before_step(step: int) -> None:
        # the masks for step t come from the weights before its optimizer step: the engine's
        # step() is called once per step, between backward and the update
        if step:
            pruning.step()

    raw = run.finetune(module, epochs=epochs, before_step=before_step)
    if pruning.target < s.sparsity:  # too few steps to finish the schedule: the last update now
        pruning.step()
    history = _history_rows(raw, M.mask_sparsity(pruning.mask_arrays()))
    for i, row in enumerate(history):  # sparsity reached at the end of each epoch
        row["sparsity"] = ramp.target(min((i + 1) * steps // epochs, steps), pruning.start, s.sparsity)
    if anneal:
        history += _history_rows(run.anneal_tail(module, epochs), M.mask_sparsity(pruning.mask_arrays()))
    return module, pruning, history


def _lottery(parent: Model, s: PruneSettings, ignored: list[str], fixed: dict[str, float], run: _Run,
             tcfg: dict[str, Any]) -> tuple[torch.nn.Module, Pruning, list[dict[str, Any]]]:
    """Iterative magnitude pruning with rewinding: the parent's training was round
    0; each round prunes from the last trained weights, rewinds the survivors to
    their values at initialisation and retrains with the recipe."""
    module = parent.to_torch()
    pruning = _engine_prune(module, s, ignored, fixed, Lottery(rate=LOTTERY_RATE))
    pruning.set_rewind(initial_weights(parent, tcfg))
    rounds = max(1, pruning.steps)  # already at the target: one retraining round
    history: list[dict[str, Any]] = []
    for r in range(1, rounds + 1):
        pruning.step()
        pruning.rewind()
        raw = run.finetune(module, phase=f"lottery {r}/{rounds}")
        history += _history_rows(raw, M.mask_sparsity(pruning.mask_arrays()), {"round": r})
    return module, pruning, history


def _select_units(parent: Model, s: PruneSettings, ignored: list[str], fixed: dict[str, float]
                  ) -> dict[str, np.ndarray]:
    return S.select_units(parent.spec, parent.weights, s.sparsity, scope=str(s.scope),
                          ignore=[n.rsplit(".", 1)[0] for n in ignored],
                          layer_sparsity={n.rsplit(".", 1)[0]: v for n, v in fixed.items()},
                          criterion=s.criterion, seed=s.seed)


def _structured(parent: Model, s: PruneSettings, ignored: list[str], fixed: dict[str, float], run: _Run
                ) -> tuple[Model, float, dict[str, float], float, list[dict[str, Any]]]:
    child = S.remove_units(parent, _select_units(parent, s, ignored, fixed))
    module = child.to_torch()
    acc_before = run.accuracy(module)
    removed = S.units_removed(parent.spec, child.spec)
    run.cb(Event("info", phase="prune", message=f"removed {removed['fraction']:.4f} of hidden units: accuracy "
                 f"before fine-tune {acc_before:.4f}", extra={"accuracy_before_finetune": acc_before}))
    history: list[dict[str, Any]] = []
    if run.rec.epochs:
        # a parent pruned by magnitude before: the engine holds its zeros (prunes nothing new)
        hold = _hold_zeros(module) if child.masks else None
        history = _history_rows(run.finetune_annealed(module), removed["fraction"])
        if hold is not None:
            hold.finalize()
    out = Model(spec=child.spec, weights=get_weights(module), masks=child.masks)
    return out, removed["fraction"], removed["layers"], acc_before, history


def _hold_zeros(module: torch.nn.Module) -> Pruning:
    """An engine pruning of `module` to exactly its current sparsity: the zeros
    become masks and stay zero through fine-tuning, nothing else is pruned."""
    weights = [m.weight for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    total = sum(w.numel() for w in weights)
    zeros = sum(w.numel() - int(torch.count_nonzero(w)) for w in weights)
    return prune_with(module, PruneSettings(sparsity=zeros / total, schedule=OneShot()))

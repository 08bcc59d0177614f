"""`prunelab.prune(model, sparsity=0.9, ...)`: prune, fine-tune, store a child.

The child is always rebuilt from the parent's stored spec (never from a live
torch module): weights and masks are arrays, the network is `build(spec)`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from prunelab.data.datasets import DEFAULT_VAL_FRACTION, Dataset, limit_train, load_dataset
from prunelab.errors import UserError
from prunelab.models.builder import build, get_weights, load_weights
from prunelab.models.model import Model
from prunelab.progress import Callback, Event
from prunelab.prune import masks as M
from prunelab.prune import structured as S
from prunelab.prune.finetune import DEFAULT_RECIPE, Recipe, apply_masks, distillation_loss, logits_of
from prunelab.prune.schedules import check_schedule, gradual_plan, gradual_sparsity, lottery_rounds
from prunelab.train import evaluate, fit, set_threads, to_input, versions

if TYPE_CHECKING:
    from prunelab.store import Store

SCOPES = ("global", "layer")
METHODS = ("magnitude", "structured")
BUDGETS = ("sensitivity",)


def list_methods() -> list[str]:
    return list(METHODS)


def list_scopes() -> list[str]:
    return list(SCOPES)


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


def train_config(model: Model) -> dict[str, Any]:
    """The training config of the model's trained ancestor (copied down the lineage)."""
    cfg = model.meta.get("config") or {}
    if "train" in cfg:
        return dict(cfg["train"])
    return dict(cfg) if "arch" in cfg else {}


def _parse_layer_sparsity(spec_names: list[str], layer_sparsity: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, s in (layer_sparsity or {}).items():
        full = M.resolve_layer_names([name], spec_names)[0]
        out[full] = M.check_sparsity(s, f"layer sparsity of {name}")
    return out


def _training_data(parent: Model, dataset: Dataset | None) -> tuple[Dataset, dict[str, Any]]:
    """The parent's own training slice (same dataset, train_limit, val split and seed).

    The validation split is the parent's own when it was trained with one (it
    never saw those images); a parent trained on everything (val_fraction 0)
    gets the default share carved out here, so that pruning's choices and
    curves still use data the fine-tune does not train on.
    """
    cfg = parent.meta.get("config") or {}
    info = {"dataset": cfg.get("dataset", "mnist"), "train_limit": cfg.get("train_limit"),
            "val_fraction": cfg.get("val_fraction", 0.0) or DEFAULT_VAL_FRACTION,
            "data_seed": cfg.get("data_seed", cfg.get("seed", 0)),
            "val_seen_by_parent": not cfg.get("val_fraction")}
    base = dataset if dataset is not None else load_dataset(info["dataset"])
    if tuple(base.input_shape) != tuple(parent.spec.input_shape):
        raise UserError(f"dataset {base.name!r} has inputs {base.input_shape} but the model expects "
                        f"{tuple(parent.spec.input_shape)}; pick the dataset it was trained on")
    return limit_train(base, info["train_limit"], info["val_fraction"], info["data_seed"]), info


def _resolve_model(model: Model | str, store: Store | None) -> tuple[Model, Store | None]:
    if isinstance(model, Model):
        return model, store
    if not isinstance(model, str) or not model.strip():
        raise UserError(f"model must be a Model or a model id/name, got {model!r}")
    from prunelab.store import Store

    store = store if store is not None else Store()
    return store.load(model.strip()), store


def _torch_masks(masks: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {n: torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)) for n, m in masks.items()}


def prune(
    model: Model | str,
    sparsity: float = 0.9,
    *,
    scope: str | None = None,
    method: str = "magnitude",
    schedule: str | None = None,
    finetune_epochs: int | None = None,
    lr: float | None = None,
    ignore_layers: Iterable[str] = (),
    layer_sparsity: Mapping[str, float] | None = None,
    store: Store | None = None,
    name: str | None = None,
    callback: Callback | None = None,
    dataset: Dataset | None = None,
    threads: int | None = None,
    recipe: Recipe | None = None,
    distill: float | None = None,
    budget: str | None = None,
    seed: int = 0,
) -> PruneResult:
    """Prune `model` to `sparsity`, fine-tune it and return the child.

    model: a `Model` or the id/name of one in `store` (default store:
    $PRUNELAB_HOME). The child is saved to `store` when one is given or the
    model was named by id; otherwise it is returned unsaved.
    sparsity: target in [0, 1): fraction of prunable weights zeroed
    (method='magnitude') or of hidden neurons/filters removed ('structured').
    scope: 'global' (one threshold, exact overall count) or 'layer' (each
    weight tensor to `sparsity`); None: global for magnitude, layer for
    structured. schedule: 'oneshot', 'gradual' or
    'lottery' (None: 'gradual' for magnitude, 'oneshot' for structured,
    as measured in docs/pruning.md). finetune_epochs / lr / distill
    override the default recipe (`recipe`); finetune_epochs=None means the
    parent's own training epochs. ignore_layers: layers left dense ('fc3' or
    'fc3.weight'); layer_sparsity: per-layer overrides. budget='sensitivity'
    picks per-layer sparsities from a sensitivity scan. dataset: base dataset
    (default: the one the parent was trained on); the parent's train_limit
    and split are reused so fine-tuning sees the parent's training data.
    callback: progress events (phase 'finetune'); raising `Cancelled` stops
    the run and nothing is stored.
    """
    t_start = time.perf_counter()
    sparsity, scope, schedule = resolve_settings(sparsity, method, scope, schedule)
    if budget is not None and budget not in BUDGETS:
        raise UserError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    base_recipe = recipe or DEFAULT_RECIPE
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UserError(f"--threads must be >= 1, got {threads!r}")
    parent, store = _resolve_model(model, store)
    if store is not None:
        if name is not None:
            name = store.check_new_name(name)
        if parent.id is not None:
            store.resolve(parent.id)  # the parent must live in the store the child goes to
    weight_names = parent.weight_names()
    if isinstance(ignore_layers, str):
        ignore_layers = [v for v in ignore_layers.split(",") if v.strip()]
    ignored = M.resolve_layer_names(ignore_layers, weight_names)
    fixed = _parse_layer_sparsity(weight_names, layer_sparsity)
    if budget == "sensitivity" and method != "magnitude":
        raise UserError("--budget sensitivity works with --method magnitude")
    if method == "magnitude" and budget is None:  # impossible targets fail before any data is loaded
        compute_masks({n: parent.weights[n] for n in weight_names}, sparsity, scope, ignored, fixed,
                      {n: parent.masks[n] for n in weight_names if n in parent.masks} or None)
    elif method == "structured":
        S.select_units(parent.spec, parent.weights, sparsity, scope=scope,
                       ignore=[n.rsplit(".", 1)[0] for n in ignored],
                       layer_sparsity={n.rsplit(".", 1)[0]: v for n, v in fixed.items()})
    tcfg = train_config(parent)
    rec = base_recipe.with_(epochs=finetune_epochs, lr=lr, distill=distill)
    epochs = rec.epochs if rec.epochs is not None else int(tcfg.get("epochs", 8))
    rec = rec.with_(epochs=epochs)
    if schedule == "lottery" and recipe is None:
        # each round retrains from the initial weights: use the parent's own training recipe
        rec = rec.with_(lr=lr if lr is not None else tcfg.get("lr"), optimizer=tcfg.get("optimizer"),
                        lr_schedule=tcfg.get("lr_schedule"))
    used_threads = set_threads(threads)
    ds, data_info = _training_data(parent, dataset)
    x, y = to_input(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = to_input(ds.x_test), torch.from_numpy(ds.y_test)
    cb = callback or (lambda e: None)
    parent_module = parent.to_torch()
    parent_acc = evaluate(parent_module, x_test, y_test, classes=ds.classes).accuracy
    if budget == "sensitivity":
        from prunelab.prune.sensitivity import sensitivity as scan

        scan_result = scan(parent, dataset=dataset)
        fixed = {**scan_result.budget(sparsity, ignore=ignored), **fixed}
        scope = "layer"

    settings = {
        "method": method, "scope": scope, "schedule": schedule, "target_sparsity": sparsity,
        "ignore_layers": ignored, "layer_sparsity": fixed, "budget": budget, "seed": seed,
        "recipe": rec.to_dict(), "finetune_epochs": epochs, "lr": rec.lr, "distill": rec.distill,
    }
    teacher = logits_of(parent_module, x) if rec.distill > 0 else None

    if method == "structured":
        child, achieved, per_layer, acc_before, history = _structured(
            parent, sparsity, scope, ignored, fixed, rec, x, y, x_test, y_test, ds.classes, teacher, seed, cb)
    else:
        child, achieved, per_layer, acc_before, history = _magnitude(
            parent, sparsity, scope, schedule, ignored, fixed, rec, x, y, x_test, y_test, ds.classes, teacher,
            seed, cb, tcfg)

    module = child.to_torch()
    test = evaluate(module, x_test, y_test, classes=ds.classes)
    assert ds.x_val is not None and ds.y_val is not None  # _training_data always carves one
    val = evaluate(module, to_input(ds.x_val), torch.from_numpy(ds.y_val), classes=ds.classes)
    seconds = time.perf_counter() - t_start
    config = {
        **settings,
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
        "history": history, "config": config, "dataset": ds.describe(), "seed": seed, "versions": versions(),
    }
    if store is not None:
        child = store.save(child)
    cb(Event("info", phase="prune", message=f"child {child.id}: accuracy {test.accuracy:.4f}"))
    return PruneResult(model=child, parent=parent.id, sparsity=achieved, accuracy_before_finetune=acc_before,
                       test_accuracy=test.accuracy, seconds=seconds, parent_accuracy=parent_acc,
                       val_accuracy=val.accuracy,
                       layer_sparsity=per_layer, history=history, settings=settings)


def resolve_settings(sparsity: Any, method: str, scope: str | None,
                     schedule: str | None) -> tuple[float, str, str]:
    """Check the prune settings and fill in the measured defaults: (sparsity, scope, schedule).

    The one place these are validated, so callers that must fail before queueing
    work (the explorer) give the same answers as `prune` itself.
    """
    sparsity = M.check_sparsity(sparsity)
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    scope = scope or default_scope(method)
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r}; choose from {', '.join(SCOPES)}")
    schedule = check_schedule(schedule or default_schedule(sparsity, method))
    if method == "structured" and schedule != "oneshot":
        raise UserError("structured pruning supports --schedule oneshot only")
    return sparsity, scope, schedule


def default_scope(method: str) -> str:
    """'global' for magnitude pruning; 'layer' for structured, where a global
    ranking emptied fc1 first and lost 1.3 pp at 75% vs +0.04 (docs/pruning.md)."""
    return "layer" if method == "structured" else "global"


def default_schedule(sparsity: float, method: str) -> str:
    """The default recipe's schedule: gradual for magnitude pruning (it beat
    one-shot at 90/95/98% on LeNet-300-100, docs/pruning.md); structured
    pruning is one-shot only."""
    return "oneshot" if method == "structured" else "gradual"


def compute_masks(
    weights: Mapping[str, Any], sparsity: float, scope: str, ignored: Iterable[str] = (),
    fixed: Mapping[str, float] | None = None, masks: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Magnitude masks for `scope` ('global' or 'layer')."""
    fn = M.global_magnitude_masks if scope == "global" else M.layer_magnitude_masks
    return fn(weights, sparsity, ignore=list(ignored), layer_sparsity=dict(fixed or {}), masks=masks)


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


def _finetune(module: torch.nn.Module, masks: dict[str, torch.Tensor], rec: Recipe, x: torch.Tensor,
              y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, teacher: torch.Tensor | None,
              seed: int, cb: Callback, phase: str = "finetune", epochs: int | None = None,
              before_step: Any = None) -> list[dict[str, Any]]:
    loss_fn = distillation_loss(teacher, rec.distill, rec.temperature) if teacher is not None else None
    return fit(module, x, y, epochs=(rec.epochs or 0) if epochs is None else epochs, lr=rec.lr,
               batch_size=rec.batch_size, optimizer=rec.optimizer, lr_schedule=rec.lr_schedule, seed=seed,
               masks=masks, x_val=x_test, y_val=y_test, callback=cb, loss_fn=loss_fn, phase=phase,
               before_step=before_step)


def _finetune_annealed(module: torch.nn.Module, masks: dict[str, torch.Tensor], rec: Recipe, x: torch.Tensor,
                       y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, teacher: torch.Tensor | None,
                       seed: int, cb: Callback) -> list[dict[str, Any]]:
    """Fixed masks: with `rec.anneal`, the first gradual_fraction of the epochs at
    `rec.lr_schedule`, the rest with the lr annealed to zero (cosine) - the
    same lr profile as the gradual schedule, so the two compare fairly."""
    epochs = rec.epochs or 0
    if not (rec.anneal and epochs >= 2):
        return _finetune(module, masks, rec, x, y, x_test, y_test, teacher, seed, cb)
    first = max(1, min(epochs - 1, round(epochs * rec.gradual_fraction)))
    hist = _finetune(module, masks, rec, x, y, x_test, y_test, teacher, seed, cb, epochs=first)
    tail = _finetune(module, masks, rec.with_(lr_schedule="cosine"), x, y, x_test, y_test, teacher, seed + 1,
                     cb, phase="anneal", epochs=epochs - first)
    for row in tail:
        row["epoch"] += first
    return hist + tail


def _magnitude(parent: Model, sparsity: float, scope: str, schedule: str, ignored: list[str],
               fixed: dict[str, float], rec: Recipe, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
               y_test: torch.Tensor, classes: int, teacher: torch.Tensor | None, seed: int, cb: Callback,
               tcfg: dict[str, Any]) -> tuple[Model, float, dict[str, float], float, list[dict[str, Any]]]:
    names = parent.weight_names()
    weights = {n: parent.weights[n] for n in names}
    old = {n: parent.masks[n] for n in names if n in parent.masks} or None
    final = compute_masks(weights, sparsity, scope, ignored, fixed, old)
    # accuracy right after pruning (one-shot to the final masks, no fine-tune)
    module: torch.nn.Module = parent.to_torch()
    tmasks = _torch_masks(final)
    apply_masks(module, tmasks)
    acc_before = evaluate(module, x_test, y_test, classes=classes).accuracy
    cb(Event("info", phase="prune", message=f"pruned to {M.mask_sparsity(final):.4f}: accuracy before "
             f"fine-tune {acc_before:.4f}", extra={"accuracy_before_finetune": acc_before}))
    history: list[dict[str, Any]] = []
    if schedule == "oneshot" or (schedule == "gradual" and not rec.epochs):
        if rec.epochs:
            history = _history_rows(_finetune_annealed(module, tmasks, rec, x, y, x_test, y_test, teacher,
                                                       seed, cb), M.mask_sparsity(final))
    elif schedule == "gradual":
        module = parent.to_torch()
        start = M.mask_sparsity(old) if old else 0.0
        live = _torch_masks(old if old else {n: np.ones(w.shape, dtype=bool) for n, w in weights.items()})
        total_epochs = rec.epochs or 1
        # anneal: prune over the first gradual_fraction of the epochs at the recipe's lr,
        # then a second run with the masks fixed and the lr annealed (cosine) to zero
        anneal = rec.anneal and total_epochs >= 2
        epochs = max(1, min(total_epochs - 1, round(total_epochs * rec.gradual_fraction))) if anneal \
            else total_epochs
        steps = max(1, math.ceil(len(y) / rec.batch_size)) * epochs
        t0, n, dt = gradual_plan(steps, start, sparsity, 1.0 if anneal else rec.gradual_fraction,
                                 rec.gradual_updates)
        params = dict(module.named_parameters())
        last = [-1.0]

        def before_step(step: int) -> None:
            s_t = gradual_sparsity(step, start, sparsity, t0, n, dt)
            if s_t <= last[0]:
                return
            last[0] = s_t
            current = {k: params[k].detach().numpy() for k in names}
            cur_masks = {k: live[k].numpy().astype(bool) for k in names}
            # fixed layers and the overall target rise together along the schedule
            frac = 1.0 if sparsity == start else (s_t - start) / (sparsity - start)
            fixed_t = {k: max(v * frac, float((~cur_masks[k]).mean())) for k, v in fixed.items()}
            new = compute_masks(current, s_t, scope, ignored, fixed_t, cur_masks)
            for k in names:
                live[k].copy_(torch.from_numpy(new[k].astype(np.float32)))

        raw = _finetune(module, live, rec, x, y, x_test, y_test, teacher, seed, cb, epochs=epochs,
                        before_step=before_step)
        if last[0] < sparsity:  # too few steps to finish the schedule: the last update now
            cur_masks = {k: live[k].numpy().astype(bool) for k in names}
            current = {k: params[k].detach().numpy() for k in names}
            new = compute_masks(current, sparsity, scope, ignored, fixed, cur_masks)
            live.update(_torch_masks(new))
            apply_masks(module, live)
        final = {k: live[k].numpy().astype(bool) for k in names}
        history = _history_rows(raw, M.mask_sparsity(final))
        for i, row in enumerate(history):  # sparsity reached at the end of each epoch
            row["sparsity"] = gradual_sparsity(min((i + 1) * steps // epochs, steps), start, sparsity, t0, n, dt)
        if anneal:
            tail = _finetune(module, live, rec.with_(lr_schedule="cosine"), x, y, x_test, y_test, teacher,
                             seed + 1, cb, phase="anneal", epochs=total_epochs - epochs)
            for row in _history_rows(tail, M.mask_sparsity(final)):
                row["epoch"] += epochs
                history.append(row)
    else:  # lottery
        module, final, history = _lottery(parent, sparsity, scope, ignored, fixed, old, rec, x, y, x_test,
                                          y_test, teacher, seed, cb, tcfg)
    child_weights = dict(parent.weights)
    child_weights.update(get_weights(module))
    child_masks = {n: m.astype(bool) for n, m in final.items() if not m.all() or (old and n in old)}
    # no clean-up here: `fit` keeps masked weights (and their optimiser state) at
    # exactly zero after every step, and the tests check the stored weights
    child = Model(spec=parent.spec, weights=child_weights, masks=child_masks)
    per_layer = M.per_layer_sparsity(final)
    return child, M.mask_sparsity(final), per_layer, acc_before, history


def initial_weights(parent: Model, tcfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The parent's weights at initialisation, rebuilt from its training seed
    (`train` seeds torch with config.seed right before building the network)."""
    if "seed" not in tcfg:
        raise UserError("lottery needs the parent's training config (its seed); prune a model trained by prunelab")
    torch.manual_seed(int(tcfg["seed"]))
    init = get_weights(build(parent.spec))
    for k, v in parent.weights.items():
        if k not in init or init[k].shape != v.shape:
            raise UserError("lottery rewinding needs the parent's original layer sizes; "
                            "it cannot follow a structured pruning step")
    return init


def _lottery(parent: Model, sparsity: float, scope: str, ignored: list[str], fixed: dict[str, float],
             old: dict[str, np.ndarray] | None, rec: Recipe, x: torch.Tensor, y: torch.Tensor,
             x_test: torch.Tensor, y_test: torch.Tensor, teacher: torch.Tensor | None, seed: int,
             cb: Callback, tcfg: dict[str, Any]
             ) -> tuple[torch.nn.Module, dict[str, np.ndarray], list[dict[str, Any]]]:
    names = parent.weight_names()
    init = initial_weights(parent, tcfg)
    start = M.mask_sparsity(old) if old else 0.0
    rounds = lottery_rounds(sparsity, 0.2, start) or [sparsity]
    current = {n: parent.weights[n] for n in names}
    masks = old
    history: list[dict[str, Any]] = []
    module: torch.nn.Module = parent.to_torch()
    for r, s_r in enumerate(rounds, start=1):
        frac = 1.0 if sparsity == start else (s_r - start) / (sparsity - start)
        fixed_r = {k: v * frac for k, v in fixed.items()}
        if masks:
            fixed_r = {k: max(v, float((~masks[k]).mean())) for k, v in fixed_r.items()}
        masks = compute_masks(current, s_r, scope, ignored, fixed_r, masks)
        module = load_weights(build(parent.spec), init)  # rewind survivors to their initial values
        tmasks = _torch_masks(masks)
        apply_masks(module, tmasks)
        raw = _finetune(module, tmasks, rec, x, y, x_test, y_test, teacher, seed, cb,
                        phase=f"lottery {r}/{len(rounds)}")
        history += _history_rows(raw, M.mask_sparsity(masks), {"round": r})
        current = {k: v for k, v in get_weights(module).items() if k in names}
    assert masks is not None
    return module, masks, history


def _structured(parent: Model, sparsity: float, scope: str, ignored: list[str], fixed: dict[str, float],
                rec: Recipe, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                classes: int, teacher: torch.Tensor | None, seed: int, cb: Callback
                ) -> tuple[Model, float, dict[str, float], float, list[dict[str, Any]]]:
    ignored_layers = [n.rsplit(".", 1)[0] for n in ignored]
    fixed_layers = {n.rsplit(".", 1)[0]: s for n, s in fixed.items()}
    keep = S.select_units(parent.spec, parent.weights, sparsity, scope=scope, ignore=ignored_layers,
                          layer_sparsity=fixed_layers)
    child = S.remove_units(parent, keep)
    module = child.to_torch()
    acc_before = evaluate(module, x_test, y_test, classes=classes).accuracy
    removed = S.units_removed(parent.spec, child.spec)
    cb(Event("info", phase="prune", message=f"removed {removed['fraction']:.4f} of hidden units: accuracy "
             f"before fine-tune {acc_before:.4f}", extra={"accuracy_before_finetune": acc_before}))
    tmasks = _torch_masks(child.masks)
    history: list[dict[str, Any]] = []
    if rec.epochs:
        history = _history_rows(_finetune_annealed(module, tmasks, rec, x, y, x_test, y_test, teacher, seed,
                                                   cb), removed["fraction"])
    out = Model(spec=child.spec, weights=get_weights(module), masks=child.masks)
    return out, removed["fraction"], removed["layers"], acc_before, history

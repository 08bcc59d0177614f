"""Prune an imported `torch.export` model: the module-level engine plus a fine-tune.

    res = prune_exported("mine", 0.9, finetune_epochs=1, store=Store())   # ImportedPruneResult
    res.model                                                            # the stored child (ExportedModel)

The program is rebuilt as a trainable GraphModule, `prunelab.prune_module`
masks the weights that feed its ATen linear/convolution ops (held at zero by
a parametrization through the fine-tune), the module is fine-tuned with
prunelab's loop (Adam, cosine learning rate) on the training split minus a
stratified validation split, the masks are baked in, and the child is stored
as the parent's graph JSON with the new weights (safetensors) and masks.
Only unstructured pruning: channels cannot be cut out of a fixed graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from prunelab.data.datasets import DEFAULT_VAL_FRACTION, Dataset, limit_train
from prunelab.errors import UserError
from prunelab.importing import check_fit, dataset_of, evaluate_exported, model_input
from prunelab.models.exported import ExportedModel
from prunelab.progress import Callback
from prunelab.prune.engine import prune_module
from prunelab.prune.engine.pruning import SCOPES
from prunelab.prune.masks import check_sparsity
from prunelab.train import check_hyper, evaluate, fit, set_threads, versions

if TYPE_CHECKING:
    from prunelab.store import Store

SCHEDULES = ("oneshot", "gradual")


@dataclass(frozen=True)
class ImportedPruneSettings:
    """sparsity in [0, 1) of the prunable weights (global or per-layer magnitude);
    schedule: oneshot (prune, then fine-tune) or gradual (cubic ramp over the
    fine-tune's steps); finetune_epochs / lr / batch_size: the fine-tune (Adam,
    cosine schedule); seed: split and shuffling; train_limit: a stratified
    subset of the training split (None: all of it)."""

    sparsity: float
    scope: str = "global"
    schedule: str = "oneshot"
    finetune_epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    train_limit: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsity", check_sparsity(self.sparsity, "--sparsity"))
        if self.scope not in SCOPES:
            raise UserError(f"unknown scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule {self.schedule!r} is not available for imported models; choose from "
                            f"{', '.join(SCHEDULES)}")
        check_hyper(self.finetune_epochs, self.lr, self.batch_size, "adam", "cosine")
        if self.schedule == "gradual" and self.finetune_epochs < 1:
            raise UserError("--schedule gradual prunes during the fine-tune: give --finetune-epochs 1 or more")
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "scope": self.scope, "method": "magnitude", "schedule": self.schedule,
                "finetune_epochs": self.finetune_epochs, "lr": self.lr, "batch_size": self.batch_size,
                "seed": self.seed, "train_limit": self.train_limit, "val_fraction": self.val_fraction}


@dataclass(frozen=True)
class ImportedPruneResult:
    """The stored child and its accuracies in [0, 1] on the test split (before
    and after the fine-tune, and the parent's), the validation accuracy after
    the fine-tune, measured sparsity, seconds."""

    model: ExportedModel
    parent: str | None
    sparsity: float
    accuracy_before_finetune: float
    test_accuracy: float
    parent_accuracy: float
    val_accuracy: float | None
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    report: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.model.id, "name": self.model.name, "parent": self.parent, "sparsity": self.sparsity,
                "accuracy_before_finetune": self.accuracy_before_finetune, "test_accuracy": self.test_accuracy,
                "parent_accuracy": self.parent_accuracy, "val_accuracy": self.val_accuracy,
                "params": self.model.params(), "nonzero": self.model.nonzero(), "seconds": self.seconds,
                "settings": self.settings}


def prune_exported(
    model: ExportedModel | str,
    sparsity: float,
    *,
    scope: str | None = None,
    method: str = "magnitude",
    schedule: str | None = None,
    finetune_epochs: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    train_limit: int | None = None,
    dataset: str | Dataset | None = None,
    store: Store | None = None,
    name: str | None = None,
    callback: Callback | None = None,
    threads: int | None = None,
) -> ImportedPruneResult:
    """Prune an imported model (a stored id/name, or an `ExportedModel`) to
    `sparsity`, fine-tune it on `dataset` (default: the one recorded at import),
    and store the child in `store` (when given). See the module docstring."""
    if method != "magnitude":
        raise UserError(f"method {method!r} is not available for imported models: a torch.export graph has "
                        "fixed shapes, so only single weights can be pruned (--method magnitude). Prune channels "
                        "with prunelab.prune_module(net, s, method='structured') on your nn.Module, then export it")
    settings = ImportedPruneSettings(sparsity=sparsity, scope=scope or "global", schedule=schedule or "oneshot",
                                     finetune_epochs=1 if finetune_epochs is None else finetune_epochs,
                                     lr=1e-3 if lr is None else lr, seed=seed, train_limit=train_limit)
    if isinstance(model, str):
        if store is None:
            from prunelab.store import Store

            store = Store()
        model = store.load_exported(model)
    if store is not None and name is not None:
        store.check_new_name(name)
    if not model.spec.prunable:
        raise UserError("the imported program has no Linear/Conv weights (ATen linear or convolution with a "
                        "parameter named '...weight') to prune")
    ds = dataset_of(model, dataset)
    check_fit(model.spec, ds)
    split = limit_train(ds, settings.train_limit, settings.val_fraction, settings.seed)
    threads_used = set_threads(threads)
    t0 = time.perf_counter()
    module = model.to_torch()
    recorded = (model.meta.get("metrics") or {}).get("test_accuracy")
    same_data = (model.meta.get("dataset") or {}).get("fingerprint") == ds.fingerprint()
    parent_accuracy = recorded if recorded is not None and same_data else evaluate_exported(model, ds, module).accuracy
    x, y = model_input(split.x_train, model.spec), torch.from_numpy(split.y_train)
    x_val = model_input(split.x_val, model.spec) if split.x_val is not None else None
    y_val = torch.from_numpy(split.y_val) if split.y_val is not None else None
    x_test, y_test = model_input(ds.x_test, model.spec), torch.from_numpy(ds.y_test)
    steps = settings.finetune_epochs * -(-len(y) // settings.batch_size)
    layers = [n.removesuffix(".weight") for n in model.spec.prunable]
    pruning = prune_module(module, settings.sparsity, scope=settings.scope, schedule=settings.schedule,
                           steps=steps if settings.schedule == "gradual" else None, include=layers,
                           seed=settings.seed)
    before = evaluate(module, x_test, y_test, classes=model.spec.classes).accuracy

    def ramp(_step: int) -> None:  # gradual: one schedule step per optimizer step
        pruning.step()

    history = fit(module, x, y, epochs=settings.finetune_epochs, lr=settings.lr, batch_size=settings.batch_size,
                  seed=settings.seed, x_val=x_val, y_val=y_val, callback=callback, phase="finetune",
                  before_step=ramp if settings.schedule == "gradual" else None)
    while settings.schedule == "gradual" and not pruning.done:  # the ramp ends exactly at the target
        pruning.step()
    measured = pruning.sparsity()
    report = str(pruning.report())
    pruning.finalize()
    test = evaluate(module, x_test, y_test, classes=model.spec.classes)
    state = module.state_dict()
    weights: dict[str, np.ndarray] = {}
    for n, old in model.weights.items():
        value = state.get(n)
        weights[n] = old.copy() if value is None else value.detach().cpu().numpy().astype(old.dtype, copy=True)
    masks = {n: weights[n] != 0 for n in model.spec.prunable}
    seconds = time.perf_counter() - t0
    val_accuracy = history[-1].get("val_accuracy") if history else None
    child = ExportedModel(spec=model.spec, weights=weights, masks=masks, meta={
        "name": name, "kind": "pruned", "parent": model.id,
        "metrics": {"test_accuracy": test.accuracy, "test_loss": test.loss, "confusion": test.confusion,
                    "accuracy_before_finetune": before, "parent_accuracy": parent_accuracy,
                    "val_accuracy": val_accuracy, "seconds": seconds},
        "history": history,
        "config": {**settings.to_dict(), "dataset": ds.name, "threads": threads_used},
        "dataset": split.describe(), "versions": versions(), "seed": settings.seed,
    })
    if store is not None:  # meta's parent is model.id: None for an unstored parent
        child = store.save_exported(child)
    return ImportedPruneResult(model=child, parent=model.id, sparsity=measured, accuracy_before_finetune=before,
                               test_accuracy=test.accuracy, parent_accuracy=float(parent_accuracy),
                               val_accuracy=val_accuracy, seconds=seconds, settings=settings.to_dict(),
                               report=report)

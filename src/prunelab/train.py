"""Training and evaluation: one mask-aware loop used for training and fine-tuning.

    import prunelab
    result = prunelab.train(arch="lenet-300-100", epochs=8)   # TrainResult
    result.model, result.test_accuracy, result.history

`fit` holds pruned weights at exactly zero when given masks: after every
optimiser step the weights *and* the optimiser state (Adam moments, SGD
momentum) of pruned entries are zeroed, so momentum cannot revive them.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from prunelab.callable_module import make_callable
from prunelab.data.datasets import DEFAULT_VAL_FRACTION, Dataset, limit_train, load_dataset
from prunelab.errors import UserError
from prunelab.models.builder import build, get_weights
from prunelab.models.model import Model
from prunelab.models.presets import create_spec
from prunelab.progress import Callback, Event

if TYPE_CHECKING:
    from prunelab.store import Store

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored with every model."""

    arch: str = "lenet-300-100"
    hidden: tuple[int, ...] | None = None
    channels: tuple[int, ...] | None = None
    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    seed: int = 0
    train_limit: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    dataset: str = "mnist"
    threads: int | None = None

    def __post_init__(self) -> None:
        check_hyper(self.epochs, self.lr, self.batch_size, self.optimizer, self.lr_schedule)
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}")
        if self.train_limit is not None and self.train_limit < 1:
            raise UserError(f"--train-limit must be a positive integer, got {self.train_limit}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys fail loudly."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"unknown training options {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        for key in ("hidden", "channels"):
            if data.get(key) is not None:
                data[key] = tuple(int(v) for v in data[key])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("hidden", "channels"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d


def check_hyper(epochs: int, lr: float, batch_size: int, optimizer: str, lr_schedule: str) -> None:
    """Validate the hyper-parameters shared by training and fine-tuning."""
    if not isinstance(epochs, int) or epochs < 0:
        raise UserError(f"--epochs must be a non-negative integer, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise UserError(f"--lr must be a positive number, got {lr!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if lr_schedule not in LR_SCHEDULES:
        raise UserError(f"unknown lr schedule {lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}")


@dataclass
class EvalResult:
    """Accuracy in [0, 1], mean cross-entropy loss, confusion[true][pred] counts."""

    accuracy: float
    loss: float
    confusion: list[list[int]]
    count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: Model
    history: list[dict[str, Any]]
    test: EvalResult
    seconds: float

    @property
    def test_accuracy(self) -> float:
        return self.test.accuracy

    def __repr__(self) -> str:
        return f"TrainResult(id={self.model.id!r}, test_accuracy={self.test.accuracy:.4f}, seconds={self.seconds:.1f})"


def to_input(x: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 tensor (N, C, H, W) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.dim() == 3:
        t = t.unsqueeze(1)
    return t.float().div_(255.0)


def _enforce(module: nn.Module, masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            p.mul_(mask)
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    value.mul_(mask)


def make_optimizer(module: nn.Module, optimizer: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if optimizer == "sgd":
        return torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)


def lr_factor(step: int, total: int, schedule: str, warmup_steps: int = 0) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based) of `total`."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))
    return warm


def fit(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_schedule: str = "cosine",
    warmup_steps: int = 0,
    seed: int = 0,
    masks: dict[str, torch.Tensor] | None = None,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    callback: Callback | None = None,
    before_step: Callable[[int], None] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    phase: str = "train",
    report_every: int = 20,
) -> list[dict[str, Any]]:
    """Train `module` in place on float inputs `x` (N, C, H, W) and int64 labels `y`.

    lr_schedule: 'cosine' (lr decays to 0 over all steps) or 'constant'.
    warmup_steps: the lr rises linearly from lr / warmup_steps to lr over the
    first warmup_steps optimizer steps (Goyal et al. 2017), so that a large SGD
    lr does not throw a trained network off at the first step.
    masks: weight name -> 0/1 float tensor; masked entries stay exactly zero.
    before_step(step): called before each optimiser step (gradual pruning
    uses it to update `masks` in place). loss_fn(logits, y, idx) replaces
    cross-entropy (distillation uses it; idx are the batch's sample indices).
    Returns one dict per epoch: epoch, train_loss, train_accuracy,
    val_accuracy (or None), seconds.
    """
    cb = callback or (lambda e: None)
    opt = make_optimizer(module, optimizer, lr, momentum, weight_decay)
    n = len(y)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = steps_per_epoch * epochs
    # Without a warmup, torch's own cosine (its recursive form differs from lr_factor's closed form in
    # the 17th digit), so that every published run reproduces bit for bit.
    sched: torch.optim.lr_scheduler.LRScheduler | None = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(t, total, lr_schedule, warmup_steps))
        if warmup_steps > 0 else
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total)) if lr_schedule == "cosine" else None)
    gen = torch.Generator().manual_seed(seed)
    criterion = nn.CrossEntropyLoss()
    history: list[dict[str, Any]] = []
    step = 0
    cb(Event("start", phase=phase, epochs=epochs, total_steps=total))
    if masks:
        _enforce(module, masks, opt)
    for epoch in range(1, epochs + 1):
        module.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.long)
        seen = 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = x[idx], y[idx]
            logits = module(xb)
            loss = loss_fn(logits, yb, idx) if loss_fn else criterion(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if before_step is not None:
                before_step(step)
            step_lr = opt.param_groups[0]["lr"]
            opt.step()
            if masks:
                _enforce(module, masks, opt)
            if sched is not None:
                sched.step()
            step += 1
            with torch.no_grad():
                loss_sum += loss.detach() * len(idx)
                correct += (logits.argmax(1) == yb).sum()
            seen += len(idx)
            if step % report_every == 0:
                cb(Event("batch", phase=phase, epoch=epoch, epochs=epochs, step=step, total_steps=total,
                         loss=float(loss_sum) / seen, accuracy=int(correct) / seen, extra={"lr": step_lr}))
        val_acc = evaluate(module, x_val, y_val).accuracy if x_val is not None and y_val is not None else None
        record = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / max(seen, 1),
            "train_accuracy": int(correct) / max(seen, 1),
            "val_accuracy": val_acc,
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        cb(Event("epoch", phase=phase, epoch=epoch, epochs=epochs, step=step, total_steps=total,
                 loss=record["train_loss"], accuracy=record["train_accuracy"], val_accuracy=val_acc,
                 seconds=record["seconds"]))
    cb(Event("end", phase=phase, epochs=epochs, step=step, total_steps=total))
    return history


@torch.no_grad()
def evaluate(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
             classes: int | None = None) -> EvalResult:
    """Accuracy, mean loss and confusion matrix of `module` on (x, y)."""
    module.eval()
    classes = classes or int(y.max()) + 1
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    loss_sum = 0.0
    for i in range(0, len(y), batch_size):
        logits = module(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        pred = logits.argmax(1)
        confusion.index_put_((yb, pred), torch.ones_like(yb), accumulate=True)
    count = len(y)
    correct = int(confusion.diagonal().sum())
    return EvalResult(accuracy=correct / max(count, 1), loss=loss_sum / max(count, 1),
                      confusion=confusion.tolist(), count=count)


def evaluate_model(model: Model, dataset: Dataset | None = None) -> EvalResult:
    """Evaluate a stored `Model` on the test split of its dataset (default: the one it was trained on)."""
    ds = dataset or load_dataset(model.meta.get("config", {}).get("dataset", "mnist"))
    return evaluate(model.to_torch(), to_input(ds.x_test), torch.from_numpy(ds.y_test), classes=ds.classes)


def versions() -> dict[str, str]:
    """Library versions recorded with every model."""
    import safetensors

    import prunelab

    return {"prunelab": prunelab.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def set_threads(threads: int | None) -> int:
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def train(
    config: TrainConfig | None = None,
    *,
    store: Store | None = None,
    name: str | None = None,
    callback: Callback | None = None,
    dataset: Dataset | None = None,
    **options: Any,
) -> TrainResult:
    """Train a network from a config (or keyword options), evaluate it on the
    test split and, when `store` is given, save it there.

    Example: `train(arch="mlp", hidden=(512, 256), epochs=2, train_limit=2000)`.
    """
    if config is None:
        config = TrainConfig.from_dict(options)
    elif options:
        config = TrainConfig.from_dict({**config.to_dict(), **options})
    if store is not None and name is not None:
        store.check_new_name(name)
    spec = create_spec(config.arch, hidden=config.hidden, channels=config.channels)
    base = dataset or load_dataset(config.dataset)
    if tuple(base.input_shape) != tuple(spec.input_shape) or base.classes > spec.classes:
        spec = create_spec(config.arch, hidden=config.hidden, channels=config.channels,
                           input_shape=base.input_shape, classes=base.classes)
    ds = limit_train(base, config.train_limit, config.val_fraction, config.seed)
    threads = set_threads(config.threads)
    torch.manual_seed(config.seed)
    module = build(spec)
    x, y = to_input(ds.x_train), torch.from_numpy(ds.y_train)
    x_val = to_input(ds.x_val) if ds.x_val is not None else None
    y_val = torch.from_numpy(ds.y_val) if ds.y_val is not None else None
    t0 = time.perf_counter()
    history = fit(module, x, y, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                  optimizer=config.optimizer, momentum=config.momentum, weight_decay=config.weight_decay,
                  lr_schedule=config.lr_schedule, seed=config.seed, x_val=x_val, y_val=y_val,
                  callback=callback)
    seconds = time.perf_counter() - t0
    test = evaluate(module, to_input(ds.x_test), torch.from_numpy(ds.y_test), classes=ds.classes)
    model = Model(spec=spec, weights=get_weights(module), meta={
        "name": name,
        "kind": "trained",
        "metrics": {"test_accuracy": test.accuracy, "test_loss": test.loss, "confusion": test.confusion,
                    "val_accuracy": history[-1].get("val_accuracy") if history else None,
                    "train_seconds": seconds},
        "history": history,
        "config": {**config.to_dict(), "threads": threads},
        "dataset": ds.describe(),
        "seed": config.seed,
        "versions": versions(),
    })
    if store is not None:
        model = store.save(model)
    return TrainResult(model=model, history=history, test=test, seconds=seconds)


make_callable(__name__, train)

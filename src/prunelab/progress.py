"""Progress events emitted by long work (training, fine-tuning, pruning rounds).

One callback interface serves the CLI's progress bar and the web app's live
curves: a callable taking an `Event`. A callback may raise `Cancelled` to stop
the work cleanly (nothing is stored).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


class Cancelled(Exception):
    """Raised by a callback to stop training; the caller stores nothing."""


@dataclass
class Event:
    """kind: 'start' | 'batch' | 'epoch' | 'end' | 'info'.

    step/total_steps count optimiser steps over the whole run; loss and
    accuracy are running means over the current epoch (accuracy in [0, 1]).
    """

    kind: str
    phase: str = "train"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    seconds: float | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Callback = Callable[[Event], None]


class ProgressBar:
    """A tqdm bar on stderr showing live loss and accuracy."""

    def __init__(self, desc: str = "train") -> None:
        self.desc = desc
        self._bar: Any = None

    def __call__(self, event: Event) -> None:
        from tqdm import tqdm

        if event.kind == "start":
            self._bar = tqdm(total=event.total_steps, desc=self.desc, unit="step",
                             file=sys.stderr, dynamic_ncols=True, leave=True)
        elif self._bar is None:
            return
        elif event.kind == "batch" and event.loss is None:  # work without a loss (a search): say what ran
            self._bar.n = event.step
            self._bar.set_postfix_str(event.message, refresh=False)
            self._bar.refresh()
        elif event.kind == "batch":
            self._bar.n = event.step
            self._bar.set_postfix(epoch=f"{event.epoch}/{event.epochs}", loss=f"{event.loss:.4f}",
                                  acc=f"{(event.accuracy or 0):.4f}", refresh=False)
            self._bar.refresh()
        elif event.kind == "epoch":
            self._bar.n = event.step
            post = {"epoch": f"{event.epoch}/{event.epochs}", "loss": f"{event.loss:.4f}",
                    "acc": f"{(event.accuracy or 0):.4f}"}
            if event.val_accuracy is not None:
                post["val"] = f"{event.val_accuracy:.4f}"
            self._bar.set_postfix(post)
        elif event.kind == "end":
            if event.total_steps:
                self._bar.total, self._bar.n = event.total_steps, event.step
                self._bar.refresh()
            self._bar.close()
            self._bar = None


def chain(*callbacks: Callback | None) -> Callback:
    """One callback that calls each non-None callback in turn."""
    live = [cb for cb in callbacks if cb is not None]

    def _call(event: Event) -> None:
        for cb in live:
            cb(event)

    return _call

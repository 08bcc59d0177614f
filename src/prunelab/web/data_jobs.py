"""Data-pruning jobs for the explorer: `prunelab.select` on MNIST or an uploaded table.

On MNIST the job can also train the same network on the kept subset and on
the whole pool (with the same number of optimisation steps, as the
`validate` mnist suite does) so the page shows what the data saving costs
in accuracy. Everything here calls the library: `prunelab.select`,
`prunelab.data.tables.load`, `prunelab.validate.mnist_suite`.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict

from prunelab.errors import UserError
from prunelab.progress import Callback, Event
from prunelab.web.jobs import Job
from prunelab.web.state import WebState


class SelectRequest(BaseModel):
    """Body of POST /api/jobs/select (MNIST): pick `keep` of a `pool` of training images."""

    model_config = ConfigDict(extra="forbid")
    pool: int = 5000
    strategy: str = "auto"
    keep: float | None = 0.3
    min_keep: int = 20
    train: bool = True
    epochs: int = 1
    seed: int = 0


def check_select(strategy: str, keep: float | None, min_keep: int, seed: int) -> None:
    """The library's own checks, run before anything is queued."""
    from prunelab.select.base import get_selector
    from prunelab.select.budget import check_keep, check_min_keep

    check_keep(keep, None)
    check_min_keep(min_keep)
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")
    get_selector(strategy, keep=keep, min_keep=min_keep, random_state=seed)  # unknown strategy -> UserError


def report_view(sel: Any) -> dict[str, Any]:
    out: dict[str, Any] = sel.report.to_dict()
    out["params"] = {k: v for k, v in out.get("params", {}).items() if k != "inner"}
    return out


def submit_mnist(state: WebState, body: SelectRequest) -> Job:
    from prunelab.data.datasets import stratified_subset

    check_select(body.strategy, body.keep, body.min_keep, body.seed)
    if not 100 <= body.pool <= 60000:
        raise UserError(f"pool must be between 100 and 60000 training images, got {body.pool}")
    if not 1 <= body.epochs <= 20:
        raise UserError(f"epochs must be between 1 and 20, got {body.epochs}")
    ds = state.dataset("mnist")

    def work(cb: Callback) -> dict[str, Any]:
        from prunelab.select import select
        from prunelab.validate.mnist_suite import BATCH, features, train_subset

        def say(message: str, step: int, total: int) -> None:
            cb(Event("info", phase="select", step=step, total_steps=total, message=message))

        total = 4 if body.train else 2
        idx = stratified_subset(ds.y_train, body.pool, seed=body.seed)
        x, y = ds.x_train[idx], ds.y_train[idx]
        say(f"PCA(50) features of {len(y):,} images", 0, total)
        z = features(x, seed=body.seed)
        say(f"selecting with {body.strategy}", 1, total)
        sel = select(z, y, keep=body.keep, strategy=body.strategy, min_keep=body.min_keep,
                              random_state=body.seed)
        result: dict[str, Any] = {"source": f"MNIST, {len(y):,} training images (stratified, seed {body.seed})",
                                  "report": report_view(sel),
                                  "image_bytes_before": int(x.nbytes + y.nbytes),
                                  "image_bytes_after": int(x[sel.indices].nbytes + y[sel.indices].nbytes)}
        if body.train:
            say("training lenet-300-100 on the whole pool", 2, total)
            full_acc, full_sec = train_subset(x, y, ds.x_test, ds.y_test, body.epochs, body.seed)
            # the subset gets as many optimisation steps as the full pool did
            steps = body.epochs * math.ceil(len(y) / BATCH)
            sub_epochs = max(1, round(steps / math.ceil(len(sel.indices) / BATCH)))
            say(f"training on the {len(sel.indices):,} kept images ({sub_epochs} epochs, same steps)", 3, total)
            sub_acc, sub_sec = train_subset(x[sel.indices], y[sel.indices], ds.x_test, ds.y_test, sub_epochs,
                                            body.seed)
            result["training"] = {"full_accuracy": full_acc, "full_seconds": full_sec, "full_epochs": body.epochs,
                                  "subset_accuracy": sub_acc, "subset_seconds": sub_sec,
                                  "subset_epochs": sub_epochs, "test_images": int(len(ds.y_test))}
        cb(Event("end", phase="select", step=total, total_steps=total))
        return result

    keep = f"{body.keep:.0%}" if body.keep is not None else "auto"
    return state.jobs.submit("select", f"select {keep} of {body.pool:,} MNIST images ({body.strategy})",
                             body.model_dump(), work)


def submit_upload(state: WebState, data: bytes, filename: str, target: str, strategy: str,
                  keep: float | None, min_keep: int, seed: int) -> Job:
    """Read an uploaded .npz/.csv with the library's reader now (bad files fail here), select in a job."""
    from prunelab.data.tables import load
    from prunelab.select import select

    suffix = Path(filename or "").suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise UserError(f"upload a .npz (arrays X, y) or a .csv with a header row, got {filename or 'no name'!r}")
    check_select(strategy, keep, min_keep, seed)
    targets = [t.strip() for t in target.split(",") if t.strip()]
    shown = Path(filename).name
    with tempfile.TemporaryDirectory(prefix="prunelab-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            table = load(path, targets=targets)
        except UserError as exc:  # name the user's file, not our temp copy
            raise UserError(str(exc).replace(str(path), shown).replace(path.name, shown)) from None
    if len(table.X) < 2:
        raise UserError("the upload has fewer than 2 rows; nothing to select from")

    def work(cb: Callback) -> dict[str, Any]:
        cb(Event("info", phase="select", step=0, total_steps=1, message=f"selecting with {strategy}"))
        sel = select(table.X, table.y, keep=keep, strategy=strategy, min_keep=min_keep,
                              timestamps=table.timestamps, scores=table.scores, random_state=seed)
        cb(Event("end", phase="select", step=1, total_steps=1))
        return {"source": f"{filename}: {len(table.X):,} rows x {table.X.shape[1] if table.X.ndim > 1 else 1} "
                          "features", "report": report_view(sel), "kept_indices": sel.indices[:5000].tolist()}

    title = f"select {keep:.0%} of {filename}" if keep is not None else f"select from {filename} (auto)"
    params = {"file": filename, "target": targets, "strategy": strategy, "keep": keep, "min_keep": min_keep,
              "seed": seed}
    return state.jobs.submit("select", title, params, work)


def upload_too_big(limit: int) -> HTTPException:
    return HTTPException(413, f"the upload is larger than {limit // (1024 * 1024)} MB; use a smaller file")

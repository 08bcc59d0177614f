"""The explorer's JSON API under /api/: a thin client of the library.

Every route validates its input with the library's own checks (so messages
match the CLI's), then calls the library; long work becomes a job. Bad input
answers 4xx with {"detail": "<what is wrong and how to fix it>"} and changes
nothing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from prunelab.errors import UserError
from prunelab.models.exported import is_exported_record
from prunelab.progress import Callback
from prunelab.web import data_jobs, imaging, inside
from prunelab.web.jobs import FINISHED, Job
from prunelab.web.state import WebState

MAX_UPLOAD = 5 * 1024 * 1024  # bytes; larger uploads get 413
MAX_COMPARE = 12  # models per predict/compare request
# one server-sent event as /api/jobs/{id}/events sends it (OpenAPI 3.1: `schema` describes each event)
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"event": {"enum": ["progress", "status", "end"]}, "data": {"type": "string"},
                            "id": {"type": "string"}}}


class TrainRequest(BaseModel):
    """Body of POST /api/jobs/train; ranges are checked by `TrainConfig`."""

    model_config = ConfigDict(extra="forbid")
    arch: str = "lenet-300-100"
    hidden: list[int] | None = None
    channels: list[int] | None = None
    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"
    seed: int = 0
    train_limit: int | None = None
    dataset: str = "mnist"
    name: str | None = None


class PruneRequest(BaseModel):
    """Body of POST /api/jobs/prune; `sparsity` is a fraction in [0, 1)."""

    model_config = ConfigDict(extra="forbid")
    parent: str
    sparsity: float
    scope: str | None = None  # None: the library's measured default for the method
    method: str = "magnitude"
    schedule: str | None = None  # None: gradual for magnitude, oneshot for structured
    finetune_epochs: int | None = None  # None: the parent's own training epochs
    lr: float | None = None  # None: the default recipe's
    name: str | None = None


class SensitivityRequest(BaseModel):
    """Body of POST /api/jobs/sensitivity: evaluate on the first `limit` validation images."""

    model_config = ConfigDict(extra="forbid")
    model: str
    limit: int | None = 2000


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None


def not_found(message: str) -> HTTPException:
    return HTTPException(status_code=404, detail=message)


def record(state: WebState, ref: str) -> dict[str, Any]:
    """The registry record of `ref` (id or name), or 404."""
    try:
        return state.store.get(ref)
    except UserError as exc:
        raise not_found(str(exc)) from None


def summary(state: WebState, rec: dict[str, Any]) -> dict[str, Any]:
    """One row of the models table."""
    metrics = rec.get("metrics", {})
    try:
        file_bytes = (state.store.models_dir / rec["file"]).stat().st_size
    except OSError:
        file_bytes = None
    return {
        "id": rec["id"], "name": rec["name"], "arch": rec["arch"], "kind": rec["kind"],
        "parent": rec["parent"], "created": rec["created"], "params": rec["params"],
        "nonzero": rec["nonzero"], "sparsity": rec["sparsity"],
        "test_accuracy": metrics.get("test_accuracy"),
        "accuracy_before_finetune": metrics.get("accuracy_before_finetune"),
        "dense_bytes": int(rec["params"]) * 4, "file_bytes": file_bytes,
        "compression": rec["params"] / max(1, rec["nonzero"]),
        "latency_us_b1": (state.measurements.get(rec["id"]) or {}).get("latency_us_b1"),
        "dataset": rec.get("dataset", {}).get("name"),
        "train_limit": rec.get("config", {}).get("train_limit"),
    }


def job_view(state: WebState, job: Job, with_events: bool = False) -> dict[str, Any]:
    out = job.to_dict(with_events=with_events)
    out["position"] = state.jobs.position(job)
    return out


def get_job(state: WebState, job_id: str) -> Job:
    try:
        return state.jobs.get(job_id)
    except KeyError:
        raise not_found(f"no job {job_id!r}; GET /api/jobs lists them (jobs last until the server stops)") from None


def check_job_name(state: WebState, name: str | None) -> str | None:
    """A new model name must be free in the store and not promised to a queued or running job."""
    if name is None:
        return None
    name = state.store.check_new_name(name)
    for job in state.jobs.list():
        if job.status in ("queued", "running") and job.params.get("name") == name:
            raise UserError(f"job {job.id} ({job.status}) will already store a model named {name!r}; "
                            "pick another name")
    return name


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_router(state: WebState) -> APIRouter:
    api = APIRouter(prefix="/api")

    # --- about -------------------------------------------------------------
    @api.get("/health")
    def health() -> dict[str, Any]:
        from prunelab import __version__

        return {"ok": True, "version": __version__, "store": str(state.store.root),
                "workers": state.jobs.workers,
                "features": {"prune": has_module("prunelab.prune"),
                             "sparse": has_module("prunelab.sparse"), "select": has_module("prunelab.select")}}

    @api.get("/presets")
    def presets() -> dict[str, Any]:
        from prunelab.models.presets import _PRESETS, create_spec

        out = []
        for name in sorted(_PRESETS):
            spec = create_spec(name)
            out.append({"name": name, "doc": (_PRESETS[name].__doc__ or "").strip().splitlines()[0],
                        "params": spec.num_params(), "custom": name in ("mlp", "cnn")})
        return {"presets": out, "defaults": TrainRequest().model_dump()}

    @api.get("/datasets")
    def datasets() -> dict[str, Any]:
        """`mnist` plus every folder of IDX files under <store>/datasets (what train accepts)."""
        root = state.store.root / "datasets"
        found = sorted(f"idx:{p.name}" for p in (root.iterdir() if root.is_dir() else [])
                       if p.is_dir() and any(p.glob("train-images*")))
        return {"datasets": ["mnist", *found], "folder": str(root)}

    # --- models --------------------------------------------------------------
    @api.get("/models")
    def list_models() -> dict[str, Any]:
        return {"models": [summary(state, r) for r in state.store.list()]}

    @api.get("/models/{ref}")
    def show_model(ref: str) -> dict[str, Any]:
        rec = record(state, ref)
        rec["children"] = state.store.children(rec["id"])
        rec["summary"] = summary(state, rec)
        return rec

    @api.patch("/models/{ref}")
    def rename_model(ref: str, body: RenameRequest) -> dict[str, Any]:
        rec = record(state, ref)
        state.store.rename(rec["id"], body.name)
        return summary(state, state.store.get(rec["id"]))

    @api.delete("/models/{ref}")
    def delete_model(ref: str, recursive: bool = False) -> dict[str, Any]:
        rec = record(state, ref)
        return {"removed": state.store.remove(rec["id"], recursive=recursive)}

    @api.get("/models/{ref}/inside")
    def look_inside(ref: str) -> dict[str, Any]:
        rec = record(state, ref)
        model = state.load(rec["id"])
        parent = state.load(rec["parent"]) if rec["parent"] else None
        return {"id": rec["id"], "name": rec["name"], "parent": rec["parent"],
                "layers": inside.layer_table(model),
                "parent_layers": inside.layer_table(parent) if parent else None,
                "histograms": inside.histograms(model, parent),
                "first_layer": inside.first_layer_maps(model),
                "history": rec.get("history", [])}

    @api.get("/models/{ref}/mistakes")
    def mistakes(ref: str, limit: int = Query(24, ge=1, le=200), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        rec = record(state, ref)
        pred, conf, ds = state.test_predictions(rec["id"])
        wrong = np.flatnonzero(pred != ds.y_test)
        wrong = wrong[np.argsort(-conf[wrong], kind="stable")]  # most confident mistakes first
        items = [{"index": int(i), "label": int(ds.y_test[i]), "predicted": int(pred[i]),
                  "confidence": float(conf[i])} for i in wrong[offset : offset + limit]]
        return {"id": rec["id"], "total": int(len(wrong)), "count": int(len(ds.y_test)),
                "accuracy": 1.0 - len(wrong) / max(1, len(ds.y_test)), "offset": offset, "items": items}

    @api.get("/models/{ref}/test-images/{index}.png", response_class=Response,  # documented as PNG, not JSON
             responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
    def test_image(ref: str, index: int, scale: int = Query(3, ge=1, le=10)) -> Response:
        rec = record(state, ref)
        ds = state.model_dataset(rec)
        if not 0 <= index < len(ds.y_test):
            raise not_found(f"test image index must be in [0, {len(ds.y_test) - 1}], got {index}")
        img = ds.x_test[index]
        if img.ndim == 3:
            img = img[0]
        return Response(imaging.png_bytes(img, scale), media_type="image/png",
                        headers={"Cache-Control": "max-age=3600"})

    # --- test a drawing ------------------------------------------------------
    @api.post("/predict")
    async def predict(image: UploadFile = File(...), models: str = Form("")) -> dict[str, Any]:  # noqa: B008
        data = await image.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"the upload is larger than {MAX_UPLOAD // (1024 * 1024)} MB; "
                                     "use a smaller image")
        return await asyncio.to_thread(_predict, state, data, models)

    # --- compare ---------------------------------------------------------------
    @api.get("/compare")
    def compare(models: str = Query("", description="comma-separated ids or names; empty = all"),
                measure: bool = Query(False, description="also export each model and time it (slower)"),
                ) -> dict[str, Any]:
        refs = [m for m in (s.strip() for s in models.split(",")) if m]
        recs = [record(state, r) for r in refs] if refs else state.store.list()
        if len(recs) > 50:
            raise HTTPException(400, "compare at most 50 models at once")
        if measure and len(recs) > MAX_COMPARE:
            raise HTTPException(400, f"measure at most {MAX_COMPARE} models at once; select fewer")
        rows = [_compare_row(state, rec, measure) for rec in recs]
        return {"rows": rows, "measured": measure,
                "note": "MNIST is a teaching benchmark: results on it are not evidence about large models "
                        "or harder data."}

    # --- jobs ------------------------------------------------------------------
    @api.get("/jobs")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [job_view(state, j) for j in state.jobs.list()], "workers": state.jobs.workers}

    @api.get("/jobs/{job_id}")
    def show_job(job_id: str) -> dict[str, Any]:
        return job_view(state, get_job(state, job_id), with_events=True)

    @api.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict[str, Any]:
        get_job(state, job_id)
        return job_view(state, state.jobs.cancel(job_id))

    @api.get("/jobs/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    async def job_events(job_id: str, request: Request, since: int = Query(0, ge=0)) -> StreamingResponse:
        """Server-sent events: `progress` per event (data = the event), `status` on
        state changes, and a final `end` with the job; reconnect with ?since=N."""
        job = get_job(state, job_id)
        last_id = request.headers.get("last-event-id")
        start = int(last_id) + 1 if last_id and last_id.isdigit() else since
        return StreamingResponse(_sse(state, job, request, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.post("/jobs/train", status_code=202)
    def submit_train(body: TrainRequest) -> dict[str, Any]:
        from prunelab.data.datasets import confined_dataset, limit_train
        from prunelab.models.presets import create_spec
        from prunelab.train import TrainConfig

        config = TrainConfig.from_dict(body.model_dump(exclude={"name"}))
        create_spec(config.arch, hidden=config.hidden, channels=config.channels)  # checks sizes now
        # requests may only name IDX folders inside <store root>/datasets
        config = TrainConfig.from_dict({**config.to_dict(),
                                        "dataset": confined_dataset(config.dataset, state.store.root / "datasets")})
        dataset = state.dataset(config.dataset)  # a missing IDX folder fails here, not in the queue
        limit_train(dataset, config.train_limit, config.val_fraction, config.seed)  # checks --train-limit
        name = check_job_name(state, body.name)

        def work(cb: Callback) -> dict[str, Any]:
            from prunelab.train import train

            res = train(config, store=state.store, name=name, callback=cb, dataset=dataset)
            return {"model": res.model.id, "name": res.model.name, "test_accuracy": res.test.accuracy,
                    "seconds": res.seconds}

        title = f"train {config.arch}" + (f" '{name}'" if name else "") + \
            f", {config.epochs} epoch{'s' if config.epochs != 1 else ''}"
        job = state.jobs.submit("train", title, {**config.to_dict(), "name": name}, work)
        return job_view(state, job)

    @api.post("/jobs/prune", status_code=202)
    def submit_prune(body: PruneRequest) -> dict[str, Any]:
        return job_view(state, _submit_prune(state, body))

    @api.post("/jobs/sensitivity", status_code=202)
    def submit_sensitivity(body: SensitivityRequest) -> dict[str, Any]:
        """Per-layer sensitivity scan (`prunelab.prune.sensitivity`) of a stored model."""
        from prunelab.prune.sensitivity import sensitivity

        rec = record(state, body.model)
        if body.limit is not None and not 100 <= body.limit <= 10000:
            raise UserError(f"limit must be between 100 and 10000 validation images, got {body.limit}")
        dataset = state.model_dataset(rec)

        def work(cb: Callback) -> dict[str, Any]:
            res = sensitivity(rec["id"], store=state.store, dataset=dataset, limit=body.limit, callback=cb)
            return {"scanned": rec["id"], **res.to_dict()}

        title = f"sensitivity of {rec['name'] or rec['id']}"
        return job_view(state, state.jobs.submit("sensitivity", title, {"model": rec["id"], "limit": body.limit},
                                                 work))

    # --- data pruning ------------------------------------------------------------
    @api.get("/strategies")
    def strategies() -> dict[str, Any]:
        from prunelab.select.base import describe_strategies

        return {"strategies": [{"name": k, "description": v} for k, v in describe_strategies().items()]}

    @api.post("/jobs/select", status_code=202)
    def submit_select(body: data_jobs.SelectRequest) -> dict[str, Any]:
        return job_view(state, data_jobs.submit_mnist(state, body))

    @api.post("/jobs/select-upload", status_code=202)
    async def submit_select_upload(file: UploadFile = File(...), target: str = Form(""),  # noqa: B008
                                   strategy: str = Form("auto"), keep: float | None = Form(None),
                                   min_keep: int = Form(20), seed: int = Form(0)) -> dict[str, Any]:
        data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise data_jobs.upload_too_big(MAX_UPLOAD)
        job = await asyncio.to_thread(data_jobs.submit_upload, state, data, file.filename or "", target, strategy,
                                      keep, min_keep, seed)
        return job_view(state, job)

    return api


# --- helpers the routes call -----------------------------------------------------


def _predict(state: WebState, data: bytes, models: str) -> dict[str, Any]:
    import torch

    from prunelab.train import to_input

    digit = imaging.to_mnist(data)
    refs = [m for m in (s.strip() for s in models.split(",")) if m]
    if not refs:
        refs = [r["id"] for r in state.store.list()][-MAX_COMPARE:]
    if not refs:
        raise UserError("there are no models yet; train one on the Train page first")
    if len(refs) > MAX_COMPARE:
        raise UserError(f"pick at most {MAX_COMPARE} models to test at once, got {len(refs)}")
    recs = [record(state, r) for r in refs]
    results = []
    x = to_input(digit[None])  # (1, 1, 28, 28)
    for rec in recs:
        row: dict[str, Any] = {"id": rec["id"], "name": rec["name"], "sparsity": rec["sparsity"],
                               "test_accuracy": rec["metrics"].get("test_accuracy")}
        if tuple(rec["spec"]["input_shape"]) != (1, 28, 28):
            row["error"] = f"model takes {rec['spec']['input_shape']} inputs, not a 28x28 digit"
        else:
            with torch.no_grad():
                probs = torch.softmax(state.module(rec["id"])(x), dim=1)[0].numpy()
            row["probabilities"] = [round(float(p), 5) for p in probs]
            row["prediction"] = int(probs.argmax())
        results.append(row)
    return {"input": digit.tolist(), "predictions": results}


def _compare_row(state: WebState, rec: dict[str, Any], measure: bool) -> dict[str, Any]:
    """A models-table row plus FLOPs; with `measure`, artifact bytes and latencies from
    `prunelab.sparse.compare` (measured once per model and server, 1 thread)."""
    from prunelab.models.spec import ModelSpec
    from prunelab.sparse.compare import compare_model, flops_nonzero

    row = summary(state, rec)
    if is_exported_record(rec):  # an imported torch.export program (prunelab import)
        return _compare_row_imported(state, rec, row, measure)
    spec = ModelSpec.from_dict(rec["spec"])
    row["flops"] = spec.flops()
    if rec["sparsity"] == 0 and rec["nonzero"] == rec["params"]:
        row["effective_flops"] = row["flops"]
    else:
        row["effective_flops"] = flops_nonzero(spec, state.load(rec["id"]).weights)
    if measure:
        measured = state.measurements.get(rec["id"])
        if measured is None:
            measured = compare_model(state.load(rec["id"]), threads=1, budget_s=0.15).to_dict()
            state.measurements.put(rec["id"], measured)
        for key in ("artifact_bytes", "dense_gzip_bytes", "compression_ratio", "latency_us_b1",
                    "latency_us_b256", "torch_latency_us_b1", "torch_latency_us_b256", "speedup_b1",
                    "speedup_b256", "ort_latency_us_b1", "ort_latency_us_b256", "ort_speedup_b1",
                    "ort_speedup_b256"):
            row[key] = measured.get(key)
    return row


def _compare_row_imported(state: WebState, rec: dict[str, Any], row: dict[str, Any], measure: bool) -> dict[str, Any]:
    """`_compare_row` for an imported model: FLOPs from its graph; with `measure`,
    `prunelab.sparse.compare_imported` (artifact columns None when the runtime lacks its ops)."""
    from prunelab.sparse.compare_imported import compare_exported, sparse_flops

    model = state.store.load_exported(rec["id"])
    row["flops"] = model.spec.flops()
    row["effective_flops"] = sparse_flops(model)
    if measure:
        measured = state.measurements.get(rec["id"])
        if measured is None:
            measured = compare_exported(model, threads=1, budget_s=0.15)
            state.measurements.put(rec["id"], measured)
        for key in ("artifact_bytes", "dense_gzip_bytes", "compression_ratio", "latency_us_b1",
                    "latency_us_b256", "torch_latency_us_b1", "torch_latency_us_b256", "speedup_b1",
                    "speedup_b256", "ort_latency_us_b1", "ort_latency_us_b256", "ort_speedup_b1",
                    "ort_speedup_b256", "artifact_error"):
            row[key] = measured.get(key)
    return row


def _submit_prune(state: WebState, body: PruneRequest) -> Job:
    """Check everything the library would reject before queueing, then queue `prunelab.prune`."""
    try:
        from prunelab.prune import api as prune_api
        from prunelab.prune.finetune import DEFAULT_RECIPE
    except ImportError:
        raise HTTPException(503, "pruning is not available in this installation") from None

    sparsity, scope, schedule = prune_api.resolve_settings(body.sparsity, body.method, body.scope, body.schedule)
    DEFAULT_RECIPE.with_(epochs=body.finetune_epochs, lr=body.lr)  # raises on bad epochs / lr
    parent = record(state, body.parent)
    if is_exported_record(parent):
        raise HTTPException(400, "imported torch.export models are pruned from the command line for now: "
                                 f"prunelab prune {parent['name'] or parent['id']} --sparsity S")
    name = check_job_name(state, body.name)
    dataset = state.model_dataset(parent)

    def work(cb: Callback) -> dict[str, Any]:
        res = prune_api.prune(parent["id"], sparsity, scope=scope, method=body.method, schedule=schedule,
                              finetune_epochs=body.finetune_epochs, lr=body.lr, store=state.store, name=name,
                              callback=cb, dataset=dataset)
        return {"model": res.model.id, "name": res.model.name, "parent": res.parent,
                "sparsity": res.sparsity, "accuracy_before_finetune": res.accuracy_before_finetune,
                "test_accuracy": res.test_accuracy, "parent_accuracy": res.parent_accuracy,
                "seconds": res.seconds}

    who = parent["name"] or parent["id"]
    title = f"prune {who} to {sparsity:.0%} ({body.method}, {scope}, {schedule})"
    params = {**body.model_dump(), "parent": parent["id"], "sparsity": sparsity, "name": name}
    return state.jobs.submit("prune", title, params, work)


async def _sse(state: WebState, job: Job, request: Request, start: int) -> AsyncIterator[bytes]:
    sent = start
    status = None
    last_beat = time.monotonic()
    while True:
        events = job.events[sent:]
        for i, ev in enumerate(events, start=sent):
            yield f"id: {i}\nevent: progress\ndata: {json.dumps(ev)}\n\n".encode()
        sent += len(events)
        if job.status != status:
            status = job.status
            yield f"event: status\ndata: {json.dumps(job_view(state, job))}\n\n".encode()
        if job.status in FINISHED and sent >= len(job.events):
            yield f"event: end\ndata: {json.dumps(job_view(state, job))}\n\n".encode()
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_beat > 10:
            last_beat = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.to_thread(state.jobs.wait, job, sent, 0.5)

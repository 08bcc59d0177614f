"""`import`: store a torch.export program; and the imported-model side of
`eval`, `prune`, `export` and `compare` (their handlers hand over here)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from prunelab.cli import add_json_flag, emit
from prunelab.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="store a torch.export program (.pt2) as a model")
    p.add_argument("file", metavar="FILE.pt2", help="written by torch.export.save (torch 2.6+)")
    p.add_argument("--name", help="a unique name to refer to the model by")
    p.add_argument("--dataset", default="mnist",
                   help="data set the model is checked and evaluated on, and fine-tuned on by prune: "
                        "mnist, idx:DIR or npz:FILE (default mnist)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_import)


def is_imported(ref: str) -> bool:
    """Whether registry model `ref` is an imported torch.export program (UserError when unknown)."""
    from prunelab.models.exported import is_exported_record
    from prunelab.store import Store

    return is_exported_record(Store().get(ref))


def cmd_import(args: argparse.Namespace) -> None:
    from prunelab.importing import import_pt2
    from prunelab.store import Store

    t0 = time.perf_counter()
    model, test = import_pt2(args.file, store=Store(), name=args.name, dataset=args.dataset)
    s = model.spec
    out = {"id": model.id, "name": model.name, "params": model.params(), "test_accuracy": test.accuracy,
           "test_loss": test.loss, "count": test.count, "dataset": model.meta["config"]["dataset"],
           "input_shape": list(s.input_shape), "classes": s.classes, "prunable": list(s.prunable),
           "ops": dict(s.ops), "seconds": time.perf_counter() - t0}
    emit(args, out, f"stored model {model.id}{' (' + model.name + ')' if model.name else ''} from {args.file}: "
         f"{model.params():,} params, input {tuple(s.input_shape)}, {s.classes} classes, "
         f"{len(s.prunable)} prunable weights; test accuracy {test.accuracy:.2%} on {test.count:,} images of "
         f"{out['dataset']}")


def cmd_eval_imported(args: argparse.Namespace) -> None:
    from prunelab.importing import dataset_of, evaluate_exported
    from prunelab.store import Store

    model = Store().load_exported(args.model)
    ds = dataset_of(model, getattr(args, "dataset", None))
    res = evaluate_exported(model, ds)
    out = {"id": model.id, "test_accuracy": res.accuracy, "test_loss": res.loss, "confusion": res.confusion,
           "count": res.count, "dataset": ds.name}
    lines = [f"model {model.id}: test accuracy {res.accuracy:.2%}, loss {res.loss:.4f} on {res.count} images "
             f"of {ds.name}", "confusion (rows = true class, columns = predicted):"]
    lines += ["  " + " ".join(f"{v:5d}" for v in row) for row in res.confusion]
    emit(args, out, "\n".join(lines))


def cmd_prune_imported(args: argparse.Namespace) -> None:
    from prunelab.progress import ProgressBar
    from prunelab.prune.imported import prune_exported
    from prunelab.store import Store

    unsupported = [flag for flag, value in (("--distill", args.distill), ("--ignore-layers", args.ignore_layers),
                                            ("--layer-sparsity", args.layer_sparsity), ("--budget", args.budget))
                   if value]
    if unsupported:
        raise UserError(f"{', '.join(unsupported)} not available for imported models; prune them with "
                        "--sparsity, --scope, --schedule oneshot|gradual, --finetune-epochs, --lr, --dataset")
    res = prune_exported(args.model, args.sparsity, scope=args.scope, method=args.method, schedule=args.schedule,
                         finetune_epochs=args.finetune_epochs, lr=args.lr, seed=args.seed,
                         dataset=getattr(args, "dataset", None), store=Store(), name=args.name,
                         threads=args.threads, callback=None if args.json else ProgressBar(f"fine-tune {args.model}"))
    m = res.model
    emit(args, res.to_dict(),
         f"stored model {m.id}{' (' + m.name + ')' if m.name else ''} from {res.parent}: sparsity {res.sparsity:.2%}, "
         f"accuracy {res.accuracy_before_finetune:.2%} after pruning, {res.test_accuracy:.2%} after fine-tuning "
         f"(parent {res.parent_accuracy:.2%}), {m.nonzero():,} non-zero of {m.params():,} params, "
         f"{res.seconds:.1f} s\n{res.report}")


def export_onnx_file(model: Any, out: str) -> dict[str, Any]:
    """Write a stored model (spec or imported) as ONNX with a dynamic batch axis, checked in ONNX Runtime."""
    import warnings

    import torch

    from prunelab.models.model import Model
    from prunelab.onnx_export import export_onnx
    from prunelab.sparse.export import dense_bytes, masked_weights

    if isinstance(model, Model):
        module = Model(model.spec, masked_weights(model)).to_torch()
        dense = len(dense_bytes(model.weights))
    else:
        module = model.to_torch()
        dense = len(dense_bytes({n: model.weights[n] for n in model.spec.parameters}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's pytree notice when a GraphModule is deep-copied
        res = export_onnx(module, torch.zeros((1, *model.spec.input_shape)), out)
    return {**res.to_dict(), "dense_bytes": dense, "format": "onnx", "id": model.id}


def cmd_export_model(args: argparse.Namespace) -> bool:
    """`export` for imported models and for `--format onnx`; False when the spec-model plsa path should run."""
    from prunelab.store import Store

    fmt = getattr(args, "format", "plsa")
    if fmt not in ("plsa", "onnx"):
        raise UserError(f"unknown --format {fmt!r}; choose plsa or onnx")
    imported = is_imported(args.model)
    if not imported and fmt == "plsa":
        return False
    store = Store()
    model: Any = store.load_exported(args.model) if imported else store.load(args.model)
    if fmt == "onnx":
        if args.precision != "fp32":
            raise UserError("--precision applies to the plsa format; ONNX files are written in float32")
        out = export_onnx_file(model, args.out)
        emit(args, out, f"wrote {out['path']}: {out['bytes']:,} bytes ONNX (opset {out['opset']}, dynamic batch "
             f"axis), {out['params']:,} params; max |ONNX Runtime - PyTorch| = {out['max_abs_diff']}")
        return True
    from prunelab.sparse.export import export_exported

    res = export_exported(model, args.out, precision=args.precision)
    emit(args, {**res.to_dict(), "format": "plsa"},
         f"wrote {res.path}: {res.bytes:,} bytes ({res.precision}), {res.compression_ratio:.1f}x smaller than the "
         f"{res.dense_bytes:,}-byte float32 weights")
    return True


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def cmd_compare_mixed(args: argparse.Namespace) -> None:
    """`compare` when imported models are among the ones named."""
    from prunelab.models.exported import is_exported_record
    from prunelab.sparse.compare import compare_model
    from prunelab.sparse.compare_imported import compare_exported
    from prunelab.store import Store

    store = Store()
    recs = [store.get(ref) for ref in args.models]  # every name resolved before measuring
    rows = []
    for rec in recs:
        if is_exported_record(rec):
            rows.append(compare_exported(store.load_exported(rec["id"]), args.precision, args.threads, args.budget))
        else:
            rows.append(compare_model(store.load(rec["id"]), args.precision, args.threads, args.budget).to_dict())
    lines = [f"{'id':8} {'name':14} {'acc':>7} {'sparsity':>8} {'nonzero':>9} {'dense B':>10} {'artifact B':>10} "
             f"{'b1 us':>8} {'ORT':>8} {'torch':>8} {'b256 us':>9} {'ORT':>9} {'torch':>9}"]
    for r in rows:
        lines.append(f"{r['id'] or '-':8} {(r['name'] or '-')[:14]:14} {_cell(r['test_accuracy'], '.2%'):>7} "
                     f"{r['sparsity']:>8.1%} {r['nonzero']:>9,} {r['dense_bytes']:>10,} "
                     f"{_cell(r.get('artifact_bytes'), ','):>10} {_cell(r.get('latency_us_b1'), '.1f'):>8} "
                     f"{_cell(r.get('ort_latency_us_b1'), '.1f'):>8} {_cell(r.get('torch_latency_us_b1'), '.1f'):>8} "
                     f"{_cell(r.get('latency_us_b256'), '.1f'):>9} {_cell(r.get('ort_latency_us_b256'), '.1f'):>9} "
                     f"{_cell(r.get('torch_latency_us_b256'), '.1f'):>9}")
    for r in rows:
        if r.get("artifact_error"):
            lines.append(f"{r['id']}: no artifact ({r['artifact_error'].split('. It runs')[0]})")
    lines.append(f"latency: median microseconds per call, {args.threads} thread(s); artifact runtime "
                 f"({args.precision}) vs the dense network in ONNX Runtime and in PyTorch eager")
    emit(args, {"rows": rows, "threads": args.threads, "precision": args.precision}, "\n".join(lines))

"""`export`, `predict`, `compare`: compact artifacts and the torch-free runtime."""

from __future__ import annotations

import argparse
from typing import Any

from prunelab.cli import add_json_flag, emit
from prunelab.errors import UserError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(sub: Any) -> None:
    from prunelab.sparse.kernels import BACKENDS
    from prunelab.sparse.quant import PRECISIONS
    from prunelab.sparse.runtime import KERNELS

    p = sub.add_parser("export", help="write a model as a compact sparse artifact")
    p.add_argument("model", metavar="MODEL", help="model id or name")
    p.add_argument("--out", required=True, metavar="FILE", help="artifact path, e.g. model.plsa")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="stored weight precision (int8: per-output-channel symmetric)")
    p.add_argument("--no-shrink", action="store_true",
                   help="keep dead units (neurons with no inputs or no outputs left); by default they are "
                        "removed, which changes no prediction")
    p.add_argument("--format", default="plsa", choices=("plsa", "onnx"),
                   help="plsa: the compact artifact; onnx: ONNX with a dynamic batch axis, checked in ONNX Runtime")
    add_json_flag(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("predict", help="run an artifact on an .npz or an image (no torch needed)")
    p.add_argument("artifact", metavar="FILE", help="artifact written by `prunelab export`")
    p.add_argument("--input", required=True, metavar="X.npz|IMAGE",
                   help=".npz with array X (uint8 0-255 or float 0-1), or a PNG/JPEG digit")
    p.add_argument("--threads", type=_positive_int, default=1)
    p.add_argument("--kernel", default="auto", choices=KERNELS,
                   help="auto: dense or CSR per layer and batch, whichever measured faster at load")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="kernel back-end: numba (compiled; auto when installed) or numpy (scipy + BLAS)")
    p.add_argument("--no-probabilities", action="store_true", help="leave probabilities out of the JSON")
    add_json_flag(p)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("compare", help="size, FLOPs and latency of models side by side")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="artifact precision to measure")
    p.add_argument("--threads", type=_positive_int, default=1, help="threads for both runtimes")
    p.add_argument("--budget", type=_positive_float, default=0.2,
                   help="seconds of timing per measurement (4 per model)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_compare)


def cmd_export(args: argparse.Namespace) -> None:
    from prunelab.cli.imports import cmd_export_model
    from prunelab.sparse.export import export
    from prunelab.store import Store

    if cmd_export_model(args):  # imported models, and --format onnx
        return

    res = export(args.model, args.out, precision=args.precision, store=Store(), shrink=not args.no_shrink)
    encs = ", ".join(f"{t.name} {t.encoding}" for t in res.tensors if t.name.endswith(".weight"))
    emit(args, res.to_dict(), f"wrote {res.path}: {res.bytes:,} bytes ({res.precision}), "
         f"{res.compression_ratio:.1f}x smaller than the {res.dense_bytes:,}-byte float32 weights\n"
         f"encodings: {encs}")


def cmd_predict(args: argparse.Namespace) -> None:
    # torch-free on purpose: only prunelab.sparse, numpy, scipy (and Pillow for images)
    import numpy as np

    from prunelab.sparse.inputs import load_input
    from prunelab.sparse.runtime import load

    rt = load(args.artifact, kernel=args.kernel, threads=args.threads, backend=args.backend)
    x, y = load_input(args.input, tuple(rt.spec.input_shape))
    proba = rt.predict_proba(x)
    pred = proba.argmax(axis=1)
    out: dict[str, Any] = {"path": args.artifact, "input": args.input, "model": rt.meta.get("model_id"),
                           "count": int(len(pred)), "predictions": pred.tolist()}
    if not args.no_probabilities:
        out["probabilities"] = np.round(proba.astype(np.float64), 6).tolist()
    lines = []
    if y is not None:
        acc = float((pred == y).mean())
        out["accuracy"] = acc
    if len(pred) <= 20:
        lines += [f"{i}: {int(c)} (p={float(proba[i, c]):.3f})" for i, c in enumerate(pred)]
    else:
        counts = np.bincount(pred, minlength=rt.spec.classes)
        lines.append(f"{len(pred)} predictions; per class: " + " ".join(f"{c}:{n}" for c, n in enumerate(counts)))
    if y is not None:
        lines.append(f"accuracy against y: {out['accuracy']:.2%}")
    emit(args, out, "\n".join(lines))


def cmd_compare(args: argparse.Namespace) -> None:
    from prunelab.sparse.compare import compare
    from prunelab.store import Store

    if len(set(args.models)) != len(args.models):
        raise UserError("a model is named twice; list each model once")
    from prunelab.cli.imports import cmd_compare_mixed, is_imported

    if any(is_imported(ref) for ref in args.models):  # torch.export programs among them
        cmd_compare_mixed(args)
        return
    rows = [r.to_dict() for r in compare(args.models, Store(), precision=args.precision, threads=args.threads,
                                         budget_s=args.budget)]
    ort = any("ort_latency_us_b1" in r for r in rows)
    head = (f"{'id':8} {'name':14} {'acc':>7} {'sparsity':>8} {'nonzero':>9} {'dense B':>10} {'artifact B':>10} "
            f"{'ratio':>7} {'gzip B':>10} {'FLOPx':>6} {'b1 us':>8} {'ORT':>8} {'torch':>8} {'b256 us':>9} "
            f"{'ORT':>9} {'torch':>9}")
    lines = [head]
    for r in rows:
        acc = f"{r['test_accuracy']:.2%}" if r["test_accuracy"] is not None else "-"
        o1, o256 = (f"{r[f'ort_latency_us_b{b}']:.1f}" if f"ort_latency_us_b{b}" in r else "-" for b in (1, 256))
        lines.append(
            f"{r['id'] or '-':8} {(r['name'] or '-')[:14]:14} {acc:>7} {r['sparsity']:>8.1%} {r['nonzero']:>9,} "
            f"{r['dense_bytes']:>10,} {r['artifact_bytes']:>10,} {r['compression_ratio']:>6.1f}x "
            f"{r['dense_gzip_bytes']:>10,} {r['flop_ratio']:>5.1f}x {r['latency_us_b1']:>8.1f} {o1:>8} "
            f"{r['torch_latency_us_b1']:>8.1f} {r['latency_us_b256']:>9.1f} {o256:>9} "
            f"{r['torch_latency_us_b256']:>9.1f}")
    lines.append(f"latency: median microseconds per call, {args.threads} thread(s), artifact runtime "
                 f"({args.precision}) vs the dense network in ONNX Runtime (ORT"
                 f"{'' if ort else ': not installed, pip install onnxruntime onnx'}) and in PyTorch eager")
    emit(args, {"rows": rows, "threads": args.threads, "precision": args.precision}, "\n".join(lines))

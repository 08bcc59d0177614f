"""`train`, `eval`, `models`, `show`, `rm`: training and the registry."""

from __future__ import annotations

import argparse
import time
from typing import Any

from prunelab.cli import add_json_flag, emit
from prunelab.data.datasets import DEFAULT_VAL_FRACTION
from prunelab.errors import UserError


def int_list(text: str) -> tuple[int, ...]:
    """'300,100' -> (300, 100) for --hidden / --channels."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 300,100, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 300,100, got {text!r}")
    return values


def register(sub: Any) -> None:
    from prunelab.models.presets import list_presets

    p = sub.add_parser("train", help="train a network and store it")
    p.add_argument("--arch", required=True, choices=list_presets())
    p.add_argument("--hidden", type=int_list, help="hidden sizes for mlp/cnn, e.g. 300,100")
    p.add_argument("--channels", type=int_list, help="conv channels for cnn, e.g. 32,64")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="adam", help="adam or sgd")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, help="train on a stratified subset of N samples")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help="share of the training data held out (stratified, seeded) as the validation split that "
                        "pruning choices are made on; default 1/12 = 5,000 of MNIST's 60,000; 0 trains on all")
    p.add_argument("--dataset", default="mnist", help="mnist (embedded) or idx:DIR")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--name", help="a unique name to refer to the model by")
    add_json_flag(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("eval", help="accuracy, loss and confusion matrix on the test split")
    p.add_argument("model", metavar="MODEL", help="model id or name")
    p.add_argument("--dataset", default=None,
                   help="imported models: mnist, idx:DIR or npz:FILE (default: the one given at import)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("models", help="list the registry")
    add_json_flag(p)
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("show", help="everything stored about a model")
    p.add_argument("model", metavar="MODEL")
    add_json_flag(p)
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("rm", help="remove a model (children only with --recursive)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--recursive", action="store_true", help="also remove its descendants")
    add_json_flag(p)
    p.set_defaults(handler=cmd_rm)

    p = sub.add_parser("doctor", help="check the store; --repair quarantines what is broken")
    p.add_argument("--repair", action="store_true", help="move orphans and damaged files to quarantine/")
    add_json_flag(p)
    p.set_defaults(handler=cmd_doctor)


def cmd_train(args: argparse.Namespace) -> None:
    from prunelab.progress import ProgressBar
    from prunelab.store import Store
    from prunelab.train import TrainConfig, train

    config = TrainConfig(arch=args.arch, hidden=args.hidden, channels=args.channels, epochs=args.epochs,
                         lr=args.lr, batch_size=args.batch_size, optimizer=args.optimizer, seed=args.seed,
                         train_limit=args.train_limit, val_fraction=args.val_fraction,
                         dataset=args.dataset, threads=args.threads)
    store = Store()
    if args.name is not None:
        store.check_new_name(args.name)
    t0 = time.perf_counter()
    result = train(config, store=store, name=args.name,
                   callback=None if args.json else ProgressBar(f"train {args.arch}"))
    seconds = time.perf_counter() - t0
    m = result.model
    out = {"id": m.id, "name": m.name, "test_accuracy": result.test.accuracy, "test_loss": result.test.loss,
           "params": m.params(), "seconds": seconds, "train_seconds": result.seconds,
           "history": result.history}
    emit(args, out, f"stored model {m.id}{' (' + m.name + ')' if m.name else ''}: {args.arch}, "
         f"{m.params():,} params, test accuracy {result.test.accuracy:.2%}, {seconds:.1f} s")


def cmd_eval(args: argparse.Namespace) -> None:
    from prunelab.cli.imports import cmd_eval_imported, is_imported
    from prunelab.store import Store
    from prunelab.train import evaluate_model

    if is_imported(args.model):  # a torch.export program (prunelab import)
        cmd_eval_imported(args)
        return
    if args.dataset is not None:
        raise UserError("--dataset is for imported models; a trained model is evaluated on its own data set")
    store = Store()
    model = store.load(args.model)
    res = evaluate_model(model)
    out = {"id": model.id, "test_accuracy": res.accuracy, "test_loss": res.loss, "confusion": res.confusion,
           "count": res.count}
    lines = [f"model {model.id}: test accuracy {res.accuracy:.2%}, loss {res.loss:.4f} on {res.count} images",
             "confusion (rows = true class, columns = predicted):"]
    lines += ["  " + " ".join(f"{v:5d}" for v in row) for row in res.confusion]
    emit(args, out, "\n".join(lines))


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    return {"id": rec["id"], "name": rec["name"], "arch": rec["arch"], "kind": rec["kind"],
            "parent": rec["parent"], "created": rec["created"], "params": rec["params"],
            "nonzero": rec["nonzero"], "sparsity": rec["sparsity"],
            "test_accuracy": rec["metrics"].get("test_accuracy")}


def cmd_models(args: argparse.Namespace) -> None:
    from prunelab.store import Store

    rows = [_summary(r) for r in Store().list()]
    if not rows:
        emit(args, {"models": []}, "no models yet; try `prunelab train --arch lenet-300-100 --epochs 1`")
        return
    header = f"{'id':8} {'name':16} {'arch':14} {'parent':8} {'params':>9} {'sparsity':>8} {'accuracy':>8}"
    lines = [header]
    for r in rows:
        acc = f"{r['test_accuracy']:.2%}" if r["test_accuracy"] is not None else "-"
        lines.append(f"{r['id']:8} {(r['name'] or '-')[:16]:16} {r['arch'][:14]:14} {r['parent'] or '-':8} "
                     f"{r['params']:>9,} {r['sparsity']:>8.1%} {acc:>8}")
    emit(args, {"models": rows}, "\n".join(lines))


def cmd_show(args: argparse.Namespace) -> None:
    import json

    from prunelab.store import Store

    store = Store()
    rec = store.get(args.model)
    rec["children"] = store.children(rec["id"])
    human = json.dumps({k: v for k, v in rec.items() if k != "history"}, indent=2)
    emit(args, rec, human)


def cmd_rm(args: argparse.Namespace) -> None:
    from prunelab.store import Store

    store = Store()
    if not args.model:
        raise UserError("name a model to remove")
    removed = store.remove(args.model, recursive=args.recursive)
    emit(args, {"removed": removed}, f"removed {', '.join(removed)}")


def cmd_doctor(args: argparse.Namespace) -> None:
    from prunelab.doctor import check_store

    report = check_store(repair=args.repair)
    lines = [f"store {report.root}: {report.models} models, "
             + ("healthy" if report.healthy else f"{len(report.problems)} problem(s)")]
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  fixed: {a}" for a in report.actions]
    if report.problems and not args.repair:
        lines.append("run `prunelab doctor --repair` to quarantine what is broken")
    emit(args, report.to_dict(), "\n".join(lines))

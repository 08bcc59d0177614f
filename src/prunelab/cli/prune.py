"""`prune` and `sensitivity`: prune a stored model into a fine-tuned child."""

from __future__ import annotations

import argparse
from typing import Any

from prunelab.cli import add_json_flag, emit


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.9, got {text!r}") from None


def name_list(text: str) -> tuple[str, ...]:
    """'fc1,fc3' -> ('fc1', 'fc3')."""
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected layer names like fc1,fc3, got {text!r}")
    return names


def float_list(text: str) -> tuple[float, ...]:
    """'0.5,0.9' -> (0.5, 0.9)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,0.9, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,0.9, got {text!r}")
    return values


def layer_map(text: str) -> dict[str, float]:
    """'fc3=0.8' or 'fc1=0.95,fc3=0.8' -> {'fc3': 0.8, ...}."""
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=SPARSITY like fc3=0.8, got {part!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=SPARSITY like fc3=0.8, got {part!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected NAME=SPARSITY like fc3=0.8, got {text!r}")
    return out


def _merge_maps(values: list[dict[str, float]] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in values or []:
        out.update(v)
    return out


def register(sub: Any) -> None:
    p = sub.add_parser("prune", help="prune a stored model, fine-tune it, store the child")
    p.add_argument("model", metavar="MODEL", help="model id or name")
    p.add_argument("--sparsity", type=_float, required=True,
                   help="fraction in [0, 1) of weights to zero (structured: of hidden neurons to remove)")
    p.add_argument("--scope", default=None, help="global (one threshold) or layer (each layer to S); "
                   "default: global for magnitude, layer for structured")
    p.add_argument("--method", default="magnitude", help="magnitude (weights) or structured (neurons/filters)")
    p.add_argument("--schedule", default=None, help="oneshot, gradual or lottery (default: the recipe's)")
    p.add_argument("--finetune-epochs", type=int, default=None,
                   help="fine-tune epochs (default: the parent's training epochs)")
    p.add_argument("--lr", type=_float, default=None, help="fine-tune learning rate (default: the recipe's)")
    p.add_argument("--distill", type=_float, default=None,
                   help="weight in [0, 1] of distillation from the dense parent (default: the recipe's)")
    p.add_argument("--ignore-layers", type=name_list, default=(), help="layers to leave dense, e.g. fc3")
    p.add_argument("--layer-sparsity", type=layer_map, action="append",
                   help="per-layer sparsity overrides, e.g. fc3=0.8 (repeatable)")
    p.add_argument("--budget", default=None, help="sensitivity: per-layer sparsities from a sensitivity scan")
    p.add_argument("--seed", type=int, default=0, help="fine-tune shuffling seed")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--name", help="a unique name for the child")
    p.add_argument("--dataset", default=None,
                   help="imported models: data set to fine-tune and test on (default: the one given at import)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser("sensitivity", help="per-layer accuracy when each layer alone is pruned")
    p.add_argument("model", metavar="MODEL", help="model id or name")
    p.add_argument("--sparsities", type=float_list, default=None,
                   help="comma-separated sparsities to scan (default 0.1,...,0.9,0.95,0.99)")
    p.add_argument("--target", type=_float, default=None,
                   help="overall sparsity to suggest a per-layer budget for")
    p.add_argument("--plot", default=None, help="write a PNG plot to this file")
    p.add_argument("--limit", type=int, default=None, help="evaluate on the first N validation images only")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_sensitivity)


def cmd_prune(args: argparse.Namespace) -> None:
    from prunelab.cli.imports import cmd_prune_imported, is_imported

    if is_imported(args.model):  # a torch.export program (prunelab import)
        cmd_prune_imported(args)
        return
    if args.dataset is not None:
        from prunelab.errors import UserError

        raise UserError("--dataset is for imported models; a trained model is fine-tuned on its own data set")
    from prunelab.progress import ProgressBar
    from prunelab.prune import prune
    from prunelab.store import Store

    store = Store()
    result = prune(args.model, sparsity=args.sparsity, scope=args.scope, method=args.method,
                   schedule=args.schedule, finetune_epochs=args.finetune_epochs, lr=args.lr,
                   distill=args.distill, ignore_layers=args.ignore_layers,
                   layer_sparsity=_merge_maps(args.layer_sparsity), budget=args.budget, seed=args.seed,
                   threads=args.threads, store=store, name=args.name,
                   callback=None if args.json else ProgressBar(f"fine-tune {args.model}"))
    out = result.to_dict()
    m = result.model
    what = "hidden units removed" if result.settings["method"] == "structured" else "sparsity"
    human = (f"stored model {m.id}{' (' + m.name + ')' if m.name else ''} from {result.parent}: "
             f"{what} {result.sparsity:.2%}, accuracy {result.accuracy_before_finetune:.2%} after pruning, "
             f"{result.test_accuracy:.2%} after fine-tuning"
             + (f" (parent {result.parent_accuracy:.2%})" if result.parent_accuracy is not None else "")
             + f", {m.nonzero():,} non-zero of {m.params():,} params, {result.seconds:.1f} s")
    emit(args, out, human)


def split_phrase(evaluated_on: dict[str, Any]) -> str:
    """'the validation split, 2,000 images (held out of the parent's training)', or a warning
    when the parent trained on those images."""
    split, count = evaluated_on.get("split", "test"), evaluated_on.get("count")
    text = f"the {split} split" + (f", {count:,} images" if count is not None else "")
    if split != "validation":
        return text
    if evaluated_on.get("seen_in_training"):
        return (text + " (warning: the parent was trained without a validation split and saw these images, "
                "so the curves are optimistic)")
    return text + " (held out of the parent's training)"


def cmd_sensitivity(args: argparse.Namespace) -> None:
    from prunelab.prune.sensitivity import DEFAULT_SPARSITIES, sensitivity

    res = sensitivity(args.model, args.sparsities or DEFAULT_SPARSITIES, limit=args.limit, threads=args.threads)
    out = res.to_dict()
    lines = [f"model {res.model}: measured on {split_phrase(res.evaluated_on)}",
             f"dense accuracy {res.dense_accuracy:.2%}; accuracy with one layer pruned (no fine-tuning):", res.table()]
    if args.target is not None:
        budget = res.budget(args.target)
        out["target"] = args.target
        out["budget"] = budget
        lines.append(f"suggested per-layer sparsity for {args.target:.0%} overall: "
                     + ", ".join(f"{n.rsplit('.', 1)[0]}={s:.4f}" for n, s in budget.items()))
        lines.append(f"use it: prunelab prune {args.model} --sparsity {args.target} --budget sensitivity")
    if args.plot:
        out["plot"] = str(res.plot(args.plot))
        lines.append(f"plot written to {out['plot']}")
    emit(args, out, "\n".join(lines))

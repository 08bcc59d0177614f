"""Choose the default fine-tuning recipe by measurement (docs/pruning.md).

Trains one dense LeNet-300-100 on full MNIST (the budget: its own epochs),
then prunes it with each candidate recipe at each sparsity, fine-tuning for
at most the parent's epochs, and prints test accuracies as a markdown table
(also written to benchmarks/prune_recipe.json).

    .venv/bin/python benchmarks/prune_recipe.py --threads 1
    .venv/bin/python benchmarks/prune_recipe.py --sparsities 0.98 --variants gradual,gradual-distill
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PRUNELAB_HOME", tempfile.mkdtemp(prefix="prunelab-recipe-"))

import prunelab  # noqa: E402
from prunelab.prune import Recipe  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "adam1e-4-const": {"schedule": "oneshot", "recipe": Recipe(lr=1e-4, lr_schedule="constant")},
    "adam1e-4-cosine": {"schedule": "oneshot", "recipe": Recipe(lr=1e-4)},
    "adam1e-3-const": {"schedule": "oneshot", "recipe": Recipe(lr=1e-3, lr_schedule="constant")},
    "adam1e-3-cosine": {"schedule": "oneshot", "recipe": Recipe(lr=1e-3)},  # = lr rewinding to the start
    "distill": {"schedule": "oneshot", "recipe": Recipe(lr=1e-3, distill=0.5)},
    "gradual": {"schedule": "gradual", "recipe": Recipe(lr=1e-3)},
    "gradual-distill": {"schedule": "gradual", "recipe": Recipe(lr=1e-3, distill=0.5)},
    "adam2e-3-cosine": {"schedule": "oneshot", "recipe": Recipe(lr=2e-3)},
    "adam2e-3-const": {"schedule": "oneshot", "recipe": Recipe(lr=2e-3, lr_schedule="constant")},
    "adam3e-3-cosine": {"schedule": "oneshot", "recipe": Recipe(lr=3e-3)},
    "gradual-const": {"schedule": "gradual", "recipe": Recipe(lr=1e-3, lr_schedule="constant")},
    "gradual-2e-3": {"schedule": "gradual", "recipe": Recipe(lr=2e-3)},
    "gradual-75": {"schedule": "gradual", "recipe": Recipe(lr=1e-3, gradual_fraction=0.75)},
    "gradual-25": {"schedule": "gradual", "recipe": Recipe(lr=1e-3, gradual_fraction=0.25)},
    "gradual-const-2e-3": {"schedule": "gradual", "recipe": Recipe(lr=2e-3, lr_schedule="constant")},
    "gradual-25-const": {"schedule": "gradual",
                         "recipe": Recipe(lr=1e-3, lr_schedule="constant", gradual_fraction=0.25)},
    "gradual-const-100": {"schedule": "gradual",
                          "recipe": Recipe(lr=1e-3, lr_schedule="constant", gradual_updates=100)},
    "gradual-const-3e-3": {"schedule": "gradual", "recipe": Recipe(lr=3e-3, lr_schedule="constant")},
    "gradual-const-5e-3": {"schedule": "gradual", "recipe": Recipe(lr=5e-3, lr_schedule="constant")},
    "gradual-const-2e-3-distill": {"schedule": "gradual",
                                   "recipe": Recipe(lr=2e-3, lr_schedule="constant", distill=0.5)},
    "gradual-const-2e-3-100": {"schedule": "gradual",
                               "recipe": Recipe(lr=2e-3, lr_schedule="constant", gradual_updates=100)},
    "gradual-const-3e-3-100": {"schedule": "gradual",
                               "recipe": Recipe(lr=3e-3, lr_schedule="constant", gradual_updates=100)},
    "gradual-const-5e-3-100": {"schedule": "gradual",
                               "recipe": Recipe(lr=5e-3, lr_schedule="constant", gradual_updates=100)},
    "gradual-2e-3-100-anneal": {"schedule": "gradual", "recipe": Recipe(
        lr=2e-3, lr_schedule="constant", gradual_updates=100, anneal=True)},
    "gradual-3e-3-100-anneal": {"schedule": "gradual", "recipe": Recipe(
        lr=3e-3, lr_schedule="constant", gradual_updates=100, anneal=True)},
    "default": {"schedule": None, "recipe": None},
    "default-sensitivity-budget": {"schedule": None, "recipe": None, "budget": "sensitivity"},
    "structured-layer": {"schedule": None, "recipe": None, "method": "structured", "scope": "layer"},
    "structured-global": {"schedule": None, "recipe": None, "method": "structured", "scope": "global"},
    "gradual-2e-3-100": {"schedule": "gradual", "recipe": Recipe(lr=2e-3, gradual_updates=100)},
    "adam3e-3-const": {"schedule": "oneshot", "recipe": Recipe(lr=3e-3, lr_schedule="constant")},
    "distill-0.9-t2": {"schedule": "oneshot", "recipe": Recipe(lr=1e-3, distill=0.9, temperature=2.0)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparsities", default="0.9,0.95,0.98")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=8, help="parent training epochs = fine-tune budget")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="default: --epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("prune_recipe.json")))
    args = ap.parse_args()
    sparsities = [float(s) for s in args.sparsities.split(",")]
    names = args.variants.split(",")
    ft = args.finetune_epochs or args.epochs
    t0 = time.time()
    parent = prunelab.train(arch="lenet-300-100", epochs=args.epochs, seed=args.seed, threads=args.threads)
    dense = parent.test_accuracy
    print(f"dense LeNet-300-100, {args.epochs} epochs, seed {args.seed}: {dense:.4f} ({parent.seconds:.0f} s)",
          flush=True)
    rows: list[dict[str, Any]] = []
    for s in sparsities:
        for name in names:
            v = VARIANTS[name]
            r = prunelab.prune(parent.model, sparsity=s, schedule=v["schedule"], recipe=v["recipe"],
                               finetune_epochs=ft, threads=args.threads, seed=args.seed, budget=v.get("budget"),
                               method=v.get("method", "magnitude"), scope=v.get("scope", "global"))
            row = {"variant": name, "sparsity": s, "accuracy_before_finetune": r.accuracy_before_finetune,
                   "test_accuracy": r.test_accuracy, "delta_pp": (r.test_accuracy - dense) * 100,
                   "curve": [h["test_accuracy"] for h in r.history], "seconds": r.seconds}
            rows.append(row)
            print(f"{s:.2f} {name:18} before {r.accuracy_before_finetune:.4f} after {r.test_accuracy:.4f} "
                  f"({row['delta_pp']:+.2f} pp) curve {' '.join(f'{a:.4f}' for a in row['curve'])} "
                  f"{r.seconds:.0f} s", flush=True)
    out = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "dense": dense, "epochs": args.epochs, "finetune_epochs": ft, "seed": args.seed,
           "threads": args.threads, "rows": rows, "seconds": time.time() - t0}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("\n| sparsity | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for s in sparsities:
        cells = [next(f"{r['test_accuracy']:.2%} ({r['delta_pp']:+.2f})" for r in rows
                      if r["variant"] == n and r["sparsity"] == s) for n in names]
        print(f"| {s:.0%} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

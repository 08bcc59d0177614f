"""Choose the default fine-tuning recipe on VALIDATION data (docs/pruning.md).

For each selection seed (default 100 and 101: never reported anywhere, the
report seeds of `benchmarks/prune_accuracy.py` are 0-4) a dense LeNet-300-100
is trained on the training part of full MNIST (55,000 images: a stratified
1/12 = 5,000 is held out as the validation split, seeded by the training
seed), then pruned with each candidate recipe at each sparsity, fine-tuned on
the same 55,000 images, and judged by its accuracy on the 5,000 validation
images. The test set is not looked at: the json and the table carry
validation accuracy only. Beside each candidate the equal-budget dense (the
parent trained on for the same number of epochs with the same lr profile and
no masks, i.e. `prunelab.prune(parent, sparsity=0)`) gives the reference.

The grid is compact on purpose (2 cores shared by five people): the current
default and one change at a time around it, plus longer fine-tunes at 99%
(`--long`). The winner per sparsity is the highest mean validation accuracy
over the selection seeds.

    .venv/bin/python benchmarks/prune_recipe.py --threads 1                 # both seeds, all of it
    # the two seeds as two processes, then one table (written into docs/pruning.md):
    .venv/bin/python benchmarks/prune_recipe.py --seeds 100 --partial /tmp/r100.json
    .venv/bin/python benchmarks/prune_recipe.py --seeds 101 --partial /tmp/r101.json
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/r100.json /tmp/r101.json
    # LeNet-5 at 98%: the default vs a 2x longer fine-tune
    .venv/bin/python benchmarks/prune_recipe.py --arch lenet-5 --seeds 100 --sparsities 0.98 \\
        --variants default --long 16 --partial /tmp/l5.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PRUNELAB_HOME", tempfile.mkdtemp(prefix="prunelab-recipe-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import prunelab  # noqa: E402
from prunelab.data.datasets import limit_train, load_dataset  # noqa: E402
from prunelab.models.model import Model  # noqa: E402
from prunelab.prune import DEFAULT_RECIPE, Recipe  # noqa: E402
from prunelab.train import evaluate, to_input  # noqa: E402

HERE = Path(__file__).resolve().parent
VAL_FRACTION = 1 / 12
D = DEFAULT_RECIPE

# name -> (schedule, recipe): the default and one change at a time around it
VARIANTS: dict[str, tuple[str, Recipe]] = {
    "default": ("gradual", D),
    "lr 1e-3": ("gradual", D.with_(lr=1e-3)),
    "lr 3e-3": ("gradual", D.with_(lr=3e-3)),
    "prune over 1/4": ("gradual", D.with_(gradual_fraction=0.25)),
    "no anneal (constant lr)": ("gradual", D.with_(anneal=False)),
    "one-shot": ("oneshot", D),
}


def val_split(seed: int, dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split `prunelab.train(..., seed=seed)` holds out: (x, y)."""
    ds = limit_train(load_dataset(dataset), None, VAL_FRACTION, seed)
    assert ds.x_val is not None and ds.y_val is not None
    return to_input(ds.x_val), torch.from_numpy(ds.y_val)


def val_accuracy(model: Model, xv: torch.Tensor, yv: torch.Tensor) -> float:
    return evaluate(model.to_torch(), xv, yv).accuracy


def run_seed(args: argparse.Namespace, seed: int, done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    xv, yv = val_split(seed)
    t = time.time()
    parent = prunelab.train(arch=args.arch, epochs=args.epochs, seed=seed, threads=args.threads,
                            val_fraction=VAL_FRACTION).model
    rows = [{"seed": seed, "variant": "parent", "sparsity": 0.0, "finetune_epochs": 0,
             "val_accuracy": val_accuracy(parent, xv, yv), "seconds": time.time() - t}]
    print(f"seed {seed}: {args.arch} parent ({args.epochs} epochs) val {rows[0]['val_accuracy']:.4f}", flush=True)
    sparsities = [float(s) for s in args.sparsities.split(",")]
    long_epochs = [int(v) for v in args.long.split(",") if v.strip()]
    jobs: list[tuple[str, float, int, str, Recipe]] = []
    for ft in sorted({args.epochs, *long_epochs}):  # equal-budget dense for each fine-tune length
        jobs.append(("equal-budget dense", 0.0, ft, "gradual", D))
    for s in sparsities:
        for name in args.variants.split(","):
            sched, rec = VARIANTS[name]
            jobs.append((name, s, args.epochs, sched, rec))
    for ft in long_epochs:
        for s in [float(v) for v in args.long_sparsities.split(",")]:
            jobs.append(("default", s, ft, "gradual", D))
    for name, s, ft, sched, rec in jobs:
        t = time.time()
        r = prunelab.prune(parent, sparsity=s, schedule=sched, recipe=rec, finetune_epochs=ft,
                           threads=args.threads, seed=seed)
        v = val_accuracy(r.model, xv, yv)
        lib_v = getattr(r, "val_accuracy", None)
        if lib_v is not None and abs(lib_v - v) > 1e-9:
            raise SystemExit(f"validation accuracy mismatch: library {lib_v} vs benchmark {v}")
        rows.append({"seed": seed, "variant": name, "sparsity": s, "finetune_epochs": ft, "schedule": sched,
                     "recipe": rec.to_dict(), "val_accuracy": v, "seconds": time.time() - t})
        if args.partial:  # rewritten after every row: a stopped run keeps what it measured
            Path(args.partial).write_text(json.dumps({"rows": done + rows, "partial": True}, indent=1))
        print(f"  {s:.2f} {name:26} ft {ft:2d}: val {v:.4f} ({time.time() - t:.0f} s)", flush=True)
    return rows


def table(res: dict[str, Any]) -> str:
    """Markdown: validation accuracy, mean over selection seeds, and the gap to the equal-budget dense."""
    rows = res["rows"]
    seeds = sorted({r["seed"] for r in rows})

    def mean(variant: str, s: float, ft: int) -> float | None:
        v = [r["val_accuracy"] for r in rows if r["variant"] == variant and r["sparsity"] == s
             and r["finetune_epochs"] == ft]
        return float(np.mean(v)) if len(v) == len(seeds) else None

    E = res["epochs"]
    sparsities = sorted({r["sparsity"] for r in rows if r["sparsity"] > 0})
    variants = [v for v in VARIANTS if any(r["variant"] == v and r["finetune_epochs"] == E for r in rows)]
    out = [f"Validation accuracy % (5,000 held-out training images), mean over selection seeds "
           f"{', '.join(map(str, seeds))} ({res['arch']}, parent {E} epochs, {res['date']}, "
           f"`benchmarks/prune_recipe.py`); Δ in pp vs the equal-budget dense. Test accuracy was not used.", "",
           "| recipe (fine-tune epochs) | " + " | ".join(f"{s:.0%}" for s in sparsities) + " |",
           "|---|" + "---|" * len(sparsities)]
    parent = mean("parent", 0.0, 0)
    fts = sorted({r["finetune_epochs"] for r in rows if r["variant"] == "equal-budget dense"})
    for ft in fts:
        m = mean("equal-budget dense", 0.0, ft)
        out.append(f"| equal-budget dense (parent + {ft}) | {m * 100:.2f} |" + " |" * (len(sparsities) - 1)
                   if m is not None else f"| equal-budget dense (parent + {ft}) | |")
    winners: dict[float, str] = {}
    for s in sparsities:
        scored = [(m, v) for v in variants if (m := mean(v, s, E)) is not None]
        if scored:
            winners[s] = max(scored)[1]
    dense_e = mean("equal-budget dense", 0.0, E)
    for v in variants:
        cells = []
        for s in sparsities:
            m = mean(v, s, E)
            cell = "" if m is None else f"{m * 100:.2f} ({(m - (dense_e or 0)) * 100:+.2f})"
            cells.append(f"**{cell}**" if cell and winners.get(s) == v else cell)
        out.append(f"| {v} ({E}) | " + " | ".join(cells) + " |")
    for ft in fts:
        if ft == E:
            continue
        dense_ft = mean("equal-budget dense", 0.0, ft)
        cells = []
        for s in sparsities:
            m = mean("default", s, ft)
            cells.append("" if m is None or dense_ft is None else f"{m * 100:.2f} ({(m - dense_ft) * 100:+.2f})")
        out.append(f"| default, longer fine-tune ({ft}) | " + " | ".join(cells) + " |")
    out += ["", f"Parent (no fine-tune): {parent * 100:.2f}. Winner on validation at "
            + ", ".join(f"{s:.0%}: {w}" for s, w in winners.items()) + "."]
    return "\n".join(out)


def write_block(path: Path, name: str, body: str) -> None:
    """Replace the text between `<!-- BEGIN name -->` and `<!-- END name -->` in `path`."""
    text = path.read_text()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {begin} ... {end} block; add the markers first")
    path.write_text(pattern.sub(lambda _m: f"{begin}\n{body}\n{end}", text))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="lenet-300-100")
    ap.add_argument("--seeds", default="100,101", help="selection seeds: never reported")
    ap.add_argument("--sparsities", default="0.95,0.98,0.99", help="sparsities of the grid")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=8, help="parent training epochs = fine-tune budget")
    ap.add_argument("--long", default="16", help="longer fine-tunes of the default, in epochs ('' = none)")
    ap.add_argument("--long-sparsities", default="0.99")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--partial", default=None, help="write this run's raw JSON here and stop")
    ap.add_argument("--merge", nargs="+", default=None, help="merge --partial files, print and write the table")
    ap.add_argument("--block", default=None, help="docs/pruning.md block to write (default: prune-recipe-ARCH)")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        full = [p for p in parts if not p.get("partial")]
        if not full:
            raise SystemExit("error: no finished run among the files; finish at least one")
        res = {**full[0], "rows": [r for p in parts for r in p["rows"]],
               "seconds": sum(p.get("seconds", 0.0) for p in parts), "processes": len(parts)}
    else:
        torch.set_num_threads(args.threads)
        t0 = time.time()
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
        rows: list[dict[str, Any]] = []
        for seed in seeds:
            rows += run_seed(args, seed, rows)
        res = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "arch": args.arch, "epochs": args.epochs, "threads": args.threads, "rows": rows,
               "seconds": time.time() - t0, "split": "validation (1/12 of the training set, seeded)"}
        if args.partial:
            Path(args.partial).write_text(json.dumps(res, indent=1))
            return
    body = table(res)
    print(body)
    suffix = "" if res["arch"] == "lenet-300-100" else "-" + res["arch"]
    (HERE / f"prune_recipe{suffix}.json").write_text(json.dumps(res, indent=1))
    write_block(HERE.parent / "docs" / "pruning.md", args.block or f"prune-recipe{suffix}", body)


if __name__ == "__main__":
    main()

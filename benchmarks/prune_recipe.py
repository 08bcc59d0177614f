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
    # second round (around lr 5e-3, at 98/99%), its own block and json (prune_recipe_round2.json):
    .venv/bin/python benchmarks/prune_recipe.py --seeds 100 --sparsities 0.98,0.99 --long "" \
        --variants round2 --partial /tmp/q100.json      # and the same with --seeds 101 --partial /tmp/q101.json
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/q100.json /tmp/q101.json --block prune-recipe-round2
    # third round (SGD with batch 64; seeds 102 and 103, with the dense trained on by each finalist's recipe):
    .venv/bin/python benchmarks/prune_recipe.py --seeds 102 --long "" --variants round3 \
        --dense-variants "lr 5e-3,SGD lr 5e-2 batch 64" --partial /tmp/t102.json    # and 103
    .venv/bin/python benchmarks/prune_recipe.py --seeds 102 --long "" --variants "" --no-dense \
        --dense-variants "SGD lr 1e-1 batch 64" --partial /tmp/d102.json             # and 103
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/t102.json /tmp/t103.json /tmp/d102.json \
        /tmp/d103.json --block prune-recipe-round3
    # LeNet-5, round 3 (does the winner's lr hold on a conv net?)
    .venv/bin/python benchmarks/prune_recipe.py --arch lenet-5 --epochs 3 --seeds 100 --sparsities 0.95,0.98 \
        --long "" --variants "lr 5e-3,SGD lr 1e-1 batch 64,SGD lr 5e-2 batch 64" --no-dense \
        --dense-variants "lr 5e-3,SGD lr 1e-1 batch 64" --partial /tmp/l5.json
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/l5.json --block prune-recipe-lenet-5-round3
    # fourth round (a warmup for lr 1e-1; fresh seeds 104 and 105, each recipe with its own dense)
    D="SGD lr 5e-2 batch 64,SGD lr 1e-1 batch 64 warmup 1/4,SGD lr 5e-2 batch 64 warmup 1/4"
    .venv/bin/python benchmarks/prune_recipe.py --seeds 104 --long "" --variants round4 --no-dense \
        --dense-variants "$D" --partial /tmp/m104.json                               # and 105
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/m104.json /tmp/m105.json --block prune-recipe-round4
    # ... and on LeNet-5, each candidate in its own process (A = "SGD lr 5e-2 batch 64", B = the warmup one)
    .venv/bin/python benchmarks/prune_recipe.py --arch lenet-5 --epochs 3 --seeds 104 --sparsities 0.95,0.98 \
        --long "" --variants "$A" --no-dense --dense-variants "$A" --partial /tmp/l5a.json     # and B
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/l5a.json /tmp/l5b.json --block prune-recipe-lenet-5-round4
    # fifth round (at 95%: prune over 1/4 or 3/4, batches of 32; fresh seeds 106-109, own dense each)
    A="SGD lr 5e-2 batch 64"; D="$A,$A prune over 1/4,$A prune over 3/4,SGD lr 2.5e-2 batch 32"
    .venv/bin/python benchmarks/prune_recipe.py --seeds 106,107 --long "" --variants round5 --no-dense \
        --dense-variants "$D" --partial /tmp/v106.json                     # and --seeds 108,109 in parallel
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/v106.json /tmp/v108.json --block prune-recipe-round5
    # ... and on LeNet-5 (seed 106), the default and the winner each in its own process (B = "$A prune over 3/4")
    .venv/bin/python benchmarks/prune_recipe.py --arch lenet-5 --epochs 3 --seeds 106 --sparsities 0.95,0.98 \
        --long "" --variants "$A" --no-dense --dense-variants "$A" --partial /tmp/l5a.json     # and B
    .venv/bin/python benchmarks/prune_recipe.py --merge /tmp/l5a.json /tmp/l5b.json --block prune-recipe-lenet-5-round5
    # LeNet-5 at 98%: the default vs a 2x longer fine-tune
    .venv/bin/python benchmarks/prune_recipe.py --arch lenet-5 --seeds 100 --sparsities 0.98 \\
        --variants default --long 16 --partial /tmp/l5.json
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import prunelab  # noqa: E402
from prunelab.data.datasets import limit_train, load_dataset  # noqa: E402
from prunelab.models.model import Model  # noqa: E402
from prunelab.prune import Recipe  # noqa: E402
from prunelab.train import evaluate, to_input  # noqa: E402
from sections import write_section  # noqa: E402  (benchmarks/sections.py)

HERE = Path(__file__).resolve().parent
VAL_FRACTION = 1 / 12
# The recipe that was the default before this selection; every variant is one change to it.
BASE = Recipe(lr=2e-3, lr_schedule="constant", gradual_fraction=0.5, gradual_updates=100, anneal=True)

# name -> (schedule, recipe)
VARIANTS: dict[str, tuple[str, Recipe]] = {
    "lr 2e-3 (previous default)": ("gradual", BASE),
    "lr 1e-3": ("gradual", BASE.with_(lr=1e-3)),
    "lr 3e-3": ("gradual", BASE.with_(lr=3e-3)),
    "lr 5e-3": ("gradual", BASE.with_(lr=5e-3)),
    "prune over 1/4": ("gradual", BASE.with_(gradual_fraction=0.25)),
    "no anneal (constant lr)": ("gradual", BASE.with_(anneal=False)),
    "one-shot": ("oneshot", BASE),
}
# Second round (2026-12-01), around the default the first round chose (lr 5e-3): one change each,
# aimed at 98-99% where the first round's winner missed its bars (docs/pruning.md).
DEFAULT = BASE.with_(lr=5e-3)
VARIANTS.update({
    "lr 1e-2": ("gradual", DEFAULT.with_(lr=1e-2)),
    "lr 5e-3 + distill 0.5": ("gradual", DEFAULT.with_(distill=0.5)),
    "lr 5e-3 + distill 0.9": ("gradual", DEFAULT.with_(distill=0.9)),
    "lr 5e-3 + prune over 3/4": ("gradual", DEFAULT.with_(gradual_fraction=0.75)),
    "SGD momentum lr 5e-2": ("gradual", DEFAULT.with_(optimizer="sgd", lr=5e-2)),
})
ROUND2 = ["lr 5e-3", "lr 1e-2", "lr 5e-3 + distill 0.5", "lr 5e-3 + distill 0.9", "lr 5e-3 + prune over 3/4",
          "SGD momentum lr 5e-2"]
# Third round (2026-12-01): SGD with momentum, the round-2 finalist at 99%, with batches of 64
# (twice the steps in the same epochs) at three learning rates. An exploratory pass on seeds 100
# and 101 (not in the repo) had tried batch 64 and 32 with Adam and 400 mask updates instead of
# 100; only SGD with batch 64 moved 98-99% by more than the seeds' spread.
SGD64 = DEFAULT.with_(optimizer="sgd", lr=5e-2, batch_size=64)
VARIANTS.update({
    "SGD lr 5e-2 batch 64": ("gradual", SGD64),
    "SGD lr 2.5e-2 batch 64": ("gradual", SGD64.with_(lr=2.5e-2)),
    "SGD lr 1e-1 batch 64": ("gradual", SGD64.with_(lr=1e-1)),
})
ROUND3 = ["lr 5e-3", "SGD lr 5e-2 batch 64", "SGD lr 2.5e-2 batch 64", "SGD lr 1e-1 batch 64"]
# Fourth round (2026-12-01, fresh seeds 104 and 105): lr 1e-1 had been best at 95-98% in round 3
# but diverged on LeNet-5 at its first steps. A linear warmup over the first quarter of the pruning
# run (Goyal et al. 2017) is the standard cure. Fixed before running: it replaces the default if its
# mean gap to its own equal-budget dense beats the default's at 95% and is not worse by more than
# 0.05 pp at 98% and 99%, and on LeNet-5 it trains and is within 0.1 pp of the default at 95/98%.
VARIANTS.update({
    "SGD lr 1e-1 batch 64 warmup 1/4": ("gradual", SGD64.with_(lr=1e-1, warmup=0.25)),
    "SGD lr 5e-2 batch 64 warmup 1/4": ("gradual", SGD64.with_(warmup=0.25)),
})
ROUND4 = ["SGD lr 5e-2 batch 64", "SGD lr 1e-1 batch 64 warmup 1/4", "SGD lr 5e-2 batch 64 warmup 1/4"]
# Fifth round (fresh seeds 106-109), aimed at 95%, the one bar still missed: one change each to the
# default's schedule (prune over a quarter or three quarters of the budget instead of half) or
# steps (batches of 32 at half the lr, the lr / batch ratio of the default). Fixed before running,
# each candidate against its own equal-budget dense (its recipe, no masks), means over the 4 seeds:
# it replaces the default if (a) its 95% child beats the default's by >= 0.05 pp, (b) its gap to its
# own dense at 95% beats the default's gap by >= 0.05 pp (a gap may not shrink by a weaker control,
# round 4's lesson), (c) its children are not worse than the default's by more than 0.05 pp at 98%
# and 99%, and (d) on LeNet-5 (seed 106, 3 + 3 epochs) it trains and is within 0.1 pp of the
# default at 95% and 98%. Several passing: the best gap at 95%.
VARIANTS.update({
    "SGD lr 5e-2 batch 64 prune over 1/4": ("gradual", SGD64.with_(gradual_fraction=0.25)),
    "SGD lr 5e-2 batch 64 prune over 3/4": ("gradual", SGD64.with_(gradual_fraction=0.75)),
    "SGD lr 2.5e-2 batch 32": ("gradual", SGD64.with_(lr=2.5e-2, batch_size=32)),
})
ROUND5 = ["SGD lr 5e-2 batch 64", "SGD lr 5e-2 batch 64 prune over 1/4", "SGD lr 5e-2 batch 64 prune over 3/4",
          "SGD lr 2.5e-2 batch 32"]
ROUNDS = {"round2": ROUND2, "round3": ROUND3, "round4": ROUND4, "round5": ROUND5}
RENAMED = {"default": "lr 2e-3 (previous default)"}  # the name rows of the first run carry


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
    for ft in [] if args.no_dense else sorted({args.epochs, *long_epochs}):  # equal-budget dense per length
        jobs.append(("equal-budget dense", 0.0, ft, "gradual", BASE))
    for name in filter(None, args.dense_variants.split(",")):  # the dense trained on with a candidate's recipe
        jobs.append((f"equal-budget dense: {name}", 0.0, args.epochs, "gradual", VARIANTS[name][1]))
    for s in sparsities:
        for name in ROUNDS.get(args.variants) or filter(None, args.variants.split(",")):
            sched, rec = VARIANTS[name]
            jobs.append((name, s, args.epochs, sched, rec))
    for ft in long_epochs:
        for s in [float(v) for v in args.long_sparsities.split(",") if v.strip()]:
            sched, rec = VARIANTS[args.long_variant]
            jobs.append((args.long_variant, s, ft, sched, rec))
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
    """Markdown: validation accuracy (mean over the selection seeds each candidate ran on) and the
    paired gap to the equal-budget dense of the same fine-tune length. Successive halving: the full
    grid runs on the first seed, the finalists on all; the winner is the best of the finalists."""
    rows = [{**r, "variant": RENAMED.get(r["variant"], r["variant"])} for r in res["rows"]]
    seeds = sorted({r["seed"] for r in rows})
    E = res["epochs"]

    def get(variant: str, s: float, ft: int) -> dict[int, float]:
        return {r["seed"]: r["val_accuracy"] for r in rows if r["variant"] == variant and r["sparsity"] == s
                and r["finetune_epochs"] == ft}

    def cell(variant: str, s: float, ft: int) -> str:
        # the candidate's own control where the run trained one (its recipe, no masks), else the shared one
        v, dense = get(variant, s, ft), get(f"equal-budget dense: {variant}", 0.0, ft) or get("equal-budget dense",
                                                                                            0.0, ft)
        if not v:
            return ""
        m = float(np.mean(list(v.values())))
        common = [k for k in v if k in dense]
        gap = f" ({float(np.mean([v[k] - dense[k] for k in common])) * 100:+.2f})" if common else ""
        return f"{m * 100:.2f}{gap}" + ("" if len(v) == len(seeds) else f" [seed {', '.join(map(str, sorted(v)))}]")

    sparsities = sorted({r["sparsity"] for r in rows if r["sparsity"] > 0})
    combos = sorted({(r["variant"], r["finetune_epochs"]) for r in rows if r["sparsity"] > 0},
                    key=lambda c: (c[1], list(VARIANTS).index(c[0]) if c[0] in VARIANTS else 99))
    winners: dict[float, str] = {}
    for s in sparsities:
        scored = [(len(v), float(np.mean(list(v.values()))), name) for name, ft in combos
                  if ft == E and (v := get(name, s, ft))]
        if scored:
            winners[s] = max(scored)[2]
    out = [f"Validation accuracy % (5,000 held-out training images; the test set was not evaluated), "
           f"{res['arch']}, parent {E} epochs, selection seeds {', '.join(map(str, seeds))} (mean over the seeds "
           f"a candidate ran on; the full grid on the first, the finalists on all), `benchmarks/prune_recipe.py`, "
           f"{res['date']}. In brackets: Δ pp vs the equal-budget dense of the same fine-tune length, paired "
           "per seed: the one trained with the candidate's own recipe where the table lists it, else the "
           "one trained with the previous default's. **Bold**: best finalist per sparsity.", "",
           "| recipe | fine-tune epochs | " + " | ".join(f"{s:.0%}" for s in sparsities) + " |",
           "|---|---|" + "---|" * len(sparsities)]
    for ft in sorted({r["finetune_epochs"] for r in rows if r["variant"] == "equal-budget dense"}):
        v = get("equal-budget dense", 0.0, ft)
        out.append(f"| equal-budget dense (no masks) | {ft} | " + " | ".join(
            [f"{float(np.mean(list(v.values()))) * 100:.2f}"] * len(sparsities)) + " |")
    for name in sorted({r["variant"] for r in rows if r["variant"].startswith("equal-budget dense: ")}):
        v = get(name, 0.0, E)
        out.append(f"| {name.replace('dense: ', 'dense (no masks), fine-tune recipe ')} | {E} | " + " | ".join(
            [f"{float(np.mean(list(v.values()))) * 100:.2f}"] * len(sparsities)) + " |")
    for name, ft in combos:
        cells = [cell(name, s, ft) for s in sparsities]
        cells = [f"**{c}**" if c and ft == E and winners.get(s) == name else c
                 for c, s in zip(cells, sparsities, strict=True)]
        out.append(f"| {name} | {ft} | " + " | ".join(cells) + " |")
    parent = get("parent", 0.0, 0)
    out += ["", f"Parent, no fine-tune: {float(np.mean(list(parent.values()))) * 100:.2f}. Best finalist at "
            + ", ".join(f"{s:.0%}: {w}" for s, w in winners.items()) + "."]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="lenet-300-100")
    ap.add_argument("--seeds", default="100,101", help="selection seeds: never reported")
    ap.add_argument("--sparsities", default="0.95,0.98,0.99", help="sparsities of the grid")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=8, help="parent training epochs = fine-tune budget")
    ap.add_argument("--long", default="8,16", help="longer fine-tunes of the default, in epochs ('' = none)")
    ap.add_argument("--long-sparsities", default="0.99")
    ap.add_argument("--long-variant", default="lr 3e-3", help="the recipe given the longer fine-tunes")
    ap.add_argument("--no-dense", action="store_true", help="skip the equal-budget dense (a run that has it)")
    ap.add_argument("--dense-variants", default="", help="also train the dense on with these variants' recipes")
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
        res = {**full[0], "rows": [r for p in parts for r in p["rows"]], "date": max(p["date"] for p in full),
               "seconds": sum(p.get("seconds", 0.0) for p in parts),
               "processes": sum(p.get("processes", 1) for p in parts)}
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
    block = args.block or f"prune-recipe{suffix}"
    (HERE / f"{block.replace('-', '_')}.json").write_text(json.dumps(res, indent=1))  # one json per block
    write_section(HERE.parent / "docs" / "pruning.md", block, body, create=False)


if __name__ == "__main__":
    main()

"""Pruning accuracy benchmark: ours vs the baselines, on identical code and data.

For each seed a dense LeNet-300-100 is trained on full MNIST (E epochs, the
fine-tune budget), then at each sparsity:

- ours:   `prunelab.prune(parent, sparsity=s)` with the default recipe;
- torch:  `torch.nn.utils.prune.global_unstructured` (L1), one-shot, fine-tuned
          by a plain PyTorch loop with the same budget (E epochs) and the same
          optimiser, lr and lr schedule as our recipe - the reparametrised
          weight_orig * weight_mask way;
- random: the same number of weights pruned uniformly at random, then our
          fine-tuning (same recipe);
- small dense: a dense 784-h-h/3-10 network with the same number of
          non-zero weights, trained from scratch for 2E epochs (the parent's
          training plus the fine-tune budget), after Zhu & Gupta 2017.

Plus: gradual vs one-shot at 98%, structured pruning (50% of hidden neurons
removed), and LeNet-5 at 95% global sparsity. Reported as mean +- std over
seeds with compression ratio (dense weights / non-zero weights) and FLOP
ratio (dense multiply-accumulates / those left), ShrinkBench style.
Writes the `prune` section of benchmarks/RESULTS.md, benchmarks/prune_accuracy.png
and benchmarks/prune_accuracy.json.

    .venv/bin/python benchmarks/prune_accuracy.py --threads 1            # 3 seeds, all sparsities
    .venv/bin/python benchmarks/prune_accuracy.py --quick --threads 1    # 1 seed, 90/95/98, fewer epochs
    # seeds in parallel processes, then one report:
    .venv/bin/python benchmarks/prune_accuracy.py --seed-list 1 --lenet5-seeds '' --partial /tmp/s1.json
    .venv/bin/python benchmarks/prune_accuracy.py --merge /tmp/s0.json /tmp/s1.json /tmp/s2.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PRUNELAB_HOME", tempfile.mkdtemp(prefix="prunelab-bench-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import prune as tprune  # noqa: E402

import prunelab  # noqa: E402
from prunelab.data.datasets import load_dataset  # noqa: E402
from prunelab.models.model import Model  # noqa: E402
from prunelab.prune import DEFAULT_RECIPE, random_masks  # noqa: E402
from prunelab.prune.finetune import apply_masks  # noqa: E402
from prunelab.train import evaluate, fit, set_threads, to_input  # noqa: E402

HERE = Path(__file__).resolve().parent


def flops_of(model: Model, masks: dict[str, np.ndarray] | None = None) -> int:
    """Multiply-accumulates per image counting only non-zero weights."""
    total = 0
    shapes = model.spec.output_shapes()
    for la, out in zip(model.spec.layers, shapes, strict=True):
        if not la.has_weights:
            continue
        w = model.weights[f"{la.name}.weight"]
        nz = int(np.count_nonzero(w if masks is None or f"{la.name}.weight" not in masks
                                  else masks[f"{la.name}.weight"]))
        positions = out[1] * out[2] if la.kind == "conv2d" else 1
        total += nz * positions
    return total


def prunable(model: Model) -> int:
    return sum(model.weights[n].size for n in model.weight_names())


def nonzero_weights(model: Model) -> int:
    return sum(int(np.count_nonzero(model.weights[n])) for n in model.weight_names())


def torch_baseline(parent: Model, s: float, epochs: int, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
                   y_test: torch.Tensor, seed: int) -> tuple[float, float, Model]:
    """Plain PyTorch: global_unstructured L1 pruning + a plain fine-tune loop."""
    module = parent.to_torch()
    params = [(m, "weight") for m in module if isinstance(m, (nn.Linear, nn.Conv2d))]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=s)
    before = evaluate(module, x_test, y_test).accuracy
    opt = torch.optim.Adam(module.parameters(), lr=DEFAULT_RECIPE.lr)
    steps = math.ceil(len(y) / DEFAULT_RECIPE.batch_size) * epochs
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
             if DEFAULT_RECIPE.lr_schedule == "cosine" else None)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        module.train()
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), DEFAULT_RECIPE.batch_size):
            idx = perm[i : i + DEFAULT_RECIPE.batch_size]
            opt.zero_grad()
            loss_fn(module(x[idx]), y[idx]).backward()
            opt.step()
            if sched is not None:
                sched.step()
    acc = evaluate(module, x_test, y_test).accuracy
    for m, name in params:
        tprune.remove(m, name)
    from prunelab.models.builder import get_weights

    return before, acc, Model(spec=parent.spec, weights=get_weights(module))


def random_baseline(parent: Model, s: float, epochs: int, x: torch.Tensor, y: torch.Tensor,
                    x_test: torch.Tensor, y_test: torch.Tensor, seed: int) -> tuple[float, float]:
    masks = random_masks({n: parent.weights[n] for n in parent.weight_names()}, s, seed=seed)
    tmasks = {n: torch.from_numpy(m.astype(np.float32)) for n, m in masks.items()}
    module = parent.to_torch()
    apply_masks(module, tmasks)
    before = evaluate(module, x_test, y_test).accuracy
    r = DEFAULT_RECIPE
    fit(module, x, y, epochs=epochs, lr=r.lr, batch_size=r.batch_size, optimizer=r.optimizer,
        lr_schedule=r.lr_schedule, seed=seed, masks=tmasks)
    return before, evaluate(module, x_test, y_test).accuracy


def small_dense_hidden(nonzeros: int) -> tuple[int, int]:
    """784-h1-h2-10 with h1 = 3 h2 (LeNet-300-100's proportions) and about `nonzeros` weights."""
    # 784*3h + 3h*h + 10h = n  ->  3h^2 + 2362h - n = 0
    h = (-2362 + math.sqrt(2362**2 + 12 * nonzeros)) / 6
    h2 = max(1, round(h))
    return max(1, 3 * h2), h2


def mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m * 100:.2f} ± {s * 100:.2f}"


def run(args: argparse.Namespace, seeds: list[int], lenet5_seeds: list[int]) -> dict[str, Any]:
    """All measurements for `seeds` (LeNet-300-100) and `lenet5_seeds`."""
    skip = set(filter(None, args.skip.split(",")))
    sparsities = [float(s) for s in args.sparsities.split(",")]
    set_threads(args.threads)
    t_start = time.time()
    ds = load_dataset("mnist")
    x, y = to_input(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = to_input(ds.x_test), torch.from_numpy(ds.y_test)
    E = args.epochs
    res: dict[str, Any] = {"dense": [], "rows": {}, "gradual98": {"oneshot": [], "gradual": []},
                           "structured": [], "lenet5": []}
    for seed in seeds:
        parent = prunelab.train(arch="lenet-300-100", epochs=E, seed=seed, threads=args.threads).model
        dense = parent.meta["metrics"]["test_accuracy"]
        res["dense"].append(dense)
        print(f"seed {seed}: dense {dense:.4f}", flush=True)
        for s in sparsities:
            row = res["rows"].setdefault(str(s), {"ours": [], "ours_before": [], "torch": [], "torch_before": [],
                                                  "random": [], "small_dense": [], "compression": [],
                                                  "flop_ratio": [], "small_dense_hidden": None})
            r = prunelab.prune(parent, sparsity=s, threads=args.threads, seed=seed)
            row["ours"].append(r.test_accuracy)
            row["ours_before"].append(r.accuracy_before_finetune)
            row["compression"].append(prunable(parent) / nonzero_weights(r.model))
            row["flop_ratio"].append(flops_of(parent) / flops_of(r.model, r.model.masks))
            line = f"  {s:.2f} ours {r.accuracy_before_finetune:.4f} -> {r.test_accuracy:.4f}"
            if s == 0.98 and "gradual" not in skip:
                res["gradual98"][r.settings["schedule"]].append(r.test_accuracy)
            if "baselines" not in skip:
                tb, ta, _ = torch_baseline(parent, s, E, x, y, x_test, y_test, seed)
                rb, ra = random_baseline(parent, s, E, x, y, x_test, y_test, seed)
                h1, h2 = small_dense_hidden(round((1 - s) * prunable(parent)))
                sd = prunelab.train(arch="mlp", hidden=(h1, h2), epochs=2 * E, seed=seed, threads=args.threads)
                row["torch"].append(ta)
                row["torch_before"].append(tb)
                row["random"].append(ra)
                row["small_dense"].append(sd.test_accuracy)
                row["small_dense_hidden"] = [h1, h2]
                line += (f" | torch {tb:.4f} -> {ta:.4f} | random {rb:.4f} -> {ra:.4f}"
                         f" | small dense {h1}-{h2} {sd.test_accuracy:.4f}")
            print(line, flush=True)
        if "gradual" not in skip:
            for sched in ("oneshot", "gradual"):
                if len(res["gradual98"][sched]) < len(res["dense"]):
                    r = prunelab.prune(parent, sparsity=0.98, schedule=sched, threads=args.threads, seed=seed)
                    res["gradual98"][sched].append(r.test_accuracy)
                    print(f"  0.98 {sched}: {r.test_accuracy:.4f}", flush=True)
        if "structured" not in skip:
            r = prunelab.prune(parent, sparsity=0.5, method="structured", scope="layer", threads=args.threads,
                               seed=seed)
            res["structured"].append({"accuracy": r.test_accuracy, "before": r.accuracy_before_finetune,
                                      "removed": r.sparsity, "params": r.model.params(),
                                      "layers": {k: list(v) for k, v in r.to_dict()["layers"].items()}})
            print(f"  structured 50% neurons: {r.accuracy_before_finetune:.4f} -> {r.test_accuracy:.4f}, "
                  f"{r.model.params()} params", flush=True)
    for seed in lenet5_seeds:
        parent5 = prunelab.train(arch="lenet-5", epochs=E, seed=seed, threads=args.threads).model
        d5 = parent5.meta["metrics"]["test_accuracy"]
        r = prunelab.prune(parent5, sparsity=0.95, threads=args.threads, seed=seed)
        res["lenet5"].append({"dense": d5, "pruned": r.test_accuracy, "before": r.accuracy_before_finetune,
                              "flop_ratio": flops_of(parent5) / flops_of(r.model, r.model.masks)})
        print(f"lenet-5 seed {seed}: dense {d5:.4f} -> 95% {r.test_accuracy:.4f}", flush=True)
    res["seconds"] = time.time() - t_start
    res["settings"] = {"seeds": len(seeds), "epochs": E, "sparsities": sparsities, "threads": args.threads,
                       "quick": args.quick, "recipe": DEFAULT_RECIPE.to_dict(),
                       "default_schedule": prunelab.prune.api.default_schedule(0.9, "magnitude")}
    res["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return res


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine runs of different seeds (run as separate processes) into one result."""
    out = json.loads(json.dumps(parts[0]))
    for p in parts[1:]:
        out["dense"] += p["dense"]
        out["structured"] += p["structured"]
        out["lenet5"] += p["lenet5"]
        for k in ("oneshot", "gradual"):
            out["gradual98"][k] += p["gradual98"][k]
        for s, row in p["rows"].items():
            if s not in out["rows"]:
                out["rows"][s] = row
                continue
            for key, v in row.items():
                if isinstance(v, list) and key != "small_dense_hidden":
                    out["rows"][s][key] += v
        out["seconds"] = max(out["seconds"], p["seconds"])
        out["settings"]["seeds"] += p["settings"]["seeds"]
    out["settings"]["processes"] = len(parts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", default=None, help="run exactly these seeds, e.g. 1 (for parallel runs)")
    ap.add_argument("--sparsities", default="0.5,0.75,0.9,0.95,0.98")
    ap.add_argument("--epochs", type=int, default=8, help="parent training epochs = fine-tune budget")
    ap.add_argument("--quick", action="store_true", help="1 seed, 90/95/98 only, 3 epochs, LeNet-5 skipped")
    ap.add_argument("--lenet5-seeds", default="0", help="seeds for the LeNet-5 95%% check ('' = skip)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: baselines,gradual,structured")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--partial", default=None, help="write this run's raw JSON here and stop (merge later)")
    ap.add_argument("--merge", nargs="+", default=None, help="merge --partial files and write the report")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    if args.merge:
        res = merge([json.loads(Path(p).read_text()) for p in args.merge])
    else:
        if args.quick:
            args.seeds, args.sparsities, args.epochs, args.lenet5_seeds = 1, "0.9,0.95,0.98", 3, ""
        seeds = ([int(v) for v in args.seed_list.split(",") if v.strip()] if args.seed_list is not None
                 else list(range(args.seeds)))
        res = run(args, seeds, [int(v) for v in args.lenet5_seeds.split(",") if v.strip()])
        if args.partial:
            Path(args.partial).write_text(json.dumps(res, indent=1))
            return
    section = report(res)
    print(section)
    if not args.no_write:
        (HERE / "prune_accuracy.json").write_text(json.dumps(res, indent=1))
        plot(res, HERE / "prune_accuracy.png")
        write_section(HERE / "RESULTS.md", "prune", section)


def report(res: dict[str, Any]) -> str:
    st = res["settings"]
    dense = res["dense"]
    dm = float(np.mean(dense))
    lines = [
        f"## Pruning accuracy (`benchmarks/prune_accuracy.py`{' --quick' if st['quick'] else ''})",
        "",
        f"{res['date']}, {res['machine']}, torch threads {st['threads']}, {res['seconds'] / 60:.0f} min"
        + (f" (run as {st['processes']} separate processes, merged with --merge)."
           if st.get("processes", 1) > 1 else "."),
        f"LeNet-300-100 on full MNIST (60k train / 10k test), dense parents trained {st['epochs']} epochs, "
        f"{st['seeds']} seed(s); every pruned model fine-tuned at most {st['epochs']} epochs (the budget). "
        f"Dense test accuracy {fmt(dense)} %. Cells: test accuracy %, mean ± std over seeds; Δ vs dense in pp.",
        "",
        "| sparsity | compression | FLOP ratio | ours (after prune → fine-tuned) | Δ ours | "
        "torch global_unstructured | random | small dense (same non-zeros) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s, row in res["rows"].items():
        ours_m = float(np.mean(row["ours"]))
        cells = [f"{float(s):.0%}", f"{np.mean(row['compression']):.1f}×", f"{np.mean(row['flop_ratio']):.1f}×",
                 f"{fmt(row['ours_before'])} → **{fmt(row['ours'])}**", f"{(ours_m - dm) * 100:+.2f}"]
        for key in ("torch", "random", "small_dense"):
            cells.append(fmt(row[key]) if row[key] else "—")
        if row["small_dense_hidden"]:
            cells[-1] += f" (784-{row['small_dense_hidden'][0]}-{row['small_dense_hidden'][1]}-10)"
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    bars = {"0.9": 0.1, "0.95": 0.2, "0.98": 0.5}
    checks = []
    for s, bar in bars.items():
        if s in res["rows"]:
            d = (float(np.mean(res["rows"][s]["ours"])) - dm) * 100
            checks.append(f"- {float(s):.0%}: Δ {d:+.2f} pp vs the bar −{bar} pp → "
                          f"{'met' if d >= -bar else 'MISSED'}")
    for s, row in res["rows"].items():
        if row["torch"]:
            ok = np.mean(row["ours"]) >= np.mean(row["torch"])
            checks.append(f"- {float(s):.0%}: ours {'≥' if ok else '<'} torch "
                          f"({np.mean(row['ours']) * 100:.2f} vs {np.mean(row['torch']) * 100:.2f})")
    g = res["gradual98"]
    if g["gradual"]:
        ok = np.mean(g["gradual"]) > np.mean(g["oneshot"])
        checks.append(f"- 98%: gradual {fmt(g['gradual'])} vs one-shot {fmt(g['oneshot'])} → gradual "
                      f"{'better' if ok else 'NOT better'}")
    if res["structured"]:
        acc = [r["accuracy"] for r in res["structured"]]
        d = (float(np.mean(acc)) - dm) * 100
        layers = res["structured"][0]["layers"]
        checks.append(f"- structured, 50% of hidden neurons removed (child "
                      f"{'-'.join(str(v[1]) for v in layers.values())}-{list(layers.values())[-1][0]}, "
                      f"{res['structured'][0]['params']:,} params): {fmt(acc)} %, Δ {d:+.2f} pp vs the bar −0.5 pp "
                      f"→ {'met' if d >= -0.5 else 'MISSED'}")
    if res["lenet5"]:
        dd = [r["dense"] for r in res["lenet5"]]
        pp = [r["pruned"] for r in res["lenet5"]]
        d = (float(np.mean(pp)) - float(np.mean(dd))) * 100
        checks.append(f"- LeNet-5, 95% global ({len(pp)} seed(s), FLOP ratio {res['lenet5'][0]['flop_ratio']:.1f}×): "
                      f"dense {fmt(dd)} → {fmt(pp)} %, Δ {d:+.2f} pp vs the bar −0.2 pp → "
                      f"{'met' if d >= -0.2 else 'MISSED'}")
    lines += ["Against the issue's bars:", "", *checks, "",
              f"Recipe: {st['recipe']}, schedule {st['default_schedule']}. "
              "Plot: `benchmarks/prune_accuracy.png`; raw numbers: `benchmarks/prune_accuracy.json`."]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [float(k) for k in res["rows"]]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for key, label in (("ours", "ours (default recipe)"), ("torch", "torch global_unstructured"),
                       ("random", "random pruning"), ("small_dense", "small dense, same non-zeros")):
        vals = [res["rows"][k][key] for k in res["rows"]]
        if not all(vals):
            continue
        m = [np.mean(v) * 100 for v in vals]
        e = [np.std(v, ddof=1) * 100 if len(v) > 1 else 0 for v in vals]
        ax.errorbar([x * 100 for x in s], m, yerr=e, marker="o", ms=4, capsize=3, label=label)
    ax.axhline(np.mean(res["dense"]) * 100, color="gray", ls="--", lw=1, label="dense parent")
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_ylim(max(80, ax.get_ylim()[0]), 100)
    ax.set_title("LeNet-300-100: prune + fine-tune within the parent's training budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace only the text between this section's markers."""
    from prunelab.atomic import write_bytes_atomic

    text = path.read_text()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = f"{begin}\n{body}\n{end}"
    text = pattern.sub(lambda _m: new, text) if pattern.search(text) else text.rstrip() + f"\n\n{new}\n"
    write_bytes_atomic(path, text.encode())


if __name__ == "__main__":
    main()

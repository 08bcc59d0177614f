"""How `auto` chooses the strategy at a fixed fraction: five rules compared on DEVELOPMENT seeds.

OMP_NUM_THREADS=1 python benchmarks/select_rules.py [--seeds 0-9] [--families histories,sklearn]
[--keep 0.3] [--save FILE] [--load FILE ...] [--no-write]

For every cell (data set x task x seed of `prunelab.validate.families`) it runs `auto`'s search at
`--keep` once (the same splits, the same per-split held-out scores every rule sees), then selects
`--keep` of the store with every strategy on the whole training part and scores the downstream
5-NN on the cell's test set, and random as the mean of 3 draws. A rule maps the search's table to
one strategy; its test score is that strategy's. Rules:

- `test+bonferroni`: random unless another strategy's paired gain exceeds t(1 - 0.05/m, J - 1)
  x the Nadeau-Bengio corrected se (m = other strategies): `auto` before this comparison;
- `best mean`: the best mean held-out score, random included (what `auto` does now with a budget);
- `gain > 1 se`, `gain > 0.5 se`, `test, no Bonferroni`: random unless beaten by that margin.

Criterion, fixed before any number was looked at: cells meeting both ">= random + 0.5 pp and >=
full - 1 pp" minus 3 x the cells below random - 0.5 pp. A rule that picks random is also below
random - 0.5 pp whenever its single random draw falls below the mean of three: the table says how
many of a rule's cells below random came from a non-random pick. Development seeds only (0-9);
the report seeds (1000-1004) are benchmarks/select_peers.py's. Writes the `select:rules` block of
benchmarks/RESULTS.md with machine and date.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import prunelab
from prunelab.select import search
from prunelab.validate import families
from prunelab.validate.scenarios import fit_and_score

Rule = Callable[[list[search.Cell], float], str]


def margin_rule(k: Callable[[int, int], float]) -> Rule:
    """Random unless another strategy's paired gain > k(m, J) x corrected se; then the largest gain."""

    def rule(cells: list[search.Cell], ratio: float) -> str:
        base = next(c for c in cells if c.strategy == search.BASELINE)
        others = [c for c in cells if c is not base]
        best: tuple[str, float] | None = None
        for c in others:
            gain, se = c.versus(base.scores, ratio)
            if gain > 0 and gain > k(len(others), len(base.scores)) * se and (best is None or gain > best[1]):
                best = (c.strategy, gain)
        return best[0] if best else search.BASELINE

    return rule


def best_mean(cells: list[search.Cell], ratio: float) -> str:
    p = search.best(cells, ratio)
    return p.cell.strategy if p is not None else search.BASELINE


RULES: dict[str, Rule] = {
    "test+bonferroni": margin_rule(lambda m, j: search.critical(0.05 / m, j)),
    "best mean": best_mean,
    "gain > 1 se": margin_rule(lambda m, j: 1.0),
    "gain > 0.5 se": margin_rule(lambda m, j: 0.5),
    "test, no Bonferroni": margin_rule(lambda m, j: search.critical(0.05, j)),
}


def measure_cell(cell: Any, keep: float) -> dict[str, Any]:
    """The search's per-split table at `keep` and every strategy's test score (points)."""
    seen: dict[str, Any] = {}
    original = search.best

    def spy(at_f: list[search.Cell], ratio: float) -> search.Pick | None:
        seen["cells"] = [(c.strategy, c.fraction, list(c.scores)) for c in at_f]
        seen["ratio"] = ratio
        return original(at_f, ratio)

    search.best = spy  # type: ignore[assignment]  # read the table decide() sees, unchanged
    try:
        prunelab.select(cell.X, cell.y, keep=keep, strategy="auto", task=cell.task, random_state=cell.seed,
                        **cell.auto_options)  # the cell's metric, as `prunelab validate` tells auto
    finally:
        search.best = original  # type: ignore[assignment]
    full = fit_and_score(cell, np.arange(len(cell.X)), 1)["score"]
    rnd = float(np.mean([fit_and_score(cell, prunelab.select(
        cell.X, cell.y, keep=keep, strategy="random", task=cell.task, random_state=cell.seed * 1000 + j).indices,
        1)["score"] for j in range(3)]))
    test = {s: fit_and_score(cell, prunelab.select(cell.X, cell.y, keep=keep, strategy=s, task=cell.task,
                                                   random_state=cell.seed).indices, 1)["score"]
            for s, _, _ in seen["cells"]}
    name = cell.scope.split(" ")
    return {"family": name[0], "dataset": name[1], "task": name[2], "seed": cell.seed, "full": full,
            "random": rnd, "test": test, "cells": seen["cells"], "ratio": seen["ratio"]}


def score_rules(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rule: cells passing, below random - 0.5 (all / by a non-random pick), criterion, mean
    gain over random (pp), worst data set x task mean gain over the seeds (pp)."""
    out = []
    for name, rule in RULES.items():
        ok = below = harm = 0
        gains: list[float] = []
        per: dict[str, list[float]] = {}
        for r in rows:
            cells = [search.Cell(s, f, tuple(sc)) for s, f, sc in r["cells"]]
            s = rule(cells, r["ratio"])
            score = r["test"][s]
            g = score - r["random"]
            ok += g >= 0.5 and score >= r["full"] - 1
            below += g < -0.5
            harm += g < -0.5 and s != search.BASELINE
            gains.append(g)
            per.setdefault(f"{r['dataset']} {r['task']}", []).append(g)
        worst = min(per.items(), key=lambda kv: np.mean(kv[1]))
        out.append({"rule": name, "cells": len(rows), "pass": ok, "below": below, "below_nonrandom": harm,
                    "criterion": ok - 3 * below, "mean_gain": float(np.mean(gains)),
                    "worst_group": worst[0], "worst_group_gain": float(np.mean(worst[1]))})
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| family | rule | cells | >= random + 0.5 and >= full - 1 | < random - 0.5 (non-random pick) "
             "| criterion | mean gain over random, pp | worst data set x task (mean over seeds), pp |",
             "|---|---|---|---|---|---|---|---|"]
    for fam in sorted({r["family"] for r in rows}) + ["all"]:
        sub = [r for r in rows if fam in ("all", r["family"])]
        for s in score_rules(sub):
            lines.append(f"| {fam} | {s['rule']} | {s['cells']} | {s['pass']} | {s['below']} "
                         f"({s['below_nonrandom']}) | {s['criterion']} | {s['mean_gain']:+.2f} | "
                         f"{s['worst_group']} {s['worst_group_gain']:+.2f} |")
    return "\n".join(lines)


def dev_arguments(doc: str | None, seeds: str, fams: str, ap: argparse.ArgumentParser | None = None
                  ) -> tuple[argparse.Namespace, list[int], list[dict[str, Any]]]:
    """The command line shared by the rule comparisons: (args, development seeds, rows loaded with
    --load or empty). Refuses the report seeds (1000 on)."""
    ap = ap or argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=seeds)
    ap.add_argument("--families", default=fams)
    ap.add_argument("--save")
    ap.add_argument("--load", nargs="+", help="rows saved by --save (parts run in parallel): no measuring")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    used = list(range(int(lo), int(hi or lo) + 1))
    if any(s >= 1000 for s in used):
        raise SystemExit("error: seeds from 1000 on are the report seeds; compare rules on development seeds 0-999")
    rows: list[dict[str, Any]] = []
    for p in args.load or []:
        rows += json.loads(Path(p).read_text())
    return args, used, rows


def provenance(rows: list[dict[str, Any]], args: argparse.Namespace, t0: float) -> tuple[list[int], str, str]:
    """(seeds used, how the rows were made, families) for a RESULTS block's header."""
    used = sorted({r["seed"] for r in rows})
    how = (" in parts with `--save`, merged with `--load`" if args.load
           else f", {(time.perf_counter() - t0) / 60:.0f} min")
    return used, how, ",".join(sorted({r["family"] for r in rows}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=float, default=0.3)
    args, seeds, rows = dev_arguments(__doc__, "0-9", "histories,sklearn", ap)
    t0 = time.perf_counter()
    if not args.load:
        for fam in args.families.split(","):
            for cell in families.cells(fam, seeds, False):
                r = measure_cell(cell, args.keep)
                rows.append(r)
                if args.save:
                    Path(args.save).write_text(json.dumps(rows))
                print(f"{cell.scope} seed {cell.seed}: full {r['full']:.2f} random {r['random']:.2f} "
                      + " ".join(f"{k} {v:.1f}" for k, v in r["test"].items()), flush=True)
    text = table(rows)
    print(text)
    if args.no_write:
        return
    from select_scale import machine, write_block  # same folder: shared RESULTS.md writer

    used, how, fams = provenance(rows, args, t0)
    write_block("rules", f"### How `auto` picks the strategy at a fixed fraction: rules on development seeds "
                f"(`OMP_NUM_THREADS=1 python benchmarks/select_rules.py --seeds {used[0]}-{used[-1]} --families "
                f"{fams} --keep {args.keep}`{how}; {machine()})\n\n"
                f"Development seeds {used[0]}-{used[-1]} only. Test scores at {args.keep:.0%} against random "
                "(mean of 3 draws) and the full store; criterion = passing cells - 3 x cells below random - "
                "0.5 pp (fixed before measuring). In brackets: cells below random where the rule had picked "
                "another strategy (the rest are a single random draw below the mean of three).\n\n" + text)


if __name__ == "__main__":
    main()

"""How plain `select` (auto without --keep) picks the fraction: rules compared on DEVELOPMENT seeds.

OMP_NUM_THREADS=1 python benchmarks/select_fraction_rules.py [--seeds 0-4]
[--families histories,sklearn,workloads] [--save FILE] [--load FILE ...] [--no-write]

For every cell (data set x task x seed of `prunelab.validate.families`) it runs `auto`'s search
once over the whole grid (a tolerance no fraction can fail, so that every fraction is measured on
the same splits), keeping every split's held-out score and the per-unit contributions behind it.
Each rule then walks that one table from the largest fraction down and stops at the first
fraction that fails; the last fraction passed is kept (none: everything). At each fraction the
strategy is either `auto`'s walk rule until now ("test": random unless another strategy beats it
beyond the fold noise, Bonferroni over the strategies) or the rule `auto` uses with a budget
("best": the best mean held-out score, random included), each with each loss rule. The chosen subset is selected from
the whole training part and the downstream 5-NN scored on the cell's test set. Rules (the loss
is full - subset's held-out score, tolerance 1 pp, alpha 0.05):

- `split bound` (what `auto` did before this comparison): mean loss + t(1 - alpha, J - 1) x the
  Nadeau-Bengio corrected se over the J splits <= tolerance;
- `unit bound`: mean loss + t x the se of the loss paired per held-out unit (a workload never
  seen, or a held-out run of a known one; `search.pooled_loss`) <= tolerance;
- `point`: mean loss <= tolerance (the estimate alone; what the issue's text describes);
- `point, no detectable loss`: mean loss <= tolerance and the loss is not significant at alpha
  (mean - t x unit se <= 0).

Criterion, fixed before any number was looked at: the fraction checks of `prunelab validate`
(benchmarks/RESULTS.md `select:validate`: loss <= 1 pp; >= 50 % of the predictor's bytes saved on
stores with repeats; >= 90 % kept on stores without) passed per data set x task, on the mean over
the seeds, counted over all data sets; ties go to the rule that keeps more. Development seeds
only (0-999); the report seeds (1000-1004) are benchmarks/select_peers.py's. Writes the
`select:fraction-rules` block of benchmarks/RESULTS.md with machine and date.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import prunelab
from prunelab.select import search
from prunelab.validate import Thresholds, families
from prunelab.validate.scenarios import fit_and_score

TOLERANCE = 0.01
ALPHA = 0.05
Loss = tuple[float, float, int]  # mean, se, sample size
Rule = Callable[[Loss, Loss], bool]  # (split loss, unit loss) -> the fraction passes


def _bound(loss: Loss) -> float:
    mean, se, n = loss
    return mean + search.critical(ALPHA, n) * se if se > 0 else mean


LOSS_RULES: dict[str, Rule] = {
    "split bound": lambda split, unit: _bound(split) <= TOLERANCE,
    "unit bound": lambda split, unit: _bound(unit) <= TOLERANCE,
    "point": lambda split, unit: split[0] <= TOLERANCE,
    "point, no detectable loss": lambda split, unit: (split[0] <= TOLERANCE
                                                      and unit[0] - search.critical(ALPHA, unit[2]) * unit[1] <= 0),
}
PICKS = ("test", "best")
RULES: dict[str, tuple[str, Rule]] = {f"{p}, {name}": (p, rule) for p in PICKS for name, rule in LOSS_RULES.items()}


def measure_cell(cell: Any) -> dict[str, Any]:
    """The search's whole table (per-split scores and per-unit contributions, reduced to the two
    losses every rule needs) and the test score of every (strategy, fraction) a rule may pick."""
    seen: dict[str, Any] = {}
    original = search.decide

    def spy(full: list[float], cells: list[search.Cell], *args: Any, **kwargs: Any) -> Any:
        seen["full"], seen["cells"] = full, cells
        seen["ratio"] = args[6] if len(args) > 6 else kwargs.get("held_out_ratio", 0.5)
        seen["units"] = args[7] if len(args) > 7 else kwargs.get("full_units", ())
        return original(full, cells, *args, **kwargs)

    search.decide = spy  # type: ignore[assignment]  # read the table decide() sees, unchanged
    try:
        prunelab.select(cell.X, cell.y, keep=None, strategy="auto", task=cell.task, random_state=cell.seed,
                        tolerance=10.0,  # no fraction fails: the whole grid is measured
                        **cell.auto_options)  # the cell's metric, as `prunelab validate` tells auto
    finally:
        search.decide = original  # type: ignore[assignment]
    full, ratio, units = tuple(seen["full"]), seen["ratio"], seen["units"]
    everything = np.arange(len(cell.X))
    ref = fit_and_score(cell, everything, 1)
    tested: dict[tuple[str, float], dict[str, float]] = {}
    steps = []
    for frac in sorted({c.fraction for c in seen["cells"]}, reverse=True):
        at_f = [c for c in seen["cells"] if c.fraction == frac]
        step: dict[str, Any] = {"fraction": frac}
        for kind, chosen in (("test", search.pick(at_f, ALPHA, ratio)), ("best", search.best(at_f, ratio))):
            assert chosen is not None
            c = chosen.cell
            if (c.strategy, frac) not in tested:
                sel = prunelab.select(cell.X, cell.y, keep=frac, strategy=c.strategy, task=cell.task,
                                      random_state=cell.seed)
                m = fit_and_score(cell, sel.indices, 1)
                tested[c.strategy, frac] = {"test": m["score"], "kept": len(sel.indices) / len(cell.X),
                                            "saving": 1.0 - m["model_bytes"] / ref["model_bytes"]}
            step[kind] = {"strategy": c.strategy, "split": list(c.loss(full, ratio)),
                          "unit": list(c.loss(full, ratio, units)), **tested[c.strategy, frac]}
        steps.append(step)
    name = cell.scope.split(" ")
    return {"family": name[0], "dataset": name[1], "task": name[2], "seed": cell.seed, "full": ref["score"],
            "redundant": cell.redundant, "steps": steps}


def walk(row: dict[str, Any], how: tuple[str, Rule]) -> dict[str, Any]:
    """The step the rule keeps (test score, kept share, saving); everything when none passes."""
    kind, rule = how
    last = None
    for step in row["steps"]:
        s = step[kind]
        if not rule(tuple(s["split"]), tuple(s["unit"])):
            break
        last = s
    return last or {"test": row["full"], "kept": 1.0, "saving": 0.0, "fraction": 1.0, "strategy": "all"}


def score_rules(rows: list[dict[str, Any]], th: Thresholds) -> list[dict[str, Any]]:
    """Per rule and data set x task (means over seeds): loss, kept, saving and the checks passed."""
    out = []
    groups = sorted({(r["family"], r["dataset"], r["task"]) for r in rows})
    for name, rule in RULES.items():
        passed = total = 0
        detail = []
        for g in groups:
            sub = [r for r in rows if (r["family"], r["dataset"], r["task"]) == g]
            picks = [walk(r, rule) for r in sub]
            loss = float(np.mean([r["full"] - p["test"] for r, p in zip(sub, picks, strict=True)]))
            kept = float(np.mean([p["kept"] for p in picks]))
            saving = float(np.mean([p["saving"] for p in picks]))
            checks = [loss <= th.max_loss_pp]
            if sub[0]["redundant"] is True:
                checks.append(saving >= th.min_auto_saving)
            elif sub[0]["redundant"] is False:
                checks.append(kept >= th.min_kept_nonredundant)
            passed += sum(checks)
            total += len(checks)
            detail.append({"group": " ".join(g), "loss": loss, "kept": kept, "saving": saving,
                           "ok": all(checks), "redundant": sub[0]["redundant"]})
        out.append({"rule": name, "passed": passed, "total": total,
                    "mean_kept": float(np.mean([d["kept"] for d in detail])), "detail": detail})
    return out


def table(rows: list[dict[str, Any]]) -> str:
    scored = score_rules(rows, Thresholds())
    lines = ["| rule | fraction checks passed | mean kept | data sets losing > 1 pp | largest loss, pp | "
             "kept on stores without repeats (min) |", "|---|---|---|---|---|---|"]
    for s in scored:
        losses = [d["loss"] for d in s["detail"]]
        plain = [d["kept"] for d in s["detail"] if d["redundant"] is False]
        lines.append(f"| {s['rule']} | {s['passed']} of {s['total']} | {s['mean_kept']:.0%} | "
                     f"{sum(v > 1.0 for v in losses)} of {len(losses)} | {max(losses):+.2f} | "
                     f"{min(plain):.0%} |" if plain else "- |")
    top = max(scored, key=lambda s: (s["passed"], s["mean_kept"]))
    now = next(s for s in scored if s["rule"] == "test, split bound")
    lines += ["", f"By the criterion: **{top['rule']}** ({top['passed']} of {top['total']}); `auto`'s rule, "
              f"test, split bound: {now['passed']} of {now['total']}."]
    lines += ["", "Per data set x task (mean over seeds): loss against full, pp / kept share, per rule:", "",
              "| data set x task | repeats | " + " | ".join(s["rule"] for s in scored) + " |",
              "|---|---|" + "---|" * len(scored)]
    for i, d in enumerate(scored[0]["detail"]):
        red = {True: "yes", False: "no", None: "-"}[d["redundant"]]
        cells = [f"{s['detail'][i]['loss']:+.2f} / {s['detail'][i]['kept']:.0%}" for s in scored]
        lines.append(f"| {d['group']} | {red} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from select_rules import dev_arguments  # same folder: the rule comparisons' shared command line

    args, seeds, rows = dev_arguments(__doc__, "0-4", "histories,sklearn,workloads")
    t0 = time.perf_counter()
    if not args.load:
        for fam in args.families.split(","):
            cells = (families.workload_cells((100, 1000), seeds, test_size=2000) if fam == "workloads"
                     else families.cells(fam, seeds, False))
            for cell in cells:
                if not cell.quality:
                    continue
                r = measure_cell(cell)
                rows.append(r)
                if args.save:
                    Path(args.save).write_text(json.dumps(rows))
                print(f"{cell.scope} seed {cell.seed}: full {r['full']:.2f}; "
                      + " ".join(f"{s['fraction']:.0%} {s[k]['strategy']} {s[k]['test']:.1f} "
                                 f"(split {s[k]['split'][0] * 100:+.2f}+-{s[k]['split'][1] * 100:.2f}, "
                                 f"unit +-{s[k]['unit'][1] * 100:.2f})" for s in r["steps"] for k in PICKS),
                      flush=True)
    text = table(rows)
    print(text)
    if args.no_write:
        return
    from select_rules import provenance
    from select_scale import machine, write_block  # same folder: shared RESULTS.md writer

    used, how, fams = provenance(rows, args, t0)
    write_block("fraction-rules", "### How plain `select` picks the fraction: rules on development seeds "
                f"(`OMP_NUM_THREADS=1 python benchmarks/select_fraction_rules.py --seeds {used[0]}-{used[-1]} "
                f"--families {fams}`{how}; {machine()})\n\n"
                f"Development seeds {used[0]}-{used[-1]} only; test scores of the 5-NN on each cell's held-out "
                "set. Criterion (fixed before measuring): the fraction checks of `select:validate` passed, "
                "per data set x task on the mean over seeds; ties to the rule that keeps more. `auto` uses "
                "the criterion's pick (docs/data-pruning.md, \"How auto picks the fraction\").\n\n" + text)


if __name__ == "__main__":
    main()

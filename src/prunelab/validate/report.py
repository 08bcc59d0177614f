"""Validation output: results.json, report.md, report.html and PNG plots (matplotlib, Agg).

The Markdown tables here (`family_table`, `strategy_table`, `check_table`) are also what the
benchmark scripts write into benchmarks/RESULTS.md, so the report and the results file agree.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from prunelab.atomic import write_atomic, write_bytes_atomic

METHOD_ORDER = ("full", "random", "best-on-validation", "auto", "auto-fraction")


def _group(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]]:
    out: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("quality", True):
            out[(r["family"], r["dataset"], r["task"])][r["method"]].append(r)
    return out


def seed_stats(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """(mean, std) over seeds of the per-seed means of `key` (random has several draws per seed)."""
    by: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            by[r["seed"]].append(float(r[key]))
    per_seed = [float(np.mean(v)) for v in by.values()]
    return (float(np.mean(per_seed)), float(np.std(per_seed))) if per_seed else (float("nan"), float("nan"))


def _ms(rows: list[dict[str, Any]], key: str, fmt: str = ".2f") -> str:
    m, s = seed_stats(rows, key)
    return f"{m:{fmt}} ± {s:{fmt}}"


def family_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: per family / data set / task, mean ± std over seeds of the held-out score of the
    full store, random, the strategy chosen on validation, auto at the fixed fraction and auto's
    own fraction (kept share, predictor bytes saved, rows' bytes saved, predict-latency ratio)."""
    lines = ["| family | data set | task | metric | seeds | full | random 30% | best on validation 30% (chosen) | "
             "auto 30% (ran) | auto fraction | auto kept | predictor bytes saved | rows bytes saved | "
             "predict speedup |", "|" + "---|" * 14]
    for (fam, ds, task), m in sorted(_group(rows).items()):
        if "auto" not in m:
            continue
        full = m["auto"]
        seeds = len({r["seed"] for r in full})
        chosen = ", ".join(sorted({r.get("chosen", "") for r in m.get("best-on-validation", [])})) or "-"
        ran = ", ".join(sorted({r["strategy"] for r in m["auto"]}))
        af = m.get("auto-fraction", [])
        best = _ms(m["best-on-validation"], "score") if m.get("best-on-validation") else "-"
        line = (f"| {fam} | {ds} | {task} | {full[0]['metric']} | {seeds} | {_ms(full, 'score_full')} | "
                f"{_ms(m['random'], 'score')} | {best} ({chosen}) | {_ms(m['auto'], 'score')} ({ran}) | ")
        if af:
            speed = [r["predict_speedup"] for r in af if r.get("predict_speedup")]
            ratio = f"{float(np.median(speed)):.2f}x" if speed else "-"
            line += (f"{_ms(af, 'score')} | {seed_stats(af, 'kept_fraction')[0]:.1%} | "
                     f"{seed_stats(af, 'model_saving')[0]:.1%} | {seed_stats(af, 'rows_saving')[0]:.1%} | "
                     f"{ratio} |")
        else:
            line += "- | - | - | - | - |"
        lines.append(line)
    return lines


def strategy_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: mean held-out score of every strategy at the fixed fraction, per cell."""
    groups = _group(rows)
    methods = sorted({m for g in groups.values() for m in g if m not in METHOD_ORDER})
    lines = ["| family | data set | task | full | random | " + " | ".join(methods) + " | auto |",
             "|" + "---|" * (5 + len(methods) + 1)]
    for (fam, ds, task), m in sorted(groups.items()):
        if "auto" not in m:
            continue
        cells = [f"{seed_stats(m[x], 'score')[0]:.2f}" if m.get(x) else "-" for x in methods]
        lines.append(f"| {fam} | {ds} | {task} | {seed_stats(m['auto'], 'score_full')[0]:.2f} | "
                     f"{seed_stats(m['random'], 'score')[0]:.2f} | " + " | ".join(cells) +
                     f" | {seed_stats(m['auto'], 'score')[0]:.2f} |")
    return lines


def check_table(checks: list[dict[str, Any]], kind: str) -> list[str]:
    lines = ["| result | check | scope | value | threshold | detail |", "|---|---|---|---|---|---|"]
    for c in checks:
        if c.get("kind", "quality") == kind:
            mark = ("PASS" if kind == "quality" else "held") if c["passed"] else "**FAIL**"
            lines.append(f"| {mark} | {c['name']} | {c['scope']} | {_fmt(c['value'])} | {c['threshold']} | "
                         f"{c['detail']} |")
    return lines


def mnist_table(rows: list[dict[str, Any]]) -> list[str]:
    mn = [r for r in rows if r["family"] == "mnist"]
    if not mn:
        return []
    keeps = sorted({r["keep"] for r in mn if r["keep"] is not None and r["keep"] < 1.0})
    methods = [m for m in dict.fromkeys(r["method"] for r in mn) if m not in ("full", "auto-fraction")]
    lines = ["| method | " + " | ".join(f"{k:.0%}" for k in keeps) + " |", "|" + "---|" * (len(keeps) + 1)]
    for method in methods:
        vals = []
        for k in keeps:
            g = [r for r in mn if r["method"] == method and r["keep"] == k]
            vals.append(_ms(g, "score") if g else "-")
        lines.append(f"| {method} | " + " | ".join(vals) + " |")
    full = [r for r in mn if r["method"] == "full"]
    af = [r for r in mn if r["method"] == "auto-fraction"]
    lines.append(f"| full set | {_ms(full, 'score')} (100%) |" + " |" * (len(keeps) - 1))
    if af:
        lines.append(f"| auto fraction | {_ms(af, 'score')} (kept {seed_stats(af, 'kept_fraction')[0]:.1%}) |"
                     + " |" * (len(keeps) - 1))
    return lines


def _save(fig: Any, out: Path, name: str) -> str:
    """Write one figure as out/name (PNG) and close it; returns the name."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def plots(result: dict[str, Any], out: Path) -> list[str]:
    """Write the PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    groups = {k: v for k, v in _group([r for r in result["scenarios"] if r["family"] != "mnist"]).items()
              if "auto" in v}
    if groups:
        keys = sorted(groups)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(keys) + 2), 4.2))
        xs = np.arange(len(keys))
        for off, method in zip((-0.3, -0.1, 0.1, 0.3), ("random", "best-on-validation", "auto", "auto-fraction"),
                               strict=True):
            vals = [seed_stats(groups[k][method], "delta")[0] if groups[k].get(method) else np.nan for k in keys]
            ax.bar(xs + off, vals, width=0.2, label=method)
        ax.axhline(0, color="k", lw=1)
        ax.set_xticks(xs, [f"{f}\n{d}\n{t[:5]}" for f, d, t in keys], fontsize=6)
        ax.set_ylabel("held-out score - full store (points)")
        ax.legend(fontsize=7)
        names.append(_save(fig, out, "families_delta.png"))

        fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(keys) + 2), 3.8))
        kept = [seed_stats(groups[k].get("auto-fraction", []), "kept_fraction")[0] for k in keys]
        saved = [seed_stats(groups[k].get("auto-fraction", []), "model_saving")[0] for k in keys]
        ax.bar(xs - 0.15, [100 * v for v in kept], width=0.3, label="rows kept (%)")
        ax.bar(xs + 0.15, [100 * v for v in saved], width=0.3, label="predictor bytes saved (%)")
        ax.set_xticks(xs, [f"{f}\n{d}\n{t[:5]}" for f, d, t in keys], fontsize=6)
        ax.set_ylabel("auto's own fraction (%)")
        ax.legend(fontsize=7)
        names.append(_save(fig, out, "auto_fraction.png"))
    mn = [r for r in result["scenarios"] if r["family"] == "mnist" and r["keep"] is not None]
    if mn:
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in dict.fromkeys(r["method"] for r in mn if r["method"] != "full"):
            pts = sorted({(r["keep"], float(np.mean([q["score"] for q in mn if q["method"] == method
                                                       and q["keep"] == r["keep"]])))
                          for r in mn if r["method"] == method})
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method,
                    lw=2.5 if method == "random" else 1.2)
        full = float(np.mean([r["score_full"] for r in mn]))
        ax.axhline(full, color="k", ls="--", lw=1, label="full set")
        ax.set_xlabel("kept fraction of the training set")
        ax.set_ylabel("MLP test accuracy (%)")
        ax.legend(fontsize=8)
        names.append(_save(fig, out, "mnist_curve.png"))
    return names


def headline(result: dict[str, Any]) -> str:
    q, i = result["quality"], result["invariants"]
    return (f"quality checks: {q['passed']} passed, {q['failed']} failed; invariants: {i['passed']} held, "
            f"{i['failed']} broken")


def seeds_line(result: dict[str, Any]) -> str:
    seeds = result["seeds"]
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return (f"Report seeds {span} ({len(seeds)}); development used seeds {result.get('development_seeds', '0-9')}, "
            "disjoint from these. \"Best on validation\" is chosen on 25% of the training part, never on the "
            "held-out set it is reported on.")


def markdown(result: dict[str, Any], images: list[str]) -> str:
    lines = [f"# prunelab validate: {headline(result)}", "",
             f"Suites: {', '.join(result['suites'])}; quick {result['quick']}; {result['seconds']:.0f} s; "
             f"{result['machine']}", "", seeds_line(result), "",
             "Thresholds (arguments, never widened): " +
             ", ".join(f"{k}={v}" for k, v in result["thresholds"].items()), "",
             "## Quality checks (can fail)", ""] + check_table(result["checks"], "quality")
    lines += ["", "## Invariants (fail only on a bug)", ""] + check_table(result["checks"], "invariant")
    lines += ["", "## Per family (mean ± std over seeds; held-out score)", ""] + family_table(result["scenarios"])
    lines += ["", "## Every strategy at the fixed fraction (mean over seeds)", ""] + strategy_table(result["scenarios"])
    mt = mnist_table(result["scenarios"])
    if mt:
        lines += ["", "## MNIST MLP (test accuracy %)", ""] + mt
    lines += [""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _html_table(lines: list[str]) -> str:
    esc = html.escape
    if len(lines) < 2:
        return ""
    head = "".join(f"<th>{esc(c.strip())}</th>" for c in lines[0].strip("|").split("|"))
    body = ""
    for line in lines[2:]:
        fail = "**FAIL**" in line
        cells = "".join(f"<td>{esc(c.strip().replace('**', ''))}</td>" for c in line.strip("|").split("|"))
        body += f"<tr class='{'fail' if fail else 'ok'}'>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(result: dict[str, Any], images: list[str]) -> str:
    esc = html.escape
    imgs = "".join(f"<figure><img src='{esc(n)}' alt='{esc(n)}'><figcaption>{esc(n)}</figcaption></figure>"
                   for n in images)
    mt = mnist_table(result["scenarios"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>prunelab validate</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}tr.fail td{{background:#fdd}}img{{max-width:100%}}</style></head><body>
<h1>prunelab validate: {esc(headline(result))}</h1>
<p>Suites {esc(', '.join(result['suites']))}; quick {result['quick']}; {result['seconds']:.0f} s;
{esc(result['machine'])}</p><p>{esc(seeds_line(result))}</p>
<p>Thresholds: {esc(json.dumps(result['thresholds']))}</p>
<h2>Quality checks (can fail)</h2>{_html_table(check_table(result['checks'], 'quality'))}
<h2>Invariants (fail only on a bug)</h2>{_html_table(check_table(result['checks'], 'invariant'))}
<h2>Per family</h2>{_html_table(family_table(result['scenarios']))}
<h2>Every strategy at the fixed fraction</h2>{_html_table(strategy_table(result['scenarios']))}
{'<h2>MNIST MLP</h2>' + _html_table(mt) if mt else ''}
<h2>Plots</h2>{imgs}
</body></html>
"""


def write(result: dict[str, Any], out: Path) -> dict[str, str]:
    """Write results.json, report.md, report.html and plots into `out`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    images = plots(result, out)
    paths = {"json": out / "results.json", "markdown": out / "report.md", "html": out / "report.html"}
    write_bytes_atomic(paths["json"], json.dumps(result, indent=1, default=json_default).encode())
    write_bytes_atomic(paths["markdown"], markdown(result, images).encode())

    def _html(tmp: str) -> None:
        Path(tmp).write_text(html_report(result, images), encoding="utf-8")

    write_atomic(paths["html"], _html)
    return {k: str(v) for k, v in paths.items()} | {"plots": ",".join(str(out / n) for n in images)}


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for numpy scalars and arrays (anything else as its str)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)

"""Validation output: results.json, report.md, report.html and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from prunelab.atomic import write_atomic, write_bytes_atomic


def _agg(rows: list[dict[str, Any]], keys: tuple[str, ...], value: str) -> dict[tuple[Any, ...], float]:
    acc: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        if r.get(value) is not None:
            acc[tuple(r[k] for k in keys)].append(float(r[value]))
    return {k: float(np.mean(v)) for k, v in acc.items()}


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
    wl = [r for r in result["scenarios"] if r["suite"] == "workloads" and r["store"] != "homogeneous"]
    if wl:
        size = max(r["size"] for r in wl)
        cells = sorted({(r["store"], r["task"]) for r in wl})
        fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.6), squeeze=False)
        for ax, (store, task) in zip(axes[0], cells, strict=True):
            sub = [r for r in wl if r["store"] == store and r["task"] == task and r["size"] == size]
            accs = _agg(sub, ("method", "keep"), "accuracy")
            fracs = _agg(sub, ("method", "keep"), "kept_fraction")
            for method in sorted({m for m, _ in accs}):
                pts = sorted((fracs[(m, k)], 100 * a) for (m, k), a in accs.items() if m == method)
                style = "o" if len(pts) == 1 else "o-"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=method,
                        lw=2.5 if method == "random" else 1.2)
            full = 100 * float(np.mean([r["accuracy_full"] for r in sub]))
            ax.axhline(full, color="k", ls="--", lw=1, label="full store")
            ax.set_title(f"{store}, {task}, n={size}", fontsize=9)
            ax.set_xlabel("kept fraction")
            ax.set_ylabel("k-NN held-out accuracy (%)")
        axes[0][-1].legend(fontsize=7, loc="lower right")
        names.append(_save(fig, out, "workloads_accuracy.png"))

        fig, ax = plt.subplots(figsize=(6, 3.6))
        secs = _agg(wl, ("method", "size"), "select_seconds")
        for method in sorted({m for m, _ in secs}):
            pts = sorted((s, v) for (m, s), v in secs.items() if m == method)
            ax.loglog([p[0] for p in pts], [max(p[1], 1e-4) for p in pts], "o-", label=method, lw=1)
        ax.set_xlabel("store size (samples)")
        ax.set_ylabel("selection time (s)")
        ax.legend(fontsize=7)
        names.append(_save(fig, out, "workloads_time.png"))

        fig, ax = plt.subplots(figsize=(6, 3.6))
        presets = [r for r in wl if r["keep"] is None]
        saving = _agg(presets, ("store", "method"), "memory_saving")
        labels = sorted(saving)
        ax.bar(range(len(labels)), [100 * saving[k] for k in labels], color="tab:green")
        ax.set_xticks(range(len(labels)), [f"{s}\n{m}" for s, m in labels], fontsize=7)
        ax.set_ylabel("measured memory saving (%)")
        names.append(_save(fig, out, "workloads_memory.png"))
    mn = [r for r in result["scenarios"] if r["suite"] == "mnist"]
    if mn:
        fig, ax = plt.subplots(figsize=(6, 4))
        accs = _agg(mn, ("method", "keep"), "accuracy")
        full = 100 * float(np.mean([r["accuracy_full"] for r in mn]))
        for method in sorted({m for m, _ in accs}):
            pts = sorted((k, 100 * a) for (m, k), a in accs.items() if m == method)
            pts.append((1.0, full))
            pts = sorted(set(pts))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method,
                    lw=2.5 if method == "random" else 1.2)
        ax.set_xlabel("kept fraction of the training set")
        ax.set_ylabel("MLP test accuracy (%)")
        ax.legend(fontsize=8)
        names.append(_save(fig, out, "mnist_curve.png"))
    return names


def markdown(result: dict[str, Any], images: list[str]) -> str:
    lines = [f"# prunelab validate: {result['passed']} passed, {result['failed']} failed", "",
             f"Suites: {', '.join(result['suites'])}; seeds {result['seeds']}; quick {result['quick']}; "
             f"{result['seconds']:.0f} s; {result['machine']}", "",
             "Thresholds (arguments, never widened): " +
             ", ".join(f"{k}={v}" for k, v in result["thresholds"].items()), "",
             "## Checks", "", "| result | check | scope | value | threshold | detail |", "|---|---|---|---|---|---|"]
    for c in result["checks"]:
        lines.append(f"| {'PASS' if c['passed'] else '**FAIL**'} | {c['name']} | {c['scope']} | {_fmt(c['value'])} | "
                     f"{c['threshold']} | {c['detail']} |")
    lines += ["", "## Mean accuracy by method", ""]
    lines += summary_table(result["scenarios"])
    lines += [""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def summary_table(scenarios: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: mean accuracy, kept fraction and memory saving per cell and method."""
    lines = ["| suite | store | size | task | method | keep | kept | accuracy % | full % | delta pp | "
             "memory saved | select s | predict speedup (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in scenarios:
        key = (r["suite"], r.get("store", ""), r.get("size", r.get("original_count", "")), r.get("task", ""),
               r["method"], "auto" if r["keep"] is None else r["keep"])
        groups[key].append(r)
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        g = groups[key]
        m = {f: float(np.mean([r[f] for r in g])) for f in ("kept_fraction", "accuracy", "accuracy_full",
                                                           "delta_pp", "memory_saving", "select_seconds")}
        lines.append(f"| {' | '.join(str(v) for v in key)} | {m['kept_fraction']:.1%} | {100 * m['accuracy']:.2f} | "
                     f"{100 * m['accuracy_full']:.2f} | {m['delta_pp']:+.2f} | {m['memory_saving']:.1%} | "
                     f"{m['select_seconds']:.3f} | {_median_speedup(g)} |")
    return lines


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _median_speedup(rows: list[dict[str, Any]]) -> str:
    """Median of measured k-NN predict-time ratios (full / subset); blank where not measured."""
    values = [r["predict_speedup"] for r in rows if r.get("predict_speedup")]
    return f"{float(np.median(values)):.2f}x" if values else ""


def html_report(result: dict[str, Any], images: list[str]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr class='{'pass' if c['passed'] else 'fail'}'><td>{'PASS' if c['passed'] else 'FAIL'}</td>"
        f"<td>{esc(c['name'])}</td><td>{esc(c['scope'])}</td>"
        f"<td>{_fmt(c['value'])}</td>"
        f"<td>{esc(str(c['threshold']))}</td><td>{esc(c['detail'])}</td></tr>"
        for c in result["checks"])
    table = summary_table(result["scenarios"])
    body = "".join("<tr>" + "".join(f"<td>{esc(cell.strip())}</td>" for cell in line.strip("|").split("|"))
                   + "</tr>" for line in table[2:])
    head = "".join(f"<th>{esc(c.strip())}</th>" for c in table[0].strip("|").split("|"))
    imgs = "".join(f"<figure><img src='{esc(n)}' alt='{esc(n)}'><figcaption>{esc(n)}</figcaption></figure>"
                   for n in images)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>prunelab validate</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}tr.fail td{{background:#fdd}}tr.pass td:first-child{{color:#080}}
img{{max-width:100%}}</style></head><body>
<h1>prunelab validate: {result['passed']} passed, {result['failed']} failed</h1>
<p>Suites {esc(', '.join(result['suites']))}; seeds {result['seeds']}; quick {result['quick']};
{result['seconds']:.0f} s; {esc(result['machine'])}</p>
<p>Thresholds: {esc(json.dumps(result['thresholds']))}</p>
<h2>Checks</h2><table><tr><th>result</th><th>check</th><th>scope</th><th>value</th><th>threshold</th>
<th>detail</th></tr>{rows}</table>
<h2>Plots</h2>{imgs}
<h2>Mean by method</h2><table><tr>{head}</tr>{body}</table>
</body></html>
"""


def write(result: dict[str, Any], out: Path) -> dict[str, str]:
    """Write results.json, report.md, report.html and plots into `out`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    images = plots(result, out)
    paths = {"json": out / "results.json", "markdown": out / "report.md", "html": out / "report.html"}
    write_bytes_atomic(paths["json"], json.dumps(result, indent=1, default=_plain).encode())
    write_bytes_atomic(paths["markdown"], markdown(result, images).encode())

    def _html(tmp: str) -> None:
        Path(tmp).write_text(html_report(result, images), encoding="utf-8")

    write_atomic(paths["html"], _html)
    return {k: str(v) for k, v in paths.items()} | {"plots": ",".join(str(out / n) for n in images)}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)

"""Bring your own model: issue 13's Done-when numbers for `prunelab.prune_module`.

The user's side is written as a user would: a residual CNN with BatchNorm
(and a two-branch concat) defined here, trained by a plain PyTorch loop
(Adam 1e-3, batch 128, no scheduler) on the 55,000 MNIST training images (a
stratified 1/12 = 5,000 is held out as the validation split, seeded by the
run seed). Nothing here is tuned: the recipe is the one in
docs/your-model.md, fixed before any run, so no choice looked at the test
set (or the validation split, which is reported alongside). Cells are test
accuracy on the 10,000 test images, mean ± std over the report seeds.

Per seed a dense parent is trained E epochs, then, each from a copy of it:

- dense +1: the parent trained one more epoch by the same loop (equal budget);
- magnitude 90%: `prune_module(net, 0.9)` (global L1, one-shot), then one
  epoch of the user's loop with the user's own Adam optimizer (moments kept);
- gradual 90%: `prune_module(net, 0.9, schedule=Gradual(steps=one epoch))`
  with `pruning.step()` after each optimizer step of that one epoch;
- structured 50%: `prune_module(net, 0.5, method="structured")` (half of the
  channels of every Torch-Pruning group, global ranking), a new Adam, one epoch.

The pruned models are exported with `prunelab.export_onnx` and run in ONNX
Runtime on all 10,000 test images: max |ORT - PyTorch| over the logits.

    .venv/bin/python benchmarks/prune_module.py                      # seeds 0,1,2, writes RESULTS.md
    .venv/bin/python benchmarks/prune_module.py --quick              # 1 seed, 6,000 images, prints only
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

import prunelab
from prunelab.data.datasets import limit_train, load_dataset
from prunelab.prune.engine import Gradual
from sections import write_section  # benchmarks/sections.py

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "prune-module"


class Block(nn.Module):
    """Two 3x3 convs with BatchNorm and an identity shortcut (a residual add)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResidualCNN(nn.Module):
    """(N, 1, 28, 28) -> (N, 10) logits; the network of docs/your-model.md."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.MaxPool2d(2))                                      # (N, c, 14, 14)
        self.block1 = Block(c)
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * c), nn.ReLU())                      # (N, 2c, 7, 7)
        self.block2 = Block(2 * c)
        self.branch_a = nn.Conv2d(2 * c, c, 1)
        self.branch_b = nn.Conv2d(2 * c, c, 3, padding=1)
        self.mix = nn.Sequential(nn.BatchNorm2d(2 * c), nn.ReLU(), nn.Conv2d(2 * c, c, 1))  # after the concat
        self.fc1 = nn.Linear(c * 7 * 7, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.down(self.block1(self.stem(x))))
        x = torch.relu(self.mix(torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)))
        return self.head(torch.relu(self.fc1(x.flatten(1))))


def train_epoch(net, opt, x, y, seed, pruning=None, batch=128) -> None:
    """The user's loop: one shuffled pass, optimizer step, then pruning.step()."""
    net.train()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    for idx in order.split(batch):
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if pruning is not None:
            pruning.step()


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    return float(sum(int((net(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum()) for i in range(0, len(y), 2000))
                 / len(y))


def conv_linear_sparsity(net) -> float:
    ws = [m.weight.detach() for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def onnx_check(net, x, folder) -> dict:
    """Export, then max |ORT - PyTorch| on every row of x."""
    import onnxruntime as ort

    path = Path(folder) / f"m{time.monotonic_ns()}.onnx"
    res = prunelab.export_onnx(net, x[:2], path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    net.eval()
    with torch.no_grad():
        for i in range(0, len(x), 2000):
            got = sess.run(None, {"input": x[i:i + 2000].numpy()})[0]
            worst = max(worst, float(np.abs(got - net(x[i:i + 2000]).numpy()).max()))
    return {"onnx_bytes": res.bytes, "onnx_max_abs_diff": worst}


def tensors(ds):
    def t(a):
        return torch.from_numpy(a).float().div(255).unsqueeze(1)

    return (t(ds.x_train), torch.from_numpy(ds.y_train).long(), t(ds.x_val), torch.from_numpy(ds.y_val).long(),
            t(ds.x_test), torch.from_numpy(ds.y_test).long())


def run_seed(seed: int, epochs: int, train_limit: int | None, folder: str) -> dict:
    ds = limit_train(load_dataset("mnist"), train_limit, 1 / 12, seed)
    x, y, xv, yv, xt, yt = tensors(ds)
    torch.manual_seed(seed)
    net = ResidualCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for e in range(epochs):
        train_epoch(net, opt, x, y, seed * 1000 + e)
    out = {"seed": seed, "train": len(y), "val": len(yv), "dense_seconds": time.perf_counter() - t0,
           "params": params(net), "dense": {"test": accuracy(net, xt, yt), "val": accuracy(net, xv, yv)}}
    finetune_seed = seed * 1000 + epochs

    def arm(name, make):
        n = copy.deepcopy(net)
        o = torch.optim.Adam(n.parameters(), lr=1e-3)
        o.load_state_dict(opt.state_dict())  # the user's optimizer, moments and all
        t = time.perf_counter()
        pruning, o = make(n, o)
        after_prune = accuracy(n, xt, yt)
        train_epoch(n, o, x, y, finetune_seed, pruning=pruning)
        row = {"test": accuracy(n, xt, yt), "val": accuracy(n, xv, yv), "after_prune": after_prune,
               "seconds": time.perf_counter() - t, "params": params(n), "sparsity": conv_linear_sparsity(n)}
        if pruning is not None:
            row["measured"] = pruning.sparsity()
            pruning.finalize()
            row["sparsity_finalized"] = conv_linear_sparsity(n)
            row.update(onnx_check(n, xt, folder))
        out[name] = row
        print(f"seed {seed} {name}: {json.dumps(row)}", flush=True)

    def magnitude(n, o):
        return prunelab.prune_module(n, 0.9), o

    def gradual(n, o):
        return prunelab.prune_module(n, 0.9, schedule=Gradual(steps=-(-len(y) // 128))), o

    def structured(n, o):
        p = prunelab.prune_module(n, 0.5, method="structured", example_input=xt[:1])
        return p, torch.optim.Adam(n.parameters(), lr=1e-3)  # new parameters, new optimizer

    arm("dense+1", lambda n, o: (None, o))
    arm("magnitude-0.9", magnitude)
    arm("gradual-0.9", gradual)
    arm("structured-0.5", structured)
    return out


def stats(vals: list[float]) -> str:
    m = statistics.mean(vals) * 100
    s = statistics.stdev(vals) * 100 if len(vals) > 1 else 0.0
    return f"{m:.2f} ± {s:.2f}"


def param_range(rows: list[dict]) -> str:
    lo, hi = min(r["params"] for r in rows), max(r["params"] for r in rows)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def report(runs: list[dict], epochs: int, minutes: float, processes: int = 1) -> str:
    seeds = [r["seed"] for r in runs]
    dense = [r["dense"]["test"] for r in runs]
    lines = [
        "## Bring your own model (`benchmarks/prune_module.py`)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, 2 cores shared with other jobs, "
        f"torch {torch.__version__} with 1 thread, {minutes:.0f} min for the longest of {processes} "
        "process(es), at most 2 at a time. "
        f"Report seeds {seeds} (nothing was tuned: "
        "the recipe of docs/your-model.md was fixed before the first run). Residual CNN with BatchNorm and a "
        f"concat ({runs[0]['params']:,} params), trained {epochs} epochs by a plain user loop (Adam 1e-3, batch "
        f"128) on {runs[0]['train']:,} MNIST images; cells are test accuracy % on the 10,000 test images, "
        "mean ± std over seeds; Δ vs the dense parent, paired per seed.",
        "",
        "| arm | after pruning | after 1 epoch of the user's loop | Δ vs dense | Δ vs dense +1 | "
        "sparsity (min over seeds) | params | max abs diff ONNX Runtime vs PyTorch |",
        "|---|---|---|---|---|---|---|---|",
        f"| dense parent | | {stats(dense)} | | | 0 | {runs[0]['params']:,} | |",
    ]
    for name in ("dense+1", "magnitude-0.9", "gradual-0.9", "structured-0.5"):
        rows = [r[name] for r in runs]
        d = [r[name]["test"] - r["dense"]["test"] for r in runs]
        d1 = [r[name]["test"] - r["dense+1"]["test"] for r in runs]
        onnx = max((x.get("onnx_max_abs_diff", 0.0) for x in rows), default=0.0)
        sp = min(x.get("measured", x["sparsity"]) for x in rows)
        lines.append(
            f"| {name} | {stats([x['after_prune'] for x in rows]) if name != 'dense+1' else ''} | "
            f"{stats([x['test'] for x in rows])} | {statistics.mean(d) * 100:+.2f} (worst {min(d) * 100:+.2f}) | "
            f"{statistics.mean(d1) * 100:+.2f} | {sp:.4f} | {param_range(rows)} | "
            f"{f'{onnx:.2e}' if name != 'dense+1' else ''} |")
    mag = [r["magnitude-0.9"] for r in runs]
    st = [r["structured-0.5"] for r in runs]
    d_mag = min(r["magnitude-0.9"]["test"] - r["dense"]["test"] for r in runs) * 100
    d_st = min(r["structured-0.5"]["test"] - r["dense"]["test"] for r in runs) * 100
    fewer = 1 - max(x["params"] for x in st) / runs[0]["params"]
    onnx = max(x["onnx_max_abs_diff"] for r in runs for x in (r["magnitude-0.9"], r["structured-0.5"]))
    ok = {True: "met", False: "NOT met"}
    lines += [
        "",
        "Against issue 13's bars (worst seed):",
        "",
        f"- magnitude 90%: sparsity {min(x['sparsity'] for x in mag):.4f} >= 0.899 → "
        f"{ok[min(x['sparsity'] for x in mag) >= 0.899]}; Δ {d_mag:+.2f} pp vs the bar −1 pp → {ok[d_mag >= -1]}",
        f"- structured 50%: {fewer:.1%} fewer parameters (fewest removed over seeds) vs the bar 40% → "
        f"{ok[fewer >= 0.4]}; Δ {d_st:+.2f} pp "
        f"vs the bar −2 pp → {ok[d_st >= -2]}",
        f"- ONNX Runtime vs PyTorch on the 10,000 test images: max abs diff {onnx:.2e} vs the bar 1e-3 → "
        f"{ok[onnx < 1e-3]}",
        "",
        "Sparsity is the fraction of Linear/Conv weights that are zero, measured on the module (structured: "
        "the fraction of prunable channels removed; its weights are dense). The gradual arm prunes during its "
        "epoch, so its 'after pruning' is the parent. "
        f"Validation accuracy ({runs[0]['val']:,} held-out training images) of the same models: "
        + ", ".join(f"{k} {stats([r[k]['val'] for r in runs])}" for k in
                    ("dense", "dense+1", "magnitude-0.9", "gradual-0.9", "structured-0.5")) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="report seeds")
    ap.add_argument("--epochs", type=int, default=3, help="dense training epochs")
    ap.add_argument("--train-limit", type=int, default=None, help="stratified subset of the 60k (before the val split)")
    ap.add_argument("--quick", action="store_true", help="1 seed, 6,000 images, 2 epochs; prints only")
    ap.add_argument("--partial", default=None, help="write this process's runs as JSON here (no RESULTS.md)")
    ap.add_argument("--merge", nargs="*", default=None, help="JSON files from --partial runs to report together")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if a.merge:
        parts = [json.loads(Path(p).read_text()) for p in a.merge]
        runs = sorted((r for p in parts for r in p["runs"]), key=lambda r: r["seed"])
        epochs, minutes = parts[0]["epochs"], max(p["minutes"] for p in parts)
        processes = len(parts)
    else:
        seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
        epochs = 2 if a.quick else a.epochs
        limit = 6000 if a.quick else a.train_limit
        with tempfile.TemporaryDirectory() as folder:
            runs = [run_seed(s, epochs, limit, folder) for s in seeds]
        minutes, processes = (time.perf_counter() - t0) / 60, 1
        if a.partial:
            Path(a.partial).write_text(json.dumps({"runs": runs, "epochs": epochs, "minutes": minutes}))
            return
    body = report(runs, epochs, minutes, processes)
    print(body)
    if a.quick or a.no_write or (a.train_limit and not a.merge):
        print("(not written to RESULTS.md)", file=sys.stderr)
        return
    write_section(RESULTS, SECTION, body)


if __name__ == "__main__":
    main()

"""Seconds per epoch: prunelab's training loop vs a plain hand-written PyTorch loop.

Same model (LeNet-300-100), same data (full MNIST train split, float32 in
memory), batch size, optimiser, thread count; both in this one process,
alternating, so the machine's noise hits both alike. Prints the ratio
ours / plain (the bar: <= 1.10) and rewrites the `train` section of
benchmarks/RESULTS.md with the accuracy runs' figures when --accuracy is given.

    .venv/bin/python benchmarks/train_speed.py [--epochs 2] [--threads 1] [--accuracy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
from torch import nn

from prunelab.data import load_dataset
from prunelab.models import build, create_spec
from prunelab.train import fit, set_threads, to_input

RESULTS = Path(__file__).with_name("RESULTS.md")


def plain_epoch(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> float:
    """The loop a user would write by hand: Adam, cross-entropy, shuffled mini-batches."""
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    module.train()
    perm = torch.randperm(len(y), generator=gen)
    for i in range(0, len(y), batch_size):
        idx = perm[i : i + batch_size]
        opt.zero_grad()
        loss = loss_fn(module(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def ours_epoch(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> float:
    t0 = time.perf_counter()
    fit(module, x, y, epochs=1, lr=1e-3, batch_size=batch_size, seed=seed, lr_schedule="cosine")
    return time.perf_counter() - t0


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def accuracy_runs() -> list[dict]:
    """The issue's accuracy bars, through the real CLI."""
    rows = []
    for arch, epochs, bar in (("lenet-300-100", 8, 0.980), ("lenet-5", 3, 0.988)):
        out = subprocess.run([sys.executable, "-m", "prunelab.cli", "train", "--arch", arch, "--epochs",
                              str(epochs), "--json"], capture_output=True, text=True, check=True).stdout
        res = json.loads(out)
        per_epoch = [h["seconds"] for h in res["history"]]
        rows.append({"arch": arch, "epochs": epochs, "test_accuracy": res["test_accuracy"], "bar": bar,
                     "s_per_epoch": statistics.mean(per_epoch)})
        print(f"{arch}: {epochs} epochs -> {res['test_accuracy']:.2%} (bar {bar:.1%}), "
              f"{statistics.mean(per_epoch):.1f} s/epoch")
    return rows


def write_section(ratio_rows: list[str], acc_rows: list[dict] | None) -> None:
    lines = [f"## Training (`benchmarks/train_speed.py`, {date.today()}, {machine()})", ""]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines += [f"Load average when written: {load} (2 cores); only the side-by-side ratio compares.", ""]
    lines += ["Seconds per epoch, full MNIST train split (60k), LeNet-300-100, batch 128, Adam, same process:", ""]
    lines += ["| run | plain PyTorch s/epoch | prunelab s/epoch | ratio (bar <= 1.10) |", "|---|---|---|---|"]
    lines += ratio_rows
    if acc_rows:
        lines += ["", "Accuracy with the default recipe (Adam 1e-3, cosine, batch 128, seed 0), via the CLI; "
                  "trained on 55,000 images, the default validation split of 5,000 held out:", "",
                  "| arch | epochs | test accuracy | bar | s/epoch |", "|---|---|---|---|---|"]
        lines += [f"| {r['arch']} | {r['epochs']} | {r['test_accuracy']:.2%} | >= {r['bar']:.1%} "
                  f"| {r['s_per_epoch']:.1f} |" for r in acc_rows]
    text = RESULTS.read_text()
    start, end = "<!-- BEGIN train -->", "<!-- END train -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    RESULTS.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per loop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--accuracy", action="store_true", help="also run the accuracy bars (about 1 minute)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    set_threads(args.threads)
    ds = load_dataset("mnist")
    x, y = to_input(ds.x_train), torch.from_numpy(ds.y_train)
    spec = create_spec("lenet-300-100")
    plain_t, ours_t = [], []
    for epoch in range(args.epochs + 1):  # epoch 0 warms up both
        torch.manual_seed(epoch)
        p = plain_epoch(build(spec), x, y, args.batch_size, epoch)
        torch.manual_seed(epoch)
        o = ours_epoch(build(spec), x, y, args.batch_size, epoch)
        if epoch:
            plain_t.append(p)
            ours_t.append(o)
            print(f"epoch {epoch}: plain {p:.2f} s, prunelab {o:.2f} s, ratio {o / p:.3f}")
    ratio = statistics.median(ours_t) / statistics.median(plain_t)
    print(f"median ratio prunelab / plain = {ratio:.3f} (bar <= 1.10)")
    row = (f"| {args.threads} thread(s), {args.epochs} epochs, median | {statistics.median(plain_t):.2f} | "
           f"{statistics.median(ours_t):.2f} | {ratio:.3f} |")
    acc = accuracy_runs() if args.accuracy else None
    if not args.no_write:
        write_section([row], acc)


if __name__ == "__main__":
    main()

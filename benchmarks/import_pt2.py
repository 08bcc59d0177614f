"""`prunelab import model.pt2` on full MNIST: a user's network, trained by the
user's loop, exported with torch.export, imported, pruned to 90% with one
epoch of prunelab's fine-tune, and exported to ONNX (and to .plsa where the
runtime has the ops).

Two networks of the user's own: the residual CNN of docs/your-model.md
(BatchNorm, residual adds, a concat: ONNX only) and a plain chain CNN
(conv+BN+ReLU+pool, conv+ReLU+pool, two Linear: ONNX and .plsa). Per seed,
the user's loop (Adam 1e-3, batch 128) trains E epochs on the 55,000
training images left after prunelab's stratified 1/12 validation split of
that seed, which `prune` then fine-tunes on (the same images) and reports
validation accuracy on. Nothing is tuned: the import and prune defaults
(lr 1e-3, one epoch, global magnitude) were fixed before any run. Cells are
test accuracy on the 10,000 test images.

    .venv/bin/python benchmarks/import_pt2.py                  # seeds 0,1; writes its RESULTS.md section
    .venv/bin/python benchmarks/import_pt2.py --quick          # 1 seed, 6,000 images, prints only
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

import prunelab
from prune_module import ResidualCNN  # benchmarks/prune_module.py: the network of docs/your-model.md
from prunelab.data.datasets import DEFAULT_VAL_FRACTION, Dataset, limit_train, load_dataset, stratified_subset
from prunelab.errors import UserError
from prunelab.importing import import_pt2
from prunelab.prune.imported import prune_exported
from prunelab.sparse.export import export_exported
from prunelab.store import Store
from prunelab.train import to_input
from sections import write_section  # benchmarks/sections.py

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "import-pt2"


class ChainCNN(nn.Module):
    """(N, 1, 28, 28) -> (N, 10): the chain CNN of tests/test_import_pt2.py, wider."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.head(torch.relu(self.fc1(x.flatten(1))))


NETWORKS = {"residual CNN (docs)": ResidualCNN, "chain CNN": ChainCNN}


def user_training(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    """The user's own loop: Adam 1e-3, batch 128, shuffled each epoch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()


@torch.no_grad()
def logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(x[i:i + 1000]) for i in range(0, len(x), 1000)])


def run_one(label: str, ds: Dataset, seed: int, epochs: int, folder: Path) -> dict:
    split = limit_train(ds, None, DEFAULT_VAL_FRACTION, seed)  # the split prune will use
    x, y = to_input(split.x_train), torch.from_numpy(split.y_train)  # (N, 1, 28, 28) in [0, 1]
    xt, yt = to_input(ds.x_test), torch.from_numpy(ds.y_test)
    torch.manual_seed(seed)
    net = NETWORKS[label]()
    t0 = time.perf_counter()
    user_training(net, x, y, epochs, seed)
    train_s = time.perf_counter() - t0
    dense = int((logits(net, xt).argmax(1) == yt).sum()) / len(yt)
    pt2 = folder / f"{seed}-{label.split()[0]}.pt2"
    torch.export.save(torch.export.export(net, (xt[:4],), dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      str(pt2))
    store = Store(folder / f"home-{seed}-{label.split()[0]}")
    t0 = time.perf_counter()
    parent, test = import_pt2(pt2, store=store, name="mine", dataset=ds)
    import_s = time.perf_counter() - t0
    res = prune_exported("mine", 0.9, finetune_epochs=1, seed=seed, dataset=ds, store=store, name="mine90")
    child = res.model
    module = child.to_torch().eval()
    want = logits(module, xt).numpy()
    onnx_path = folder / f"{seed}-{label.split()[0]}.onnx"
    prunelab.export_onnx(module, xt[:1], onnx_path)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"input": xt[i:i + 1000].numpy()})[0] for i in range(0, len(xt), 1000)])
    row = {"network": label, "seed": seed, "dense": dense, "imported": test.accuracy,
           "before": res.accuracy_before_finetune, "after": res.test_accuracy, "val": res.val_accuracy,
           "sparsity": res.sparsity, "params": parent.params(), "nonzero": child.nonzero(),
           "onnx_diff": float(np.abs(got - want).max()), "train_s": train_s, "import_s": import_s,
           "prune_s": res.seconds}
    try:
        exp = export_exported(child, folder / f"{seed}-{label.split()[0]}.plsa")
        rt = prunelab.sparse.load(exp.path)
        row.update(plsa_bytes=exp.bytes, dense_bytes=exp.dense_bytes,
                   plsa_diff=float(np.abs(rt.logits(xt.numpy()) - want).max()))
    except UserError as exc:
        # the ops the runtime has no kernel for (not those it has but cannot place: off the chain, ...)
        entries = str(exc).split(". It runs")[0].split(": ", 1)[-1].split(", ")
        lacks = ", ".join(e for e in entries if "(" not in e and ")" not in e)
        row.update(plsa_bytes=None, dense_bytes=None, plsa_diff=None, plsa_error=lacks)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| network | seed | dense (user's loop) | imported, `prunelab eval` | 90% before fine-tune | "
             "90% + 1 epoch | Δ vs dense | validation | sparsity | ONNX max abs diff | .plsa bytes (float32 weights) "
             "| .plsa max abs diff |", "|" + "---|" * 12]
    for r in rows:
        plsa = (f"{r['plsa_bytes']:,} ({r['dense_bytes']:,})" if r["plsa_bytes"] is not None
                else "refused, the runtime lacks " + r["plsa_error"])
        diff = f"{r['plsa_diff']:.1e}" if r["plsa_diff"] is not None else "-"
        lines.append(f"| {r['network']} | {r['seed']} | {r['dense']:.2%} | {r['imported']:.2%} | {r['before']:.2%} | "
                     f"{r['after']:.2%} | {100 * (r['after'] - r['dense']):+.2f} pp | {r['val']:.2%} | "
                     f"{r['sparsity']:.4f} | {r['onnx_diff']:.1e} | {plsa} | {diff} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the user's loop before export")
    ap.add_argument("--quick", action="store_true", help="1 seed, 6,000 training images; prints only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("mnist")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    if args.quick:
        idx = stratified_subset(ds.y_train, 6000, 0)
        ds = Dataset("mnist-6000", ds.x_train[idx], ds.y_train[idx], ds.x_test, ds.y_test)
    rows = []
    with tempfile.TemporaryDirectory(prefix="prunelab-import-bench-") as tmp:
        for seed in seeds:
            for label in NETWORKS:
                row = run_one(label, ds, seed, args.epochs, Path(tmp))
                rows.append(row)
                print(f"{label}, seed {seed}: dense {row['dense']:.4f}, imported {row['imported']:.4f}, 90% "
                      f"{row['before']:.4f} -> {row['after']:.4f} (val {row['val']:.4f}), sparsity "
                      f"{row['sparsity']:.4f}, ONNX diff {row['onnx_diff']:.2e}, plsa "
                      f"{row.get('plsa_bytes')} / {row.get('dense_bytes')} diff {row.get('plsa_diff')}; train "
                      f"{row['train_s']:.0f} s, import {row['import_s']:.1f} s, prune {row['prune_s']:.0f} s",
                      flush=True)
    body = (f"## Import a torch.export program (`benchmarks/import_pt2.py`)\n\n"
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, 2 cores shared with other "
            f"jobs, torch {torch.__version__}, 1 thread. {ds.name}: {len(ds.y_train):,} training images "
            f"(minus the seed's 1/12 validation split), {len(ds.y_test):,} test images. The user's loop trains "
            f"{args.epochs} epochs (Adam 1e-3, batch 128), the program is exported with a dynamic batch axis, "
            "imported (`import_pt2`), pruned to 90% (global magnitude, one-shot) and fine-tuned one epoch "
            "(`prune_exported`: Adam 1e-3, cosine), seeds " + ", ".join(map(str, seeds)) + " (nothing was chosen "
            "on them). ONNX and .plsa differences: max |x - PyTorch| over the logits of all test images."
            " The pruned child has had one more epoch than its dense parent, so Δ vs dense is not an "
            "equal-budget comparison: this shows the import path end to end (accuracy identical after import, "
            "ONNX and .plsa faithful), not pruning quality, for which see the prune-module section.\n\n"
            + table(rows))
    print(body)
    if not args.quick:
        write_section(RESULTS, SECTION, body)


if __name__ == "__main__":
    sys.exit(main())

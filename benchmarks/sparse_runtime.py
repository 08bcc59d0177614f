"""Is the pruned model really smaller and really faster? One run, one thread.

    .venv/bin/python benchmarks/sparse_runtime.py [--store DIR] [--epochs 6] [--finetune-epochs 3]

Trains LeNet-300-100 and LeNet-5 on the full MNIST (60k), prunes each to
90 / 95 / 98% with prunelab.prune (global magnitude, fine-tuned), exports
fp32 / fp16 / int8 artifacts and measures, in this one process:

- size: artifact bytes vs the float32 safetensors of the weights, and vs
  gzip of that file (the peer's "smaller");
- latency, one thread: artifact runtime at batch 1 vs the same weights dense
  in PyTorch eager; at batch 256 vs dense numpy (plain `x @ W.T` for the MLP,
  im2col + BLAS for LeNet-5) and vs PyTorch; contenders are timed in
  alternating rounds; the FLOP-ratio limit 1/(1-s) is printed beside each
  speed-up;
- fidelity on all 10,000 test images: fp32 argmax vs PyTorch's, fp16/int8
  accuracy vs fp32;
- the dense/CSR kernel crossover behind `prunelab.sparse.runtime.THRESHOLDS`.

Writes the `sparse` section of benchmarks/RESULTS.md (machine and date).
With --store DIR, trained and pruned models are kept there and reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPARSITIES = (0.90, 0.95, 0.98)
ARCHS = ("lenet-300-100", "lenet-5")
PRECISIONS = ("fp32", "fp16", "int8")


def log(msg: str) -> None:
    print(msg, flush=True)


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            blas = f"{info[0].get('internal_api')} {info[0].get('version')} ({info[0].get('architecture')})"
    except ImportError:
        pass
    core = os.environ.get("OPENBLAS_CORETYPE")
    return (f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
            f"BLAS {blas}" + (f", OPENBLAS_CORETYPE={core}" if core else ""))


REUSED: list[str] = []


def get_models(store: Any, ds: Any, epochs: int, ft_epochs: int, schedule: str | None
               ) -> dict[tuple[str, float], Any]:
    """{(arch, sparsity): Model} with sparsity 0.0 for the dense parent; reuses stored ones by name."""
    import prunelab
    from prunelab.errors import UserError
    from prunelab.prune.api import default_schedule

    out = {}
    for arch in ARCHS:
        name = f"bench-{arch}-e{epochs}"
        try:
            parent = store.load(name)
            REUSED.append(name)
            log(f"reusing {name}")
        except UserError:
            t0 = time.perf_counter()
            parent = prunelab.train(arch=arch, epochs=epochs, threads=1, store=store, name=name,
                                    dataset=ds).model
            log(f"trained {name}: accuracy {parent.meta['metrics']['test_accuracy']:.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
        out[(arch, 0.0)] = parent
        for s in SPARSITIES:
            sched = schedule or default_schedule(s, "magnitude")
            child_name = f"{name}-p{round(s * 100)}-{sched}-ft{ft_epochs}"
            try:
                child = store.load(child_name)
                REUSED.append(child_name)
                log(f"reusing {child_name}")
            except UserError:
                t0 = time.perf_counter()
                res = prunelab.prune(parent.id, sparsity=s, finetune_epochs=ft_epochs, store=store,
                                     name=child_name, threads=1, dataset=ds, schedule=sched)
                child = res.model
                log(f"pruned {child_name}: accuracy {res.test_accuracy:.4f} "
                    f"(before fine-tune {res.accuracy_before_finetune:.4f}, {time.perf_counter() - t0:.0f} s)")
            out[(arch, s)] = child
    return out


def measure(model: Any, ds: Any, tmp: Path, budget: float) -> dict[str, Any]:
    import torch

    from prunelab.sparse import load
    from prunelab.sparse.bench import numpy_dense_forward, time_interleaved, torch_forward
    from prunelab.sparse.compare import flops_nonzero
    from prunelab.sparse.export import dense_bytes, export, masked_weights
    from prunelab.train import to_input

    spec = model.spec
    weights = masked_weights(model)
    sparsity = model.sparsity()
    dense = dense_bytes(model.weights)
    row: dict[str, Any] = {
        "arch": spec.arch, "sparsity": sparsity, "test_accuracy": model.meta["metrics"]["test_accuracy"],
        "dense_bytes": len(dense), "gzip_bytes": len(gzip.compress(dense, 9, mtime=0)),
        "flop_ratio": spec.flops() / max(flops_nonzero(spec, weights), 1),
        "limit": 1 / max(1 - sparsity, 1e-9),
    }
    x_all = to_input(ds.x_test).numpy()  # (10000, 1, 28, 28) float32
    module = model.to_torch().eval()
    with torch.inference_mode():
        ref = np.concatenate([module(torch.from_numpy(x_all[i:i + 1000])).numpy()
                              for i in range(0, len(x_all), 1000)])
    torch_pred = ref.argmax(1)
    row["torch_acc"] = float((torch_pred == ds.y_test).mean())
    runtimes = {}
    for prec in PRECISIONS:
        path = tmp / f"{spec.arch}-{round(sparsity * 100)}-{prec}.plsa"
        res = export(model, path, precision=prec)
        row[f"{prec}_bytes"] = res.bytes
        rt = load(path, threads=1)
        pred = rt.predict(x_all)
        row[f"{prec}_acc"] = float((pred == ds.y_test).mean())
        row[f"{prec}_agree"] = int((pred == torch_pred).sum())
        runtimes[prec] = rt
    rt = runtimes["fp32"]
    row["encodings"] = {t.name: t.encoding for t in res.tensors if t.name.endswith(".weight")}
    row["kernels_b1"], row["kernels_b256"] = rt.kernels(1), rt.kernels(256)
    row["densities"] = {d["layer"]: d["density"] for d in rt.describe()}
    x1, x256 = x_all[:1], x_all[:256]
    if all(layer.kind in ("linear", "relu", "flatten") for layer in spec.layers):
        numpy_name = "numpy x@W.T"
        np1, np256 = numpy_dense_forward(weights, spec, x1), numpy_dense_forward(weights, spec, x256)
    else:
        numpy_name = "numpy im2col+BLAS"
        dense_rt = load(tmp / f"{spec.arch}-{round(sparsity * 100)}-fp32.plsa", kernel="dense", threads=1)
        np1, np256 = (lambda: dense_rt.logits(x1)), (lambda: dense_rt.logits(x256))
    row["numpy_name"] = numpy_name
    b1 = time_interleaved({"artifact": lambda: rt.logits(x1), "torch": torch_forward(module, x1, 1),
                           "numpy": np1}, budget_s=budget, rounds=5)
    b256 = time_interleaved({"artifact": lambda: rt.logits(x256), "torch": torch_forward(module, x256, 1),
                             "numpy": np256}, budget_s=budget * 2, rounds=5)
    for tag, timings in (("b1", b1), ("b256", b256)):
        for name, t in timings.items():
            row[f"{tag}_{name}"] = t.median_us
            row[f"{tag}_{name}_p95"] = t.p95_us
    return row


def crossover(budget: float = 0.04) -> list[dict[str, Any]]:
    """dense-time / CSR-time of a 300x784 layer by density and matmul width."""
    import scipy.sparse as sp

    from prunelab.models.spec import Layer
    from prunelab.sparse.bench import time_interleaved
    from prunelab.sparse.runtime import WeightedOp, density_threshold

    rng = np.random.default_rng(0)
    rows = []
    for m in (1, 4, 16, 256):
        ratios = {}
        for d in (0.02, 0.05, 0.1, 0.2, 0.4):
            w = rng.standard_normal((300, 784)).astype(np.float32)
            w[rng.random(w.shape) >= d] = 0
            s = sp.csr_matrix(w)
            op = WeightedOp(Layer("linear", "x", {}), 300, 784, s.indptr.astype(np.int32),
                            s.indices.astype(np.int32), s.data, np.zeros(300, np.float32), "csr", 0)
            x = rng.random((784, m), dtype=np.float32)
            t = time_interleaved({"dense": lambda op=op, x=x: op.matmul(x, "dense"),
                                  "csr": lambda op=op, x=x: op.matmul(x, "csr")}, budget_s=budget, rounds=2)
            ratios[d] = t["dense"].median_us / t["csr"].median_us
        rows.append({"m": m, "ratios": ratios, "threshold": density_threshold(m)})
    return rows


def fmt_b(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.2f} MiB"


def report(rows: list[dict[str, Any]], cross: list[dict[str, Any]], header: str) -> str:
    out = [header, ""]
    out += ["### Size (artifact vs float32 safetensors of the same weights)", "",
            "| model | sparsity | test acc | dense | gzip of dense | fp32 | fp16 | int8 | limit 1/(1-s) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["dense_bytes"]
        cells = [f"{fmt_b(r[f'{p}_bytes'])} (**{d / r[f'{p}_bytes']:.1f}x**)" for p in PRECISIONS]
        out.append(f"| {r['arch']} | {r['sparsity']:.0%} | {r['test_accuracy']:.2%} | {fmt_b(d)} | "
                   f"{fmt_b(r['gzip_bytes'])} ({d / r['gzip_bytes']:.1f}x) | {' | '.join(cells)} | "
                   f"{r['limit']:.0f}x |")
    out += ["", "### Latency, one thread (median us per call, p95 in brackets)", "",
            "| model | sparsity | b1 artifact | b1 torch eager | b1 speed-up | b256 artifact | b256 dense numpy "
            "| b256 speed-up | b256 torch eager | b256 vs torch | FLOP ratio | limit 1/(1-s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['arch']} | {r['sparsity']:.0%} | {r['b1_artifact']:.1f} [{r['b1_artifact_p95']:.0f}] | "
            f"{r['b1_torch']:.1f} [{r['b1_torch_p95']:.0f}] | **{r['b1_torch'] / r['b1_artifact']:.2f}x** | "
            f"{r['b256_artifact']:.0f} [{r['b256_artifact_p95']:.0f}] | {r['b256_numpy']:.0f} "
            f"[{r['b256_numpy_p95']:.0f}] ({r['numpy_name']}) | **{r['b256_numpy'] / r['b256_artifact']:.2f}x** | "
            f"{r['b256_torch']:.0f} | {r['b256_torch'] / r['b256_artifact']:.2f}x | {r['flop_ratio']:.1f}x | "
            f"{r['limit']:.0f}x |")
    out += ["", "### Fidelity on all 10,000 MNIST test images", "",
            "| model | sparsity | torch acc | fp32 acc | fp32 argmax = torch | fp16 acc (diff) | int8 acc (diff) |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['arch']} | {r['sparsity']:.0%} | {r['torch_acc']:.2%} | {r['fp32_acc']:.2%} | "
            f"{r['fp32_agree']:,} / 10,000 | {r['fp16_acc']:.2%} ({(r['fp16_acc'] - r['fp32_acc']) * 100:+.2f} pp) | "
            f"{r['int8_acc']:.2%} ({(r['int8_acc'] - r['fp32_acc']) * 100:+.2f} pp) |")
    out += ["", "### Bars of issue 4 (95% LeNet-300-100; LeNet-5 at 95% reported without a bar)", ""]
    key = next((r for r in rows if r["arch"] == "lenet-300-100" and abs(r["sparsity"] - 0.95) < 0.005), None)
    if key:
        d = key["dense_bytes"]
        bars = [
            ("fp32 artifact >= 10x smaller", d / key["fp32_bytes"], 10),
            ("fp16 artifact >= 20x smaller", d / key["fp16_bytes"], 20),
            ("int8 artifact >= 40x smaller", d / key["int8_bytes"], 40),
            ("b1 >= 3x faster than torch eager", key["b1_torch"] / key["b1_artifact"], 3),
            ("b256 >= 1.5x faster than dense numpy", key["b256_numpy"] / key["b256_artifact"], 1.5),
        ]
        for text, value, bar in bars:
            out.append(f"- {text}: {value:.2f}x, {'met' if value >= bar else 'MISSED'} "
                       f"(1/(1-s) = {key['limit']:.0f}x)")
    for r in rows:
        agree = r["fp32_agree"] == 10000
        close = max(abs(r["fp16_acc"] - r["fp32_acc"]), abs(r["int8_acc"] - r["fp32_acc"])) <= 0.001 + 1e-12
        if not (agree and close):
            out.append(f"- fidelity {r['arch']} {r['sparsity']:.0%}: fp32 agrees on {r['fp32_agree']}/10000, "
                       f"fp16/int8 within 0.1 pp: {'yes' if close else 'NO'}")
    if all(r["fp32_agree"] == 10000 for r in rows):
        out.append("- fidelity: fp32 argmax equals PyTorch's on all 10,000 test images for every model: met")
    if all(max(abs(r["fp16_acc"] - r["fp32_acc"]), abs(r["int8_acc"] - r["fp32_acc"])) <= 0.001 + 1e-12
           for r in rows):
        out.append("- fidelity: fp16 and int8 accuracy within 0.1 pp of fp32 for every model: met")
    out += ["", "### Dense/CSR kernel crossover (300x784 layer, time dense / time CSR; >1 = CSR faster)", "",
            "| width m | " + " | ".join(f"d={d:g}" for d in cross[0]["ratios"]) + " | runtime threshold |",
            "|---|" + "---|" * (len(cross[0]["ratios"]) + 1)]
    for c in cross:
        out.append(f"| {c['m']} | " + " | ".join(f"{v:.2f}" for v in c["ratios"].values())
                   + f" | dense from d={c['threshold']:g} |")
    wide = cross[-1]["ratios"]
    # at density d, CSR does d of the multiply-adds in 1/ratio of the time: its rate relative to BLAS
    rate = float(np.median([d * r for d, r in wide.items()]))
    l5 = [r for r in rows if r["arch"] == "lenet-5"]
    out += ["", "Notes:", "",
            f"- At width {cross[-1]['m']} scipy's CSR kernel runs at about {rate:.2f}x the multiply-add rate of "
            "OpenBLAS's sgemm (median of d x time ratio above): the disassembly of scipy's `_sparsetools` "
            "binary uses only 128-bit SSE registers (no ymm/zmm instructions), while OpenBLAS runs AVX-512 "
            "kernels on this CPU. That, not the format, is why batch-256 speed-ups stay far below the FLOP "
            "ratio; at batch 1 both kernels are memory-bound and the rest of the gap is per-call overhead.",
            "- gzip of the dense float32 file is what generic compression of a pruned checkpoint gives; the "
            "artifact beats it because it never stores the zeros nor their positions one by one.",
            "- p95 latencies include pre-emption by the other jobs sharing this 2-core machine; compare medians."]
    if l5:
        ratios = ", ".join(f"{r['flop_ratio']:.1f}x" for r in l5)
        out.append(f"- LeNet-5's FLOP ratio ({ratios}) is far below 1/(1-s): global magnitude pruning empties "
                   "the large fc1 layer first while the conv weights, each used once per output pixel, stay "
                   "denser (see the per-layer table), and dense conv layers run on BLAS.")
    out += ["", "Per-layer density and kernel picked by the runtime (batch 1 / batch 256):", "",
            "| model | sparsity | " + "layer: density kernel b1/b256 |", "|---|---|---|"]
    for r in rows:
        cells = ", ".join(f"{name} {dens:.1%} {r['kernels_b1'][name]}/{r['kernels_b256'][name]}"
                          for name, dens in r["densities"].items())
        out.append(f"| {r['arch']} | {r['sparsity']:.0%} | {cells} |")
    return "\n".join(out)


def write_section(text: str, results: Path) -> None:
    from prunelab.atomic import write_bytes_atomic

    content = results.read_text() if results.exists() else "# Benchmark results\n"
    block = f"<!-- BEGIN sparse -->\n{text}\n<!-- END sparse -->"
    pattern = re.compile(r"<!-- BEGIN sparse -->.*?<!-- END sparse -->", re.S)
    content = pattern.sub(lambda _: block, content) if pattern.search(content) else content + "\n" + block + "\n"
    write_bytes_atomic(results, content.encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="keep/reuse trained and pruned models in this PRUNELAB_HOME")
    ap.add_argument("--epochs", type=int, default=6, help="training epochs of the dense parents")
    ap.add_argument("--finetune-epochs", type=int, default=3, help="fine-tune epochs after pruning")
    ap.add_argument("--schedule", help="pruning schedule (default: prunelab.prune's default)")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timing per batch size and model")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()

    home = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="prunelab-bench-"))
    os.environ["PRUNELAB_HOME"] = str(home)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import scipy
    import torch

    import prunelab
    from prunelab.store import Store

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    ds = prunelab.data.load_dataset("mnist")
    store = Store(home)
    models = get_models(store, ds, args.epochs, args.finetune_epochs, args.schedule)
    schedules = sorted({m.meta["config"].get("schedule") for (_, s), m in models.items() if s > 0})
    rows = []
    with tempfile.TemporaryDirectory(prefix="prunelab-artifacts-") as tmp:
        for (arch, s), model in models.items():
            if s == 0.0:
                continue
            row = measure(model, ds, Path(tmp), args.budget)
            rows.append(row)
            d = row["dense_bytes"]
            log(f"{arch} {s:.0%}: fp32 {d / row['fp32_bytes']:.1f}x, fp16 {d / row['fp16_bytes']:.1f}x, "
                f"int8 {d / row['int8_bytes']:.1f}x (gzip {d / row['gzip_bytes']:.1f}x); "
                f"b1 {row['b1_artifact']:.1f} us vs torch {row['b1_torch']:.1f} "
                f"({row['b1_torch'] / row['b1_artifact']:.2f}x); b256 {row['b256_artifact']:.0f} us vs "
                f"{row['numpy_name']} {row['b256_numpy']:.0f} ({row['b256_numpy'] / row['b256_artifact']:.2f}x); "
                f"limit {row['limit']:.0f}x; fp32 agrees {row['fp32_agree']}/10000; acc fp32/fp16/int8 "
                f"{row['fp32_acc']:.4f}/{row['fp16_acc']:.4f}/{row['int8_acc']:.4f}")
    cross = crossover()
    header = (f"## sparse: compact artifact and torch-free runtime (`benchmarks/sparse_runtime.py`)\n\n"
              f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; one thread "
              f"everywhere (BLAS, torch, runtime); numpy {np.__version__}, scipy {scipy.__version__}, "
              f"torch {torch.__version__}. Dense parents trained {args.epochs} epochs on the 60k MNIST "
              f"training set; children pruned by `prunelab.prune` (global magnitude, {'/'.join(schedules)} "
              f"schedule) with "
              f"{args.finetune_epochs} fine-tune epochs. Latency contenders run in alternating rounds in one "
              f"process on real test images; `dense` sizes are the float32 safetensors of the weights. "
              f"Run time {time.perf_counter() - t_start:.0f} s"
              + (f" (the {len(REUSED)} models were trained and pruned by an earlier run with the same "
                 "settings and reused from its --store)." if REUSED else "."))
    text = report(rows, cross, header)
    print("\n" + text)
    if not args.no_write:
        write_section(text, Path(args.results))
        log(f"\nwrote the sparse section of {args.results}")


if __name__ == "__main__":
    sys.exit(main())

"""Is the pruned model really smaller and really faster than what a user would deploy?

    .venv/bin/python benchmarks/sparse_runtime.py [--store DIR] [--epochs 6] [--finetune-epochs 3]

Trains LeNet-300-100 and LeNet-5 on the full MNIST (60k), prunes each to
90 / 95 / 98% with prunelab.prune (global magnitude, fine-tuned), exports
fp32 / fp16 / int8 artifacts and measures, in this one process:

- size: artifact bytes vs the float32 safetensors of the weights, and vs
  gzip of that file;
- latency, one thread, side by side in alternating rounds (medians): the
  artifact runtime (numba back-end, and the numpy/scipy one) against ONNX
  Runtime running the DENSE network (the torch model exported with
  torch.onnx.export, dynamic batch axis, intra_op_num_threads=1), PyTorch
  eager and dense numpy, at batch 1 and 256, on float32 (n, 784) input for
  LeNet-300-100 and (n, 1, 28, 28) for LeNet-5; then the artifact at 2
  threads against ONNX Runtime at 2 threads; the FLOP ratio is printed
  beside each speed-up;
- input handling at batch 1: each accepted layout, (n, 784) and
  (n, 1, 28, 28) float32 and (n, 28, 28) uint8, against the bare kernel call;
- fidelity on all 10,000 test images: fp32 argmax vs PyTorch's (both
  back-ends), fp16/int8 accuracy vs fp32;
- the dense/CSR choice the runtime measured per layer at load.

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
            sched = schedule or default_schedule("magnitude")
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
    from prunelab.sparse.bench import numpy_dense_forward, onnx_dense_forward, time_interleaved, torch_forward
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
    path = tmp / f"{spec.arch}-{round(sparsity * 100)}-fp32.plsa"
    rt = runtimes["fp32"]
    rt_np = load(path, threads=1, backend="numpy")
    row["fp32_agree_numpy"] = int((rt_np.predict(x_all) == torch_pred).sum())
    row["backend"] = rt.backend
    row["encodings"] = {t.name: t.encoding for t in res.tensors if t.name.endswith(".weight")}
    row["kernels_b1"], row["kernels_b256"] = rt.kernels(1), rt.kernels(256)
    row["densities"] = {d["layer"]: d["density"] for d in rt.describe()}
    mlp = all(layer.kind in ("linear", "relu", "flatten") for layer in spec.layers)
    # the input: float32 (n, 784) for the MLP; LeNet-5 takes its own (n, 1, 28, 28)
    xin = x_all.reshape(len(x_all), -1) if mlp else x_all
    row["input"] = "(n, 784) float32" if mlp else "(n, 1, 28, 28) float32"
    for n in (1, 256):
        x = np.ascontiguousarray(xin[:n])
        if mlp:
            numpy_name, npf = "numpy x@W.T", numpy_dense_forward(weights, spec, x)
        else:
            dense_rt = load(path, kernel="dense", threads=1, backend="numpy")
            numpy_name, npf = "numpy im2col+BLAS", (lambda d=dense_rt, x=x: d.logits(x))
        row["numpy_name"] = numpy_name
        t = time_interleaved({"artifact": lambda x=x: rt.logits(x), "ort": onnx_dense_forward(module, x, 1),
                              "artifact_numpy": lambda x=x: rt_np.logits(x), "torch": torch_forward(module, x, 1),
                              "numpy": npf}, budget_s=budget * (1 if n == 1 else 2), rounds=7)
        for name, tm in t.items():
            row[f"b{n}_{name}"] = tm.median_us
            row[f"b{n}_{name}_p95"] = tm.p95_us
    # two threads: the runtime against ONNX Runtime, both at 2 threads
    rt2 = load(path, threads=2)
    for n in (1, 256):
        x = np.ascontiguousarray(xin[:n])
        t = time_interleaved({"artifact": lambda x=x: rt2.logits(x), "ort": onnx_dense_forward(module, x, 2)},
                             budget_s=budget * (1 if n == 1 else 2), rounds=7)
        row[f"t2_b{n}_artifact"], row[f"t2_b{n}_ort"] = t["artifact"].median_us, t["ort"].median_us
    torch.set_num_threads(1)
    if mlp and rt.backend == "numba":
        row["inputs"] = input_overhead(rt, ds, x_all, budget)
    return row


def input_overhead(rt: Any, ds: Any, x_all: np.ndarray, budget: float) -> dict[str, float]:
    """Batch-1 time of each accepted input layout minus the bare fused-kernel call
    on an already flat float32 vector (median us; one process, alternating)."""
    from prunelab.sparse.bench import time_interleaved

    fn, plan, ints, floats, classes = rt._chain  # the fused batch-1 kernel of an MLP
    flat = np.ascontiguousarray(x_all[0].reshape(-1))
    one = np.float32(1.0)

    def bare() -> np.ndarray:
        out = np.empty((1, classes), np.float32)
        fn(plan, ints, floats, flat, one, out[0])
        return out

    layouts = {"(1, 784) float32": np.ascontiguousarray(x_all[:1].reshape(1, -1)),
               "(1, 1, 28, 28) float32": np.ascontiguousarray(x_all[:1]),
               "(1, 28, 28) uint8": np.ascontiguousarray(ds.x_test[:1])}
    fns = {"kernel": bare, **{k: (lambda x=x: rt.logits(x)) for k, x in layouts.items()}}
    t = time_interleaved(fns, budget_s=budget, rounds=7)
    out = {"kernel": t["kernel"].median_us}
    out.update({k: t[k].median_us - t["kernel"].median_us for k in layouts})
    return out


def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def numba_version() -> str:
    try:
        import numba
    except ImportError:
        return "not installed"
    return str(numba.__version__)


def fmt_b(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.2f} MiB"


def report(rows: list[dict[str, Any]], header: str) -> str:
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
    out += ["", "### Latency, one thread: the artifact against ONNX Runtime on the dense network "
            "(median us per call; speed-up = ONNX Runtime time / artifact time)", "",
            "| model | sparsity | input | batch | artifact (numba) | ONNX Runtime dense | **speed-up** | "
            "artifact (numpy back-end) | PyTorch eager | dense numpy | FLOP ratio |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for n in (1, 256):
            a = r[f"b{n}_artifact"]
            out.append(
                f"| {r['arch']} | {r['sparsity']:.0%} | {r['input']} | {n} | {a:.1f} | {r[f'b{n}_ort']:.1f} | "
                f"**{r[f'b{n}_ort'] / a:.2f}x** | {r[f'b{n}_artifact_numpy']:.1f} "
                f"({r[f'b{n}_ort'] / r[f'b{n}_artifact_numpy']:.2f}x) | {r[f'b{n}_torch']:.1f} | "
                f"{r[f'b{n}_numpy']:.1f} ({r['numpy_name']}) | {r['flop_ratio']:.1f}x |")
    out += ["", "### Two threads: the artifact at threads=2 against ONNX Runtime at intra_op_num_threads=2 "
            "(median us)", "",
            "| model | sparsity | b1 artifact | b1 ONNX Runtime | b1 speed-up | b256 artifact | b256 ONNX Runtime "
            "| b256 speed-up | b256 artifact 1 thread -> 2 threads |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['arch']} | {r['sparsity']:.0%} | {r['t2_b1_artifact']:.1f} | {r['t2_b1_ort']:.1f} | "
            f"**{r['t2_b1_ort'] / r['t2_b1_artifact']:.2f}x** | {r['t2_b256_artifact']:.0f} | {r['t2_b256_ort']:.0f} "
            f"| **{r['t2_b256_ort'] / r['t2_b256_artifact']:.2f}x** | "
            f"{r['b256_artifact'] / r['t2_b256_artifact']:.2f}x faster |")
    key = next((r for r in rows if r["arch"] == "lenet-300-100" and abs(r["sparsity"] - 0.95) < 0.005), None)
    if key and "inputs" in key:
        inp = key["inputs"]
        out += ["", "### Input handling at batch 1 (95% LeNet-300-100, numba back-end)", "",
                f"The bare fused kernel call on a flat float32 vector takes {inp['kernel']:.2f} us; "
                "each accepted layout adds (median us, same run, alternating):", "",
                "| input | overhead |", "|---|---|"]
        for k, v in inp.items():
            if k != "kernel":
                out.append(f"| {k} | {v:+.2f} us |")
    out += ["", "### Fidelity on all 10,000 MNIST test images", "",
            "| model | sparsity | torch acc | fp32 acc | fp32 argmax = torch (numba / numpy back-end) | "
            "fp16 acc (diff) | int8 acc (diff) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['arch']} | {r['sparsity']:.0%} | {r['torch_acc']:.2%} | {r['fp32_acc']:.2%} | "
            f"{r['fp32_agree']:,} / {r['fp32_agree_numpy']:,} of 10,000 | "
            f"{r['fp16_acc']:.2%} ({(r['fp16_acc'] - r['fp32_acc']) * 100:+.2f} pp) | "
            f"{r['int8_acc']:.2%} ({(r['int8_acc'] - r['fp32_acc']) * 100:+.2f} pp) |")
    out += ["", "### Bars of issue 12 (one thread, float32 (n, 784) input, dense network in ONNX Runtime)", ""]
    bars: list[tuple[str, float, float, dict[str, Any]]] = []
    for r in rows:
        if r["arch"] == "lenet-300-100" and abs(r["sparsity"] - 0.95) < 0.005:
            bars += [("95% LeNet-300-100, batch 1 >= 2x faster", r["b1_ort"] / r["b1_artifact"], 2, r),
                     ("95% LeNet-300-100, batch 256 >= 3x faster", r["b256_ort"] / r["b256_artifact"], 3, r)]
        if r["arch"] == "lenet-300-100" and abs(r["sparsity"] - 0.98) < 0.005:
            bars.append(("98% LeNet-300-100, batch 256 >= 6x faster", r["b256_ort"] / r["b256_artifact"], 6, r))
    for text, value, bar, r in bars:
        out.append(f"- {text}: {value:.2f}x, {'met' if value >= bar else 'MISSED'} "
                   f"(FLOP ratio {r['flop_ratio']:.1f}x)")
    if key:
        d = key["dense_bytes"]
        old = {"fp32": 16.4, "fp16": 28.4, "int8": 42.5}
        for prec in PRECISIONS:
            v = d / key[f"{prec}_bytes"]
            out.append(f"- 95% LeNet-300-100 {prec} size no worse than the version-1 file's {old[prec]}x: "
                       f"{v:.1f}x, {'met' if v >= old[prec] - 0.05 else 'MISSED'}")
    agree = all(r["fp32_agree"] == 10000 and r["fp32_agree_numpy"] == 10000 for r in rows)
    out.append(f"- fidelity: fp32 argmax equals PyTorch's on all 10,000 test images for every model, both "
               f"back-ends: {'met' if agree else 'MISSED'}")
    close = all(max(abs(r["fp16_acc"] - r["fp32_acc"]), abs(r["int8_acc"] - r["fp32_acc"])) <= 0.001 + 1e-12
                for r in rows)
    out.append(f"- fidelity: fp16 and int8 accuracy within 0.1 pp of fp32 for every model: "
               f"{'met' if close else 'MISSED'}")
    out += ["", "Per-layer density and the kernel the runtime measured faster at load (batch 1 / batch 256):", "",
            "| model | sparsity | layer: density kernel b1/b256 |", "|---|---|---|"]
    for r in rows:
        cells = ", ".join(f"{name} {dens:.1%} {r['kernels_b1'][name]}/{r['kernels_b256'][name]}"
                          for name, dens in r["densities"].items())
        out.append(f"| {r['arch']} | {r['sparsity']:.0%} | {cells} |")
    out += ["", "Notes: how far from the FLOP limit, and why", ""] + notes(rows)
    return "\n".join(out)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """The closing note: each LeNet-300-100 figure against its FLOP ratio, with the measured causes."""
    out = []
    for r in rows:
        if r["arch"] != "lenet-300-100":
            continue
        for n in (1, 256):
            sp = r[f"b{n}_ort"] / r[f"b{n}_artifact"]
            out.append(f"- {r['sparsity']:.0%} batch {n}: {sp:.2f}x against a FLOP ratio of {r['flop_ratio']:.1f}x "
                       f"({sp / r['flop_ratio']:.0%} of the limit).")
    out += [
        "- Why batch 256 stays far below the FLOP ratio: ONNX Runtime's dense GEMM reuses each loaded input "
        "value across a register tile of outputs and runs at a large fraction of the CPU's FMA peak; an "
        "unstructured sparse kernel cannot reuse inputs across rows (each row has its own columns), so every "
        "multiply-add loads one activation (from L2: the (784, 256) float32 input is 800 KB) and the kernel is "
        "bound by that load bandwidth, not by arithmetic. On top of that the input has to be transposed to "
        "the batch-innermost layout the kernel streams (one pass over 200k floats) - a fixed cost that does "
        "not shrink with sparsity, which is why the 98% figure is further from its limit than the 95% one. "
        "numba's LLVM also emits 256-bit (ymm) vectors on this AVX-512 CPU (its default tuning).",
        "- Why batch 1 stays below: at one sample the work is a few thousand indexed loads (a gather per "
        "stored weight, x[index]) plus a fixed cost per call - Python dispatch into the compiled kernel and "
        "input handling (table above) - that is comparable to the arithmetic itself at 95-98% sparsity; "
        "ONNX Runtime pays its own per-call cost too, which is part of why the ratio exceeds 2x.",
        "- LeNet-5's FLOP ratio is far below 1/(1-s): global magnitude pruning empties the large fc1 first "
        "while conv weights, each used once per output pixel, stay denser; the conv layers run im2col + "
        "BLAS or the same CSR kernel, whichever measured faster, and the im2col gather and max-pooling are "
        "numpy passes with a Python call per layer - fixed costs ONNX Runtime's fused conv kernels avoid, "
        "which is why LeNet-5 at batch 1 only matches ONNX Runtime (only its fc layers run as one "
        "compiled call).",
        "- Two threads: the runtime splits a batch into one block of samples per thread; on this 2-core "
        "machine shared with other jobs (load average in the header) a second thread rarely gets a core of "
        "its own, so both runtimes are slower at 2 threads than at 1 here, and only the side-by-side ratio "
        "means anything.",
        "- p95 latencies and absolute times include pre-emption by other jobs on this shared 2-core machine; "
        "only the ratios, measured in alternating rounds in one process, compare like with like.",
    ]
    return out


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
    ap.add_argument("--only", help="measure only models whose arch-sparsity contains this, e.g. lenet-300-100-95 "
                    "(implies --no-write)")
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
    load_before = os.getloadavg()[0]
    ds = prunelab.data.load_dataset("mnist")
    store = Store(home)
    models = get_models(store, ds, args.epochs, args.finetune_epochs, args.schedule)
    schedules = sorted({m.meta["config"].get("schedule") for (_, s), m in models.items() if s > 0})
    rows = []
    with tempfile.TemporaryDirectory(prefix="prunelab-artifacts-") as tmp:
        for (arch, s), model in models.items():
            if s == 0.0 or (args.only and args.only not in f"{arch}-{round(s * 100)}"):
                continue
            row = measure(model, ds, Path(tmp), args.budget)
            rows.append(row)
            d = row["dense_bytes"]
            log(f"{arch} {s:.0%}: fp32 {d / row['fp32_bytes']:.1f}x, fp16 {d / row['fp16_bytes']:.1f}x, "
                f"int8 {d / row['int8_bytes']:.1f}x; b1 {row['b1_artifact']:.1f} us vs ONNX Runtime "
                f"{row['b1_ort']:.1f} ({row['b1_ort'] / row['b1_artifact']:.2f}x); b256 {row['b256_artifact']:.0f} "
                f"us vs {row['b256_ort']:.0f} ({row['b256_ort'] / row['b256_artifact']:.2f}x); 2 threads b256 "
                f"{row['t2_b256_ort'] / row['t2_b256_artifact']:.2f}x; FLOP ratio {row['flop_ratio']:.1f}x; "
                f"fp32 agrees {row['fp32_agree']}/{row['fp32_agree_numpy']} of 10000; acc fp32/fp16/int8 "
                f"{row['fp32_acc']:.4f}/{row['fp16_acc']:.4f}/{row['int8_acc']:.4f}")
    header = (f"## sparse: compact artifact and torch-free runtime (`benchmarks/sparse_runtime.py`)\n\n"
              f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; one thread "
              f"everywhere (BLAS, torch, ONNX Runtime, runtime) except the two-thread table; numpy "
              f"{np.__version__}, scipy {scipy.__version__}, torch {torch.__version__}, onnxruntime "
              f"{ort_version()}, numba {numba_version()}. Dense parents trained {args.epochs} epochs on the 60k "
              f"MNIST training set; children pruned by `prunelab.prune` (global magnitude, {'/'.join(schedules)} "
              f"schedule) with "
              f"{args.finetune_epochs} fine-tune epochs. Latency contenders run in alternating rounds in one "
              f"process on real test images; `dense` sizes are the float32 safetensors of the weights. "
              f"Load average (1 min, all jobs on the machine) {load_before:.1f} at the start and "
              f"{os.getloadavg()[0]:.1f} at the end. Run time {time.perf_counter() - t_start:.0f} s"
              + (f" (the {len(REUSED)} models were trained and pruned by an earlier run with the same "
                 "settings and reused from its --store)." if REUSED else "."))
    text = report(rows, header)
    print("\n" + text)
    if not args.no_write and not args.only:
        write_section(text, Path(args.results))
        log(f"\nwrote the sparse section of {args.results}")


if __name__ == "__main__":
    sys.exit(main())

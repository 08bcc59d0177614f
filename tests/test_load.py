"""A bounded load test on loopback: N concurrent clients send `POST /api/predict`
(real PNG digits from the MNIST test set) to a real `prunelab serve`
subprocess for a fixed time, alternating between a dense and a pruned model.

Measured: throughput, p50/p99 latency, errors (must be zero), whether every
answer matches the one the same image got when the server was idle (no
cross-talk between concurrent requests), and the server's resident memory
(VmRSS) after warm-up vs during the run (must stay roughly flat).
`make test`: 10 clients for 5 s; `make reliability`: 50 clients for 30 s.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from prunelab.data.datasets import Dataset
from tests.reliability import record, scale
from tests.server_process import ServerProcess

CLIENTS = int(scale(10, 50))
SECONDS = scale(5, 30)
WARMUP = 40  # sequential requests before the memory baseline (caches, thread pool, allocator)
RSS_GROWTH_MIB = 64  # "flat": the run may not grow the server by more than this over its warm baseline


def png(digit: np.ndarray) -> bytes:
    """A 28x28 uint8 digit as PNG bytes, as a user would upload it."""
    buf = io.BytesIO()
    Image.fromarray(digit).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def predict_server(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> Iterator[tuple[ServerProcess,
                                                                                                list[str]]]:
    """A server whose store holds a small trained model and a 90%-pruned copy."""
    import prunelab
    from prunelab.store import Store

    home = tmp_path_factory.mktemp("load-home")
    store = Store(home)
    base = prunelab.train(arch="lenet-300-100", epochs=1, train_limit=600, store=store, name="dense").model
    pruned = prunelab.prune(base.id, 0.9, finetune_epochs=0, store=store, name="sparse", threads=1).model
    with ServerProcess(home) as srv:
        yield srv, [base.id, pruned.id]


def predict(client: httpx.Client, image: bytes, model: str) -> tuple[int, Any]:
    r = client.post("/api/predict", files={"image": ("digit.png", image, "image/png")}, data={"models": model})
    return r.status_code, (r.json() if r.status_code == 200 else r.text)


def test_concurrent_predict_load(predict_server: tuple[ServerProcess, list[str]], mnist: Dataset) -> None:
    srv, models = predict_server
    images = [png(mnist.x_test[i]) for i in range(16)]

    # idle answers: what each (image, model) must get back under load too
    expected: dict[tuple[int, str], int] = {}
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        pairs = [(i, m) for i in range(len(images)) for m in models]
        for k in range(max(WARMUP, len(pairs))):
            i, m = pairs[k % len(pairs)]
            status, body = predict(client, images[i], m)
            assert status == 200, body
            row = body["predictions"][0]
            assert row["id"] == m and len(row["probabilities"]) == 10
            assert expected.setdefault((i, m), row["prediction"]) == row["prediction"]
    rss_warm = srv.rss_kib()

    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    mismatches: list[str] = []
    rss: list[int] = []
    stop = threading.Event()
    barrier = threading.Barrier(CLIENTS + 1)

    def client_loop(c: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            barrier.wait()
            k = c
            while not stop.is_set():
                i, m = k % len(images), models[(k // len(images) + c) % len(models)]
                t0 = time.perf_counter()
                try:
                    status, body = predict(client, images[i], m)
                except Exception as exc:  # a dropped connection, a timeout, a non-JSON answer
                    errors.append(f"client {c}: {type(exc).__name__}: {exc}")
                    k += 1
                    continue
                latencies[c].append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"client {c}: HTTP {status}: {str(body)[:200]}")
                elif body["predictions"][0]["prediction"] != expected[(i, m)]:
                    mismatches.append(f"image {i} model {m}: {body['predictions'][0]['prediction']} "
                                      f"!= {expected[(i, m)]}")
                k += 1

    def sample_memory() -> None:
        while not stop.wait(0.25):
            rss.append(srv.rss_kib())

    threads = [threading.Thread(target=client_loop, args=(c,), daemon=True) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    monitor = threading.Thread(target=sample_memory, daemon=True)
    barrier.wait()
    started = time.perf_counter()
    monitor.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - started
    monitor.join(timeout=5)
    rss.append(srv.rss_kib())
    assert srv.alive(), "".join(srv.stderr)[-3000:]

    lat = np.array([x for per in latencies for x in per]) * 1000.0  # ms
    total = int(lat.size)
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99)) if total else (float("nan"), float("nan"))
    growth_mib = (max(rss) - rss_warm) / 1024.0
    half = len(rss) // 2
    late_growth_mib = (max(rss[half:]) - max(rss[: max(half, 1)])) / 1024.0  # second half vs first half
    figures = dict(clients=CLIENTS, seconds=round(elapsed, 1), requests=total, errors=len(errors),
                   mismatches=len(mismatches), throughput_rps=round(total / elapsed, 1), p50_ms=round(p50, 1),
                   p99_ms=round(p99, 1), max_ms=round(float(lat.max()), 1) if total else None,
                   rss_warm_mib=round(rss_warm / 1024, 1), rss_max_mib=round(max(rss) / 1024, 1),
                   rss_end_mib=round(rss[-1] / 1024, 1), rss_growth_mib=round(growth_mib, 1),
                   rss_late_growth_mib=round(late_growth_mib, 1), models=len(models))
    record("load", **figures)
    print(f"\nload: {figures}")

    assert not errors, errors[:10]
    assert not mismatches, mismatches[:10]
    assert total >= CLIENTS, f"only {total} requests completed in {elapsed:.1f} s"
    assert all(latencies), "a client never got an answer"
    assert growth_mib < RSS_GROWTH_MIB, f"server memory grew {growth_mib:.1f} MiB under load: {figures}"
    assert late_growth_mib < RSS_GROWTH_MIB / 2, f"memory still climbing in the second half: {figures}"

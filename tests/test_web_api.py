"""The explorer's JSON API over real HTTP: a real uvicorn server on a free
127.0.0.1 port, a real SQLite store in a temp folder, real MNIST training
and pruning jobs. Bad input must answer 4xx with {"detail": message} and
leave the store untouched."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import store_snapshot


class LiveServer:
    """uvicorn serving `create_app(store_root=root)` in a thread on a free port."""

    def __init__(self, root: Path, workers: int = 1) -> None:
        import uvicorn

        from prunelab.web import create_app

        self.root = root
        self.app = create_app(store_root=root, workers=workers)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("the explorer did not start within 20 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll a job until it finishes; returns its final record (with events)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def read_sse(client: httpx.Client, path: str, timeout: float = 120.0) -> list[tuple[str, dict[str, Any]]]:
    """All (event, data) pairs of a server-sent-events stream until the server closes it."""
    out: list[tuple[str, dict[str, Any]]] = []
    event = "message"
    with client.stream("GET", path, timeout=timeout) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                event = "message"
    return out


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("web-store")
    with LiveServer(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def trained(client: httpx.Client) -> dict[str, Any]:
    """Two small real MNIST models submitted at once: the one worker runs them in turn."""
    a = client.post("/api/jobs/train", json={"arch": "lenet-300-100", "epochs": 1, "train_limit": 2000,
                                              "batch_size": 32, "name": "base"})
    b = client.post("/api/jobs/train", json={"arch": "mlp", "hidden": [64], "epochs": 1, "train_limit": 1000,
                                              "name": "small-mlp", "seed": 3})
    assert a.status_code == 202, a.text
    assert b.status_code == 202, b.text
    assert b.json()["status"] == "queued" and b.json()["position"] >= 1
    ja, jb = wait_job(client, a.json()["id"]), wait_job(client, b.json()["id"])
    assert ja["status"] == "done", ja["error"]
    assert jb["status"] == "done", jb["error"]
    # one worker: the second job started only after the first finished
    assert jb["started"] >= ja["finished"]
    return {"job": ja, "base": ja["result"]["model"], "mlp": jb["result"]["model"]}


# --- pages and static assets ------------------------------------------------------------


def test_pages_render_and_assets_ship_with_the_package(client: httpx.Client) -> None:
    for path in ("/", "/train", "/prune", "/test", "/inside", "/compare", "/data"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert "text/html" in r.headers["content-type"]
        assert "<nav" in r.text and "/static/app.js" in r.text
        assert not re.search(r"(src|href)=\"(https?:)?//", r.text), f"{path} references an external asset"
    for asset in ("app.css", "app.js", "charts.js", "draw.js", "favicon.svg"):
        assert client.get(f"/static/{asset}").status_code == 200, asset
    schema = client.get("/api/openapi.json").json()
    assert "/api/models" in schema["paths"] and "/api/jobs/train" in schema["paths"]
    r = client.get("/no-such-page")
    assert r.status_code == 404 and "Page not found" in r.text
    r = client.get("/api/no-such-endpoint")
    assert r.status_code == 404 and "detail" in r.json()


def test_datasets_lists_mnist_and_idx_folders_in_the_store(client: httpx.Client, server: LiveServer) -> None:
    from prunelab.data.idx import write_idx

    assert client.get("/api/datasets").json()["datasets"] == ["mnist"]
    folder = server.root / "datasets" / "tiny-idx"
    folder.mkdir(parents=True)
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(folder / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    (server.root / "datasets" / "empty").mkdir()
    assert client.get("/api/datasets").json()["datasets"] == ["mnist", "idx:tiny-idx"]


def test_health_and_presets(client: httpx.Client) -> None:
    h = client.get("/api/health").json()
    assert h["ok"] and h["workers"] == 1
    presets = client.get("/api/presets").json()
    names = [p["name"] for p in presets["presets"]]
    assert {"lenet-300-100", "lenet-5", "mlp", "cnn"} <= set(names)
    lenet = next(p for p in presets["presets"] if p["name"] == "lenet-300-100")
    assert lenet["params"] == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


# --- training jobs, SSE, the registry ------------------------------------------------------------


def test_training_jobs_store_models_and_stream_progress(client: httpx.Client, trained: dict[str, Any]) -> None:
    models = client.get("/api/models").json()["models"]
    by_id = {m["id"]: m for m in models}
    base = by_id[trained["base"]]
    assert base["name"] == "base" and base["arch"] == "lenet-300-100" and base["parent"] is None
    assert 0.5 < base["test_accuracy"] <= 1.0  # 2,000 real MNIST images, one epoch
    assert base["params"] == 266610 and base["sparsity"] == 0.0 and base["dense_bytes"] == 266610 * 4
    assert by_id[trained["mlp"]]["params"] == 784 * 64 + 64 + 64 * 10 + 10
    # the finished job replays its whole stream: start, batches every 20 steps, epoch, end
    events = read_sse(client, f"/api/jobs/{trained['job']['id']}/events")
    kinds = [d["kind"] for e, d in events if e == "progress"]
    assert kinds[0] == "start" and kinds[-1] == "end" and "epoch" in kinds
    batches = [d for e, d in events if e == "progress" and d["kind"] == "batch"]
    assert len(batches) >= 2  # 2,000 images less the 1/12 validation split, batch 32: 58 steps
    assert all(0 < b["loss"] < 5 and 0 <= b["accuracy"] <= 1 for b in batches)
    assert events[-1][0] == "end" and events[-1][1]["status"] == "done"
    # reconnecting with Last-Event-ID resumes after that event
    resumed = read_sse(client, f"/api/jobs/{trained['job']['id']}/events?since={len(kinds) - 1}")
    assert [d["kind"] for e, d in resumed if e == "progress"] == ["end"]
    listed = client.get("/api/jobs").json()["jobs"]
    assert {trained["job"]["id"]} <= {j["id"] for j in listed}


def test_show_rename_inside_mistakes_and_test_images(client: httpx.Client, trained: dict[str, Any]) -> None:
    rec = client.get("/api/models/base").json()
    assert rec["id"] == trained["base"] and rec["history"]
    listed = client.get("/api/models").json()["models"]  # other tests may have pruned it already
    assert sorted(rec["children"]) == sorted(m["id"] for m in listed if m["parent"] == trained["base"])
    inside = client.get(f"/api/models/{trained['base']}/inside").json()
    assert [layer["layer"] for layer in inside["layers"]] == ["fc1", "fc2", "fc3"]
    assert all(layer["sparsity"] == 0 for layer in inside["layers"])
    first = inside["first_layer"]
    assert first["kind"] == "linear" and np.array(first["kept_fraction"]).shape == (28, 28)
    assert first["dense"] is True and np.array(first["magnitude"]).max() == 1.0
    hist = inside["histograms"]["fc1"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == 784 * 300

    wrong = client.get(f"/api/models/{trained['base']}/mistakes?limit=5").json()
    assert wrong["count"] == 10000 and 0 < wrong["total"] < 5000 and len(wrong["items"]) == 5
    assert abs(wrong["accuracy"] - rec["metrics"]["test_accuracy"]) < 1e-9
    confs = [it["confidence"] for it in wrong["items"]]
    assert confs == sorted(confs, reverse=True) and all(it["label"] != it["predicted"] for it in wrong["items"])
    r = client.get(f"/api/models/base/test-images/{wrong['items'][0]['index']}.png?scale=2")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (56, 56)

    r = client.patch(f"/api/models/{trained['mlp']}", json={"name": "tiny-mlp"})
    assert r.status_code == 200 and r.json()["name"] == "tiny-mlp"
    assert client.get("/api/models/tiny-mlp").json()["id"] == trained["mlp"]
    assert client.get("/api/models/small-mlp").status_code == 404
    r = client.patch(f"/api/models/{trained['mlp']}", json={"name": "small-mlp"})  # as the fixture made it
    assert r.status_code == 200 and client.get("/api/models/small-mlp").json()["id"] == trained["mlp"]


def test_predict_preprocesses_like_mnist_and_matches_the_library(
        client: httpx.Client, trained: dict[str, Any], mnist: Any) -> None:
    import torch

    from prunelab.store import Store
    from prunelab.train import to_input

    digit = mnist.x_test[0]  # a real test digit, 28x28 white on black
    # what a user uploads: 10x bigger, dark ink on white paper, off-centre on a wide canvas
    big = np.asarray(Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR))
    paper = np.full((400, 600), 255, np.uint8)
    paper[20:300, 300:580] = big
    r = client.post("/api/predict", files={"image": ("digit.png", png(paper), "image/png")},
                    data={"models": f"base,{trained['mlp']}"})
    assert r.status_code == 200, r.text
    res = r.json()
    seen = np.array(res["input"], dtype=np.uint8)
    assert seen.shape == (28, 28)
    # inverted, cropped, centred: close to the original MNIST digit
    corr = np.corrcoef(seen.ravel().astype(float), digit.ravel().astype(float))[0, 1]
    assert corr > 0.8, corr
    assert [p["id"] for p in res["predictions"]] == [trained["base"], trained["mlp"]]
    store = Store(client.get("/api/health").json()["store"])
    for p in res["predictions"]:
        assert abs(sum(p["probabilities"]) - 1) < 1e-3 and len(p["probabilities"]) == 10
        with torch.no_grad():
            expected = torch.softmax(store.load(p["id"]).to_torch()(to_input(seen[None])), 1)[0].numpy()
        assert np.allclose(p["probabilities"], expected, atol=1e-4)
        assert p["prediction"] == int(expected.argmax())
    # RGBA drawing with a transparent background and black ink works too
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[40:160, 90:110, 3] = 255  # a vertical bar: a "1"
    r = client.post("/api/predict", files={"image": ("one.png", png(rgba), "image/png")}, data={"models": "base"})
    assert r.status_code == 200
    assert np.array(r.json()["input"]).max() == 255


# --- pruning, lineage, compare ----------------------------------------------------------------


def test_prune_job_makes_a_child_in_the_lineage(client: httpx.Client, trained: dict[str, Any]) -> None:
    r = client.post("/api/jobs/prune", json={"parent": "base", "sparsity": 0.9, "finetune_epochs": 1,
                                              "name": "base-90"})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    assert any(e["phase"] == "finetune" and e["kind"] == "epoch" for e in job["events"])
    child = client.get("/api/models/base-90").json()
    assert child["parent"] == trained["base"] and child["kind"] == "pruned"
    assert abs(child["sparsity"] - 0.9) < 0.001
    assert client.get("/api/models/base").json()["children"] == [child["id"]]
    inside = client.get(f"/api/models/{child['id']}/inside").json()
    assert inside["parent"] == trained["base"] and "other_counts" in inside["histograms"]["fc1"]
    kept = np.array(inside["first_layer"]["kept_fraction"])
    assert inside["first_layer"]["dense"] is False and kept.mean() < 0.2
    # magnitude pruning keeps pixels where digits are drawn: the centre keeps more than the border
    assert kept[8:20, 8:20].mean() > 3 * kept[:3].mean()
    fc = inside["layers"]
    zeros = sum(la["weights"] - la["nonzero"] for la in fc)
    assert zeros / sum(la["weights"] for la in fc) == pytest.approx(0.9, abs=1e-3)

    rows = client.get(f"/api/compare?models=base,{child['id']}").json()
    assert "teaching benchmark" in rows["note"]
    base_row, child_row = rows["rows"]
    assert base_row["compression"] == pytest.approx(1.0)
    assert child_row["compression"] > 5
    assert child_row["effective_flops"] < 0.2 * child_row["flops"]
    assert child_row["flops"] == base_row["flops"] == 784 * 300 + 300 * 100 + 100 * 10
    measured = client.get(f"/api/compare?models={child['id']}&measure=true").json()["rows"][0]
    assert 0 < measured["artifact_bytes"] < 0.5 * measured["dense_bytes"]
    assert measured["compression_ratio"] > 2 and measured["latency_us_b1"] > 0
    assert measured["torch_latency_us_b256"] > 0 and measured["ort_latency_us_b256"] > 0  # ONNX Runtime column
    every = client.get("/api/compare").json()["rows"]
    assert len(every) == len(client.get("/api/models").json()["models"])

    # measured latency now shows in the models table too
    listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert listed[child["id"]]["latency_us_b1"] == measured["latency_us_b1"]

    # sensitivity scan of the parent: one curve per layer, accuracy falls as a layer is pruned
    r = client.post("/api/jobs/sensitivity", json={"model": "base", "limit": 100})
    sens = wait_job(client, r.json()["id"])
    assert sens["status"] == "done", sens["error"]
    res = sens["result"]
    assert set(res["accuracy"]) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert len(res["accuracy"]["fc1.weight"]) == len(res["sparsities"])
    # on the validation split the parent held out (1/12 of its 2,000 images), never on test
    assert res["evaluated_on"]["split"] == "validation" and res["evaluated_on"]["count"] == 100
    assert res["evaluated_on"]["seen_in_training"] is False
    assert res["accuracy"]["fc3.weight"][-1] < res["dense_accuracy"]  # 99% of the output layer gone hurts

    # a parent with children is removed only with recursive=true
    r = client.delete("/api/models/base")
    assert r.status_code == 400 and "children" in r.json()["detail"]


def test_cancel_running_and_queued_jobs_stores_nothing(client: httpx.Client, server: LiveServer,
                                                       trained: dict[str, Any]) -> None:
    before = store_snapshot(server.root)
    slow = client.post("/api/jobs/train", json={"arch": "lenet-300-100", "epochs": 5, "train_limit": 30000,
                                                 "batch_size": 16}).json()
    queued = client.post("/api/jobs/train", json={"arch": "mlp", "epochs": 1, "train_limit": 500}).json()
    assert queued["status"] == "queued"
    deadline = time.time() + 60
    while client.get(f"/api/jobs/{slow['id']}").json()["event_count"] < 2:
        assert time.time() < deadline
        time.sleep(0.1)
    assert client.get(f"/api/jobs/{queued['id']}").json()["position"] == 2
    r = client.post(f"/api/jobs/{queued['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{slow['id']}/cancel").json()["cancel_requested"] is True
    job = wait_job(client, slow["id"])
    assert job["status"] == "cancelled" and "nothing was stored" in job["error"]
    assert wait_job(client, queued["id"])["started"] is None
    assert store_snapshot(server.root) == before


def test_delete_recursive(client: httpx.Client, server: LiveServer) -> None:
    # its own parent: deleting one the other tests use would make them depend on the order
    t = wait_job(client, client.post("/api/jobs/train", json={"arch": "mlp", "hidden": [8], "epochs": 1,
                                                               "train_limit": 300, "name": "doomed"}).json()["id"])
    assert t["status"] == "done", t["error"]
    parent = t["result"]["model"]
    r = client.post("/api/jobs/prune", json={"parent": "doomed", "sparsity": 0.5, "finetune_epochs": 0})
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    r = client.delete("/api/models/doomed?recursive=true")
    assert r.status_code == 200
    assert set(r.json()["removed"]) == {parent, job["result"]["model"]}
    assert client.get("/api/models/doomed").status_code == 404
    assert client.get(f"/api/models/{job['result']['model']}").status_code == 404
    assert not (server.root / "models" / f"{parent}.safetensors").exists()


# --- data pruning ------------------------------------------------------------------------


def test_select_on_mnist_trains_on_the_subset_and_on_everything(client: httpx.Client,
                                                                 trained: dict[str, Any]) -> None:
    names = [s["name"] for s in client.get("/api/strategies").json()["strategies"]]
    assert {"auto", "random", "cluster"} <= set(names)
    r = client.post("/api/jobs/select", json={"pool": 1000, "keep": 0.3, "strategy": "random", "epochs": 1})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    rep = job["result"]["report"]
    assert rep["original_count"] == 1000 and rep["kept_count"] == 300 and rep["strategy"] == "random"
    assert sum(s["kept"] for s in rep["strata"]) == 300 and len(rep["strata"]) == 10
    assert all(s["kept"] >= 1 for s in rep["strata"])  # never an empty class
    assert job["result"]["image_bytes_after"] < 0.35 * job["result"]["image_bytes_before"]
    t = job["result"]["training"]
    assert 0.3 < t["subset_accuracy"] <= 1 and 0.3 < t["full_accuracy"] <= 1
    assert t["subset_epochs"] == 3  # 8 steps on all 1,000 = 3 epochs of 300 (3 steps each)


def test_select_on_an_uploaded_npz_and_csv(client: httpx.Client, trained: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=300)
    buf = io.BytesIO()
    np.savez(buf, X=X, y=y)
    r = client.post("/api/jobs/select-upload", files={"file": ("table.npz", buf.getvalue())},
                    data={"strategy": "cluster", "keep": "0.2"})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    assert job["result"]["report"]["kept_count"] == 60 and len(job["result"]["kept_indices"]) == 60
    csv_text = "a,b,label\n" + "\n".join(f"{a:.3f},{b:.3f},{c}" for (a, b), c in zip(X[:, :2], y, strict=True))
    r = client.post("/api/jobs/select-upload", files={"file": ("table.csv", csv_text.encode())},
                    data={"target": "label", "strategy": "random", "keep": "0.5"})
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    assert job["result"]["report"]["kept_count"] == 150


# --- bad input ---------------------------------------------------------------------------


BAD_REQUESTS = [
    ("post", "/api/jobs/prune", {"json": {"parent": "base", "sparsity": 150}}, 400, "sparsity"),
    ("post", "/api/jobs/prune", {"json": {"parent": "base", "sparsity": -0.1}}, 400, "sparsity"),
    ("post", "/api/jobs/prune", {"json": {"parent": "base", "sparsity": 0.5, "scope": "galaxy"}}, 400, "scope"),
    ("post", "/api/jobs/prune", {"json": {"parent": "base", "sparsity": 0.5, "method": "structured",
                                          "schedule": "gradual"}}, 400, "oneshot"),
    ("post", "/api/jobs/prune", {"json": {"parent": "base", "sparsity": 0.5, "finetune_epochs": -1}}, 400,
     "epochs"),
    ("post", "/api/jobs/prune", {"json": {"parent": "nope", "sparsity": 0.5}}, 404, "no model"),
    ("post", "/api/jobs/prune", {"json": {"parent": "base", "sparsity": 0.5, "name": "base"}}, 400,
     "already exists"),
    ("post", "/api/jobs/train", {"json": {"name": ""}}, 400, "empty"),
    ("post", "/api/jobs/train", {"json": {"name": "   "}}, 400, "empty"),
    ("post", "/api/jobs/train", {"json": {"epochs": -1}}, 400, "epochs"),
    ("post", "/api/jobs/train", {"json": {"lr": 0}}, 400, "lr"),
    ("post", "/api/jobs/train", {"json": {"arch": "resnet"}}, 400, "architecture"),
    ("post", "/api/jobs/train", {"json": {"arch": "mlp", "hidden": [0]}}, 400, "hidden"),
    ("post", "/api/jobs/train", {"json": {"train_limit": 3}}, 400, "train-limit"),
    ("post", "/api/jobs/train", {"json": {"dataset": "imagenet"}}, 400, "dataset"),
    ("post", "/api/jobs/train", {"json": {"epochz": 1}}, 422, "unknown field"),
    ("post", "/api/jobs/train", {"json": {"epochs": "many"}}, 422, "epochs"),
    ("post", "/api/jobs/train", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     422, ""),
    ("post", "/api/jobs/sensitivity", {"json": {"model": "base", "limit": 5}}, 400, "limit"),
    ("post", "/api/jobs/sensitivity", {"json": {"model": "nope"}}, 404, "no model"),
    ("get", "/api/models/nope", {}, 404, "no model"),
    ("get", "/api/models/nope/inside", {}, 404, "no model"),
    ("get", "/api/models/base/mistakes?limit=0", {}, 422, "limit"),
    ("get", "/api/models/base/test-images/10000.png", {}, 404, "index"),
    ("get", "/api/compare?models=base,nope", {}, 404, "no model"),
    ("patch", "/api/models/base", {"json": {"name": ""}}, 400, "empty"),
    ("patch", "/api/models/nope", {"json": {"name": "x"}}, 404, "no model"),
    ("delete", "/api/models/nope", {}, 404, "no model"),
    ("get", "/api/jobs/job999", {}, 404, "no job"),
    ("post", "/api/jobs/job999/cancel", {}, 404, "no job"),
    ("post", "/api/predict", {"files": {"image": ("notes.txt", b"hello, not an image", "text/plain")}}, 400,
     "cannot read the upload as an image"),
    ("post", "/api/predict", {"files": {"image": ("empty.png", b"", "image/png")}}, 400, "empty"),
    ("post", "/api/predict", {"files": {"image": ("blank.png", png(np.full((50, 50), 255)), "image/png")}},
     400, "blank"),
    ("post", "/api/predict", {"files": {"image": ("d.png", png(np.eye(50) * 255), "image/png")},
                              "data": {"models": "nope"}}, 404, "no model"),
    ("post", "/api/predict", {"data": {"models": "base"}}, 422, "image"),
    ("post", "/api/jobs/select", {"json": {"keep": 0}}, 400, "keep"),
    ("post", "/api/jobs/select", {"json": {"keep": 1.5}}, 400, "keep"),
    ("post", "/api/jobs/select", {"json": {"strategy": "magic"}}, 400, "strategy"),
    ("post", "/api/jobs/select", {"json": {"pool": 50}}, 400, "pool"),
    ("post", "/api/jobs/select", {"json": {"min_keep": 0}}, 400, "min_keep"),
    ("post", "/api/jobs/select-upload", {"files": {"file": ("notes.txt", b"hello")}}, 400, ".npz"),
    ("post", "/api/jobs/select-upload", {"files": {"file": ("broken.npz", b"not a zip")}}, 400, "broken.npz"),
    ("post", "/api/jobs/select-upload", {"files": {"file": ("t.csv", b"a,b\n1,2\n3,4\n")},
                                         "data": {"target": "label"}}, 400, "column 'label'"),
    ("post", "/api/jobs/select-upload", {"files": {"file": ("t.csv", b"a,b\n1,2\n")},
                                         "data": {"keep": "2"}}, 400, "keep"),
    ("post", "/api/predict", {"files": {"image": ("big.png", b"\x89PNG" + os.urandom(6 * 1024 * 1024),
                                                  "image/png")}}, 413, "MB"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "fragment"), BAD_REQUESTS,
                         ids=[f"{m} {p} {s}" for m, p, _k, s, _f in BAD_REQUESTS])
def test_bad_input_is_a_4xx_with_a_message_and_changes_nothing(
        client: httpx.Client, server: LiveServer, trained: dict[str, Any],
        method: str, path: str, kwargs: dict[str, Any], status: int, fragment: str) -> None:
    before = store_snapshot(server.root)
    jobs_before = len(client.get("/api/jobs").json()["jobs"])
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    assert fragment.lower() in detail.lower(), detail
    assert store_snapshot(server.root) == before
    assert len(client.get("/api/jobs").json()["jobs"]) == jobs_before


def test_cross_origin_writes_are_refused(client: httpx.Client, server: LiveServer, trained: dict[str, Any]) -> None:
    before = store_snapshot(server.root)
    r = client.post("/api/jobs/train", json={"epochs": 1, "train_limit": 500},
                    headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = client.delete("/api/models/base", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert store_snapshot(server.root) == before
    # the page's own origin is fine, and so are reads from anywhere
    r = client.patch("/api/models/base", json={"name": "base"}, headers={"Origin": server.url})
    assert r.status_code == 400 and "already exists" in r.json()["detail"], r.text
    assert client.get("/api/models", headers={"Origin": "http://evil.example"}).status_code == 200


def test_oversized_upload_without_content_length_is_refused(client: httpx.Client, trained: dict[str, Any]) -> None:
    """A chunked upload (no Content-Length header) is capped while reading."""
    big = b"\x89PNG" + os.urandom(5 * 1024 * 1024 + 10)
    boundary = "plboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]
        yield tail

    r = client.post("/api/predict", content=chunks(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "MB" in r.json()["detail"]


def test_two_workers_train_at_once_and_leave_a_consistent_store(tmp_path: Path) -> None:
    """With workers=2 two jobs really run at the same time: both models are stored, files
    and rows match, SQLite's integrity check passes. A third job asking for a name a running
    job will store is refused up front."""
    import sqlite3

    root = tmp_path / "race-store"
    with LiveServer(root, workers=2) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        jobs = [c.post("/api/jobs/train", json={"arch": "mlp", "hidden": [32], "epochs": 1, "train_limit": 600,
                                                 "seed": i, "name": f"twin-{i}"}).json() for i in range(2)]
        assert all(j["position"] == 0 for j in jobs)  # neither waits for the other
        r = c.post("/api/jobs/train", json={"arch": "mlp", "epochs": 1, "train_limit": 600, "name": "twin-0"})
        # refused either because the job will store that name or (if it was quick) already has
        assert r.status_code == 400 and re.search("will already store|already exists", r.json()["detail"])
        done = [wait_job(c, j["id"]) for j in jobs]
        assert [j["status"] for j in done] == ["done", "done"], [j["error"] for j in done]
        # they overlapped in time
        assert done[0]["started"] < done[1]["finished"] and done[1]["started"] < done[0]["finished"]
        assert sorted(m["name"] for m in c.get("/api/models").json()["models"]) == ["twin-0", "twin-1"]
    ids, files = store_snapshot(root)
    assert files == sorted(f"{i}.safetensors" for i in ids) and len(ids) == 2
    con = sqlite3.connect(root / "registry.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


# --- the job queue on its own -----------------------------------------------------------


def test_job_queue_runs_one_job_at_a_time_and_reports_failures() -> None:
    from prunelab.errors import UserError
    from prunelab.progress import Event
    from prunelab.web.jobs import JobQueue

    q = JobQueue(workers=1)
    running: list[int] = []
    overlap: list[int] = []

    def work(cb: Any) -> dict[str, Any]:
        running.append(1)
        overlap.append(len(running))
        for step in range(3):
            cb(Event("batch", step=step + 1, total_steps=3, loss=1.0 / (step + 1)))
            time.sleep(0.02)
        running.pop()
        return {"ok": True}

    def bad(cb: Any) -> dict[str, Any]:
        raise UserError("wrong input")

    jobs = [q.submit("train", f"job {i}", {}, work) for i in range(4)] + [q.submit("train", "bad", {}, bad)]
    deadline = time.time() + 10
    while any(j.status not in ("done", "failed") for j in jobs):
        assert time.time() < deadline
        time.sleep(0.02)
    assert max(overlap) == 1
    assert [j.status for j in jobs] == ["done"] * 4 + ["failed"]
    assert jobs[-1].error == "wrong input" and jobs[0].progress == 1.0 and len(jobs[0].events) == 3
    q.shutdown()
    with pytest.raises(UserError):
        JobQueue(workers=0)


# --- the serve command ------------------------------------------------------------------------


def _start_serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "prunelab.cli", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


def test_serve_prints_its_url_and_serves_the_api(prunelab_home: Path) -> None:
    proc, line = _start_serve("--port", "0")
    try:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        url = m.group(0)
        deadline = time.time() + 20
        while True:
            try:
                r = httpx.get(url + "api/models", timeout=5)
                break
            except httpx.ConnectError:
                assert time.time() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and r.json() == {"models": []}
        assert httpx.get(url, timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_warns_on_a_public_host_and_rejects_a_bad_port(prunelab_home: Path) -> None:
    proc, line = _start_serve("--host", "0.0.0.0", "--port", "0")
    try:
        assert "running at http://0.0.0.0:" in line
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    assert "warning: binding 0.0.0.0" in err
    bad = subprocess.run([sys.executable, "-m", "prunelab.cli", "serve", "--port", "70000"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --port")

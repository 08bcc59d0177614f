"""Faults and concurrency on the store: kills mid-save, many writers at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from prunelab.doctor import check_store
from prunelab.store import Store
from tests.reliability import record, scale

_SAVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_store import _model
    from prunelab.store import Store
    store = Store()
    print("ready", flush=True)
    i = 0
    while True:
        store.save(_model(i % 5, metrics={{"test_accuracy": i}}))
        if i % 3 == 2:
            store.remove(store.list()[0]["id"], recursive=True)
        i += 1
""")


def test_random_kills_during_save_and_remove(prunelab_home):
    """SIGKILL a saving/removing process at random moments: the store stays readable,
    every row loads, doctor finds at most orphan files, and --repair leaves it healthy."""
    kills = int(scale(8, 60))
    rng = np.random.default_rng(1)
    code = _SAVER.format(tests=os.path.dirname(__file__))
    survived_rows = []
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.25)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = Store()
        rows = store.list()
        for rec in rows:
            store.load(rec["id"])  # raises if a row points at a missing or half file
        survived_rows.append(len(rows))
    report = check_store()
    assert all(p.startswith(("orphan weights file", "leftover temp file")) for p in report.problems), report.problems
    check_store(repair=True)
    assert check_store().healthy
    record("faults", what="SIGKILL during save/remove loop", kills=kills, orphans_found=len(report.problems),
           rows_after=survived_rows[-1], all_rows_loadable=True)


_WORKER = textwrap.dedent("""
    import io, json, sys, time
    from contextlib import redirect_stdout, redirect_stderr
    from prunelab.cli import main

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code or 0
        return code, out.getvalue(), err.getvalue()

    deadline = time.time() + float(sys.argv[1])
    stats = {"trained": 0, "removed": 0, "errors": []}
    kept = []
    while time.time() < deadline:
        code, out, err = cli("train", "--arch", "mlp", "--hidden", "8", "--epochs", "1",
                             "--train-limit", "300", "--json")
        if code:
            stats["errors"].append(err)
            continue
        model_id = json.loads(out)["id"]
        stats["trained"] += 1
        code, out, err = cli("show", model_id, "--json")
        if code:
            stats["errors"].append(err)
        if stats["trained"] % 2 == 0:
            code, out, err = cli("rm", model_id, "--json")
            if code:
                stats["errors"].append(err)
            else:
                stats["removed"] += 1
        else:
            kept.append(model_id)
    stats["kept"] = kept
    print(json.dumps(stats))
""")


def test_two_cli_processes_write_one_store(prunelab_home):
    """Two CLI processes train, show and rm in a loop on one store for a bounded time:
    no lost model, no orphan file, no `database is locked` reaching the user."""
    seconds = scale(12, 90)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(seconds)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=seconds + 300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    errors = [e for r in results for e in r["errors"]]
    assert errors == [], errors
    kept = sorted(m for r in results for m in r["kept"])
    store = Store()
    assert sorted(r["id"] for r in store.list()) == kept  # no lost model, nothing extra
    files = sorted(p.stem for p in (prunelab_home / "models").glob("*.safetensors"))
    assert files == kept  # no orphan file
    assert check_store().healthy
    record("concurrency", what="2 CLI processes: train/show/rm loop", seconds=seconds,
           trained=sum(r["trained"] for r in results), removed=sum(r["removed"] for r in results),
           errors=len(errors), lost=0, orphans=0)


def test_server_and_two_cli_processes_write_one_store(prunelab_home):
    """The explorer (train jobs + deletes over HTTP) and two CLI processes on one store at once."""
    import httpx

    seconds = scale(12, 90)
    from tests.server_process import ServerProcess

    with ServerProcess(prunelab_home) as server:
        url = server.url
        workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(seconds)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        api_errors: list[str] = []
        api_trained: list[str] = []
        api_deleted = 0
        deadline = time.time() + seconds
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.time() < deadline:
                r = client.post("/api/jobs/train", json={"arch": "mlp", "hidden": [8], "epochs": 1,
                                                         "train_limit": 300})
                if r.status_code != 202:
                    api_errors.append(r.text)
                    continue
                job_id = r.json()["id"]
                while True:
                    job = client.get(f"/api/jobs/{job_id}").json()
                    if job["status"] in ("done", "failed", "cancelled"):
                        break
                    time.sleep(0.1)
                if job["status"] != "done":
                    api_errors.append(json.dumps(job)[:500])
                    continue
                model_id = job["result"]["model"]
                if len(api_trained) % 2:
                    d = client.delete(f"/api/models/{model_id}")
                    if d.status_code != 200:
                        api_errors.append(d.text)
                    else:
                        api_deleted += 1
                else:
                    api_trained.append(model_id)
            results = []
            for p in workers:
                out, err = p.communicate(timeout=seconds + 300)
                assert p.returncode == 0, err
                results.append(json.loads(out.strip().splitlines()[-1]))
            listed = sorted(m["id"] for m in client.get("/api/models").json()["models"])
    cli_errors = [e for r in results for e in r["errors"]]
    assert api_errors == [] and cli_errors == [], (api_errors, cli_errors)
    expected = sorted([m for r in results for m in r["kept"]] + api_trained)
    assert sorted(r["id"] for r in Store().list()) == expected == listed
    assert sorted(p.stem for p in (prunelab_home / "models").glob("*.safetensors")) == expected
    assert check_store().healthy
    record("concurrency", what="server (HTTP train jobs + deletes) + 2 CLI processes", seconds=seconds,
           trained=sum(r["trained"] for r in results) + len(api_trained) + api_deleted,
           removed=sum(r["removed"] for r in results) + api_deleted, errors=0, lost=0, orphans=0)

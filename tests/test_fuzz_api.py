"""API fuzzing: schemathesis generates requests from the explorer's own OpenAPI
spec (/api/openapi.json) and sends them to a real `prunelab serve` subprocess
over loopback, on a store holding a trained and a pruned model.

Every response must be a non-5xx, carry the content type and body shape its
schema documents (for the status codes it documents), and the server must
still be alive and its store intact at the end. Endpoints that start long
jobs (train, prune) get only a few examples and every job they accept is
cancelled at once, so the run stays bounded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tests.reliability import record, scale
from tests.server_process import ServerProcess

EXAMPLES = int(scale(12, 120))  # per operation and generation mode
JOB_EXAMPLES = int(scale(3, 15))  # for operations that queue training or pruning
TIMEOUT = 60.0  # seconds per request; a hang is a failure too

# what every response must satisfy: no 5xx, a status code, content type and body its schema documents
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]


@pytest.fixture()
def seeded_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server on a store with a small trained model and a pruned child of it; one per test,
    since the fuzzer may delete them."""
    import prunelab
    from prunelab.store import Store

    home = tmp_path / "fuzz-home"
    store = Store(home)
    base = prunelab.train(arch="lenet-300-100", epochs=1, train_limit=600, store=store, name="base").model
    pruned = prunelab.prune(base.id, 0.8, finetune_epochs=0, store=store, name="pruned", threads=1).model
    with ServerProcess(home) as srv:
        yield srv, {"base": base.id, "pruned": pruned.id}


def starts_job(op: Any) -> bool:
    """POST /api/jobs/<kind> queues training, pruning, selection or a sensitivity scan."""
    return op.method.upper() == "POST" and op.path.startswith("/api/jobs/") and "{" not in op.path


def order(op: Any) -> tuple[int, str]:
    """DELETE last (it removes the seeded models the other operations use)."""
    return (1 if op.method.upper() == "DELETE" else 0, op.path)


def test_regression_the_schema_documents_what_the_server_sends(seeded_server: Any) -> None:
    """Found by the fuzzer: 422 bodies are {"detail": "<message>"} but the schema said a list;
    test images are PNG and job events an SSE stream but the schema said JSON; 400/404 answers
    were undocumented."""
    srv, ids = seeded_server
    spec = httpx.get(f"{srv.url}/api/openapi.json", timeout=30).json()
    assert spec["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]["type"] == "string"
    png = spec["paths"]["/api/models/{ref}/test-images/{index}.png"]["get"]["responses"]["200"]["content"]
    assert list(png) == ["image/png"]
    events = spec["paths"]["/api/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert {"400", "404"} <= set(op["responses"]), f"{method} {path}"

    bad = httpx.get(f"{srv.url}/api/compare", params={"measure": "0.5"}, timeout=30)
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], str) and "measure" in bad.json()["detail"]
    img = httpx.get(f"{srv.url}/api/models/{ids['base']}/test-images/0.png", timeout=30)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content.startswith(b"\x89PNG")


def fuzzer(op: Any, mode: GenerationMode, examples: int, send: Any) -> Any:
    """A hypothesis test sending `examples` generated requests for one operation."""

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode), use_real_id=st.booleans())
    def fuzz(case: Any, use_real_id: bool) -> None:
        send(op, case, use_real_id)

    return fuzz


def test_schemathesis_finds_no_server_error_and_no_schema_violation(seeded_server: Any) -> None:
    srv, ids = seeded_server
    schema = schemathesis.openapi.from_url(f"{srv.url}/api/openapi.json", timeout=30)
    operations = sorted((r.ok() for r in schema.get_all_operations()), key=order)
    assert len(operations) >= 10, [f"{o.method} {o.path}" for o in operations]

    session = requests.Session()
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    undocumented: Counter[str] = Counter()
    failures: list[str] = []
    jobs: list[str] = []

    def send(op: Any, case: Any, use_real_id: bool) -> None:
        label = f"{op.method.upper()} {op.path}"
        if use_real_id and case.path_parameters and "ref" in case.path_parameters:
            case.path_parameters["ref"] = ids["pruned"] if len(sent) % 2 else ids["base"]
        if use_real_id and case.path_parameters and "job_id" in case.path_parameters and jobs:
            case.path_parameters["job_id"] = jobs[len(sent) % len(jobs)]
        try:
            response = case.call(base_url=srv.url, session=session, timeout=TIMEOUT)
        except requests.RequestException as exc:
            failures.append(f"{label}: no response ({type(exc).__name__}: {exc})")
            return
        sent[label] += 1
        statuses[response.status_code] += 1
        if str(response.status_code) not in op.definition.raw.get("responses", {}):
            undocumented[f"{label} -> {response.status_code}"] += 1
        if starts_job(op) and response.status_code == 202:
            jobs.append(response.json()["id"])
            session.post(f"{srv.url}/api/jobs/{jobs[-1]}/cancel", timeout=TIMEOUT)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # keep going: report every failing operation
            if len(failures) < 40:
                failures.append(f"{label}: {str(exc)[:1500]}")

    started = time.time()
    for op in operations:
        examples = JOB_EXAMPLES if starts_job(op) else EXAMPLES
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzzer(op, mode, examples, send)()
            except Unsatisfiable:  # no parameters to get wrong (e.g. GET /api/health): nothing negative
                assert mode == GenerationMode.NEGATIVE, f"{op.method} {op.path}"
    seconds = time.time() - started

    # the server survived, answers and still lists its models (unless the fuzzer deleted them)
    assert srv.alive(), "".join(srv.stderr)[-3000:]
    health = httpx.get(f"{srv.url}/api/health", timeout=10)
    assert health.status_code == 200
    for job in jobs:  # every job the fuzzer queued ends, cancelled or failed with a one-line message
        deadline = time.time() + 60
        while (view := httpx.get(f"{srv.url}/api/jobs/{job}", timeout=10).json())["status"] in ("queued",
                                                                                                "running"):
            assert time.time() < deadline, f"job {job} still {view['status']}"
            time.sleep(0.2)
        if view["status"] != "done":  # done: it finished before its cancel arrived
            assert view["status"] in ("cancelled", "failed"), view
            assert view["error"] and "\n" not in view["error"], view
    assert "Traceback" not in "".join(srv.stderr), "".join(srv.stderr)[-3000:]

    total = sum(sent.values())
    record("fuzz_api", requests=total, operations=len(operations), operations_hit=len(sent),
           seconds=round(seconds, 1), statuses={str(k): v for k, v in sorted(statuses.items())},
           failures=len(failures), jobs_started=len(jobs), undocumented_statuses=dict(undocumented),
           examples_per_operation=EXAMPLES)
    print(f"\nfuzz: {total} requests over {len(sent)}/{len(operations)} operations in {seconds:.1f} s; "
          f"statuses {dict(statuses)}; {len(jobs)} jobs queued and cancelled")
    assert len(sent) == len(operations), f"operations never reached: {set(map(str, operations)) - set(sent)}"
    assert not failures, "\n\n".join(failures)


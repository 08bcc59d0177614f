"""Background jobs for the explorer: a bounded worker pool with progress and cancel.

Long work (training, pruning + fine-tuning, data selection) runs in a small
thread pool, one worker by default, so two jobs never write the store at the
same time and the page can say "queued" or "running". Each job keeps the
progress events it received (loss/accuracy points for the live curves), so a
page that reloads reconnects to the same job and redraws the whole curve.

Cancel sets a flag; the job's progress callback raises
`prunelab.progress.Cancelled` at the next event, the library stops and
stores nothing. A queued job that is cancelled never starts.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prunelab.errors import UserError
from prunelab.progress import Callback, Cancelled, Event

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")

# work(callback) -> result dict (e.g. {"model": id}); raises UserError on bad input
Work = Callable[[Callback], dict[str, Any]]


@dataclass
class Job:
    """One unit of background work and everything the page shows about it.

    events: progress points as dicts (kind, phase, epoch, step, total_steps,
    loss, accuracy, val_accuracy, message); seconds are wall-clock since
    the epoch (`time.time()`).
    """

    id: str
    kind: str
    title: str
    params: dict[str, Any]
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: float = 0.0
    phase: str = ""
    cancel_requested: bool = False

    def to_dict(self, with_events: bool = False) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("id", "kind", "title", "params", "status", "created", "started",
                                              "finished", "result", "error", "progress", "phase",
                                              "cancel_requested")}
        out["event_count"] = len(self.events)
        if with_events:
            out["events"] = list(self.events)
        return out

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, kind={self.kind!r}, status={self.status!r}, progress={self.progress:.2f})"


class JobQueue:
    """Runs submitted work on `workers` threads (default 1), first come first served."""

    def __init__(self, workers: int = 1, keep: int = 200) -> None:
        if workers < 1:
            raise UserError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.keep = keep  # finished jobs remembered, oldest forgotten first
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prunelab-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"JobQueue(workers={self.workers}, jobs={len(self._jobs)})"

    # --- submit / query --------------------------------------------------
    def submit(self, kind: str, title: str, params: dict[str, Any], work: Work) -> Job:
        with self._lock:
            job = Job(id=f"job{next(self._ids)}", kind=kind, title=title, params=params)
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def position(self, job: Job) -> int:
        """0 when running or finished, else how many jobs run or wait before it (1-based)."""
        if job.status != "queued":
            return 0
        with self._lock:
            ahead = [j for j in self._jobs.values()
                     if j.status in ("queued", "running") and j.created <= job.created and j is not job]
        return len(ahead) + 1

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._changed:
            if job.status in FINISHED:
                return job
            job.cancel_requested = True
            if job.status == "queued":
                self._finish(job, "cancelled", error="cancelled before it started")
            self._changed.notify_all()
        return job

    def wait(self, job: Job, seen: int, timeout: float) -> None:
        """Block until `job` has more than `seen` events, finishes, or `timeout` seconds pass."""
        with self._changed:
            self._changed.wait_for(lambda: len(job.events) > seen or job.status in FINISHED, timeout=timeout)

    def shutdown(self) -> None:
        """Cancel everything and stop the workers (the server is going down)."""
        for job in self.list():
            if job.status not in FINISHED:
                self.cancel(job.id)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- running -----------------------------------------------------------
    def _run(self, job: Job, work: Work) -> None:
        with self._changed:
            if job.status != "queued":  # cancelled while waiting
                return
            job.status = "running"
            job.started = time.time()
            self._changed.notify_all()
        try:
            result = work(self._callback(job))
        except Cancelled:
            self._finish_locked(job, "cancelled", error="cancelled; nothing was stored")
        except (UserError, ValueError) as exc:
            self._finish_locked(job, "failed", error=str(exc))
        except Exception as exc:  # a bug: keep the server alive and show it on the page
            traceback.print_exc()
            self._finish_locked(job, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            with self._changed:
                job.result = result
                job.progress = 1.0
                self._finish(job, "done")

    def _callback(self, job: Job) -> Callback:
        def on_event(event: Event) -> None:
            if job.cancel_requested:
                raise Cancelled(f"job {job.id} cancelled")
            point = {k: v for k, v in event.to_dict().items() if v is not None and v != "" and v != {}}
            point["t"] = time.time()
            with self._changed:
                job.events.append(point)
                job.phase = event.phase
                if event.total_steps:
                    job.progress = min(1.0, event.step / event.total_steps)
                self._changed.notify_all()

        return on_event

    def _finish_locked(self, job: Job, status: str, error: str | None = None) -> None:
        with self._changed:
            self._finish(job, status, error)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        """Caller holds the lock."""
        job.status = status
        job.error = error
        job.finished = time.time()
        self._changed.notify_all()

    def _forget_old(self) -> None:
        """Caller holds the lock: drop the oldest finished jobs beyond `keep`."""
        done = sorted((j for j in self._jobs.values() if j.status in FINISHED), key=lambda j: j.created)
        for job in done[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job.id]

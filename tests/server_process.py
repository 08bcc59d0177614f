"""A real `prunelab serve` in a subprocess, for the API fuzz and load tests.

The server runs exactly as a user starts it (`python -m prunelab.cli serve
--port 0`, loopback), on its own PRUNELAB_HOME, so its memory can be read from
/proc/<pid>/status and a crash shows up as a dead process, not a test error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx


class ServerProcess:
    """`with ServerProcess(home) as srv:` -> srv.url, srv.pid, srv.rss_kib(), srv.alive()."""

    def __init__(self, home: Path, workers: int = 1, threads: int = 1) -> None:
        self.home = home
        self.workers = workers
        self.threads = threads
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr: list[str] = []

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PRUNELAB_HOME": str(self.home), "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prunelab.cli", "serve", "--port", "0", "--workers", str(self.workers)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        # drain stderr in the background so a chatty server never blocks on a full pipe
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        line = self.proc.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        if not match:
            self.__exit__()
            raise RuntimeError(f"the server did not start: {line!r} {''.join(self.stderr)[-2000:]}")
        self.url = match.group(0)
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or not self.alive():
                self.__exit__()
                raise RuntimeError(f"the server never answered /api/health: {''.join(self.stderr)[-2000:]}")
            time.sleep(0.1)
        return self

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.stderr.append(line)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident memory of the server process (VmRSS, KiB)."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown, like Ctrl+C
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

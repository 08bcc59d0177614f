"""Shared fixtures. Every test runs with PRUNELAB_HOME in a temporary folder;
the MNIST cache is shared across the session so it is converted once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prunelab.data.datasets import Dataset, load_dataset, stratified_subset

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("prunelab-cache")
    os.environ["PRUNELAB_CACHE"] = str(cache)


@pytest.fixture(autouse=True)
def prunelab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty PRUNELAB_HOME for each test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PRUNELAB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The full embedded MNIST (60k train, 10k test); slice it in tests."""
    return load_dataset("mnist")


@pytest.fixture(scope="session")
def mnist_small(mnist: Dataset) -> Dataset:
    """3,000 stratified training images and 1,000 test images of real MNIST."""
    tr = stratified_subset(mnist.y_train, 3000, seed=0)
    te = stratified_subset(mnist.y_test, 1000, seed=0)
    return Dataset(name="mnist-small", x_train=mnist.x_train[tr], y_train=mnist.y_train[tr],
                   x_test=mnist.x_test[te], y_test=mnist.y_test[te])


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `prunelab ARGS` in a real subprocess with the current PRUNELAB_HOME."""
    proc = subprocess.run([sys.executable, "-m", "prunelab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"prunelab {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def run_cli_inproc(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`prunelab ARGS` through the same `main()` in this process (no interpreter or torch
    start-up per call; for the many fast cases): exit code, stdout and stderr as a subprocess's."""
    from prunelab.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def assert_user_error(proc: subprocess.CompletedProcess[str], fragment: str = "") -> None:
    """Exit 2, exactly one `error:` line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]


def store_snapshot(home: Path) -> tuple[list[str], list[str]]:
    """(model ids in the registry, files under models/) to check nothing changed."""
    import sqlite3

    db = home / "registry.db"
    ids: list[str] = []
    if db.exists():
        con = sqlite3.connect(db)
        ids = sorted(r[0] for r in con.execute("SELECT id FROM models"))
        con.close()
    files = sorted(p.name for p in (home / "models").glob("*")) if (home / "models").exists() else []
    return ids, files


__all__ = ["REPO", "assert_user_error", "np", "run_cli", "store_snapshot"]

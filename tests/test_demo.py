"""`make demo` (python -m prunelab.demo) runs in its own temporary store and leaves the
user's store alone, even a model with the very name the demo uses."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import prunelab
from prunelab.demo import NAME
from prunelab.store import Store
from tests.conftest import store_snapshot


def test_demo_uses_a_temporary_store_and_never_touches_the_users_models(prunelab_home: Path) -> None:
    mine = prunelab.train(arch="mlp", hidden=(8,), epochs=1, train_limit=200, threads=1, store=Store(),
                          name=NAME).model
    before = store_snapshot(prunelab_home)
    proc = subprocess.run([sys.executable, "-m", "prunelab.demo", "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    # the user's store: same rows, same files, and their model (same name as the demo's) intact
    assert store_snapshot(prunelab_home) == before
    kept = Store().load(NAME)
    assert kept.id == mine.id and kept.spec.to_dict() == mine.spec.to_dict()
    assert all(np.array_equal(kept.weights[k], mine.weights[k]) for k in mine.weights)
    # the demo's own store: a fresh temporary folder, printed, holding the demo's model
    match = re.search(r"new temporary store, (\S+): your own models are not touched", proc.stdout)
    assert match, proc.stdout
    demo_home = Path(match.group(1))
    try:
        assert demo_home.parent == Path(tempfile.gettempdir()) and demo_home != prunelab_home
        demo_models = Store(demo_home).list()
        assert [m["name"] for m in demo_models] == [NAME] and demo_models[0]["id"] != mine.id
        assert f"$ prunelab eval {NAME}" in proc.stdout and "test accuracy" in proc.stdout.lower()
        assert f"PRUNELAB_HOME={demo_home} prunelab serve" in proc.stdout
    finally:
        shutil.rmtree(demo_home, ignore_errors=True)

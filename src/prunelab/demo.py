"""A short headless tour: train a small model, evaluate it, list the registry.

`make demo` (or `python -m prunelab.demo [--quick]`). It goes through the same
CLI a user types, so what it prints is what they will see. It works in a
fresh temporary store (its folder is printed and kept, to explore afterwards),
so it never reads, changes or deletes the user's own models; only the MNIST
cache, which can be rebuilt at any time, is shared with the user's usual one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prunelab.cli import main

NAME = "demo-dense"


def steps(quick: bool = False) -> list[str]:
    """The CLI commands of the tour; `quick`: 1,000 training images instead of 10,000 (for tests)."""
    limit = 1000 if quick else 10000
    return [f"train --arch lenet-300-100 --epochs 1 --train-limit {limit} --name {NAME}", f"eval {NAME}", "models"]


def user_cache() -> str:
    """The cache folder the user's own runs use (see `prunelab.home.cache_dir`), without creating it."""
    env = os.environ.get("PRUNELAB_CACHE")
    if env:
        return env
    return str(Path(os.environ.get("PRUNELAB_HOME") or Path.home() / ".prunelab").expanduser() / "cache")


def run(argv: Sequence[str] | None = None) -> Path:
    """Run the tour in a new temporary store; returns that store's folder."""
    parser = argparse.ArgumentParser(prog="python -m prunelab.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train on 1,000 images instead of 10,000")
    args = parser.parse_args(argv)
    saved = {k: os.environ.get(k) for k in ("PRUNELAB_HOME", "PRUNELAB_CACHE")}
    cache = user_cache()
    store = Path(tempfile.mkdtemp(prefix="prunelab-demo-"))
    limit = "1,000" if args.quick else "10,000"
    print(f"prunelab headless demo: trains a small LeNet-300-100 on {limit} MNIST images, evaluates it and "
          f"lists the registry.\nIt works in a new temporary store, {store}: your own models are not touched.\n")
    os.environ["PRUNELAB_HOME"], os.environ["PRUNELAB_CACHE"] = str(store), cache
    try:
        for step in steps(args.quick):
            print(f"$ prunelab {step}")
            try:
                main(shlex.split(step))
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise
            print()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    print(f"The demo's store is kept in {store}: explore it with `PRUNELAB_HOME={store} prunelab serve`, "
          f"remove it with `rm -r {store}`.")
    return store


if __name__ == "__main__":
    run()

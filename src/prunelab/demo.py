"""A short headless tour: train a small model, evaluate it, list the registry.

`make demo` (or `python -m prunelab.demo`). It goes through the same CLI a
user types, so what it prints is what they will see.
"""

from __future__ import annotations

import shlex

from prunelab.cli import main

STEPS = [
    "train --arch lenet-300-100 --epochs 1 --train-limit 10000 --name demo-dense",
    "eval demo-dense",
    "models",
]


def run() -> None:
    print("prunelab headless demo: trains a small LeNet-300-100 on 10,000 MNIST images, "
          "evaluates it and lists the registry.\n")
    from prunelab.store import Store

    store = Store()
    if any(r["name"] == "demo-dense" for r in store.list()):
        store.remove("demo-dense", recursive=True)
    for step in STEPS:
        print(f"$ prunelab {step}")
        try:
            main(shlex.split(step))
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        print()


if __name__ == "__main__":
    run()

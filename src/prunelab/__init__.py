"""prunelab: make neural networks and training sets smaller, and measure it.

Top-level names load lazily so that `import prunelab.sparse` (the torch-free
runtime) never imports torch:

    import prunelab
    result = prunelab.train(arch="lenet-300-100", epochs=8)   # TrainResult
    child = prunelab.prune(result.model, sparsity=0.9)        # PruneResult
    sel = prunelab.select(X, y, keep=0.3)                     # Selection
    pruning = prunelab.prune_module(my_net, 0.9)              # Pruning, any torch module
    prunelab.export_onnx(my_net, example_batch, "net.onnx")   # OnnxExport
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that provides it (a callable module where the name is a verb)
_LAZY = {
    "train": "prunelab.train",
    "prune": "prunelab.prune",
    "select": "prunelab.select",
    "sparse": "prunelab.sparse",
    "models": "prunelab.models",
    "data": "prunelab.data",
    "store": "prunelab.store",
    "validate": "prunelab.validate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    if name == "export":
        return importlib.import_module("prunelab.sparse.export").export
    if name == "prune_module":
        return importlib.import_module("prunelab.prune.engine").prune_module
    if name == "export_onnx":
        return importlib.import_module("prunelab.onnx_export").export_onnx
    if name == "Store":
        return importlib.import_module("prunelab.store").Store
    raise AttributeError(f"module 'prunelab' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY, "export", "prune_module", "export_onnx", "Store"]

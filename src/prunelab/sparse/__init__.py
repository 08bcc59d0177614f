"""Compact artifacts and the torch-free CPU runtime (numpy + scipy; numba when installed).

    import prunelab
    prunelab.export(model, "m.plsa", precision="int8")   # ExportResult
    rt = prunelab.sparse.load("m.plsa", threads=1)        # Runtime
    rt.predict(x), rt.predict_proba(x)
    prunelab.sparse.export_module(net, torch.zeros(1, 1, 28, 28), "net.plsa")   # any nn.Module of runtime ops

Nothing here imports torch; `tests/test_sparse_torchfree.py` checks it.
"""

from prunelab.sparse.export import ExportResult, export, export_module
from prunelab.sparse.format import (
    ENCODINGS,
    Artifact,
    Tensor,
    choose_encoding,
    encoded_sizes,
    list_encodings,
    read_artifact,
    write_artifact,
)
from prunelab.sparse.kernels import BACKENDS, list_backends
from prunelab.sparse.quant import PRECISIONS, list_precisions
from prunelab.sparse.runtime import KERNELS, Runtime, list_kernels, load

__all__ = [
    "BACKENDS", "ENCODINGS", "KERNELS", "PRECISIONS", "Artifact", "ExportResult", "Runtime", "Tensor",
    "choose_encoding", "encoded_sizes", "export", "export_module", "list_backends", "list_encodings", "list_kernels",
    "list_precisions", "load", "read_artifact", "write_artifact",
]

"""Kernel back-ends of the runtime: `numba` (compiled, optional) and `numpy`
(scipy's C CSR kernel + BLAS), picked by name.

    list_backends()            # ['auto', 'numba', 'numpy']
    resolve_backend("auto")    # 'numba' when numba is installed, else 'numpy'

Both compute y = W @ x + bias (ReLU'd on request) for a CSR matrix W and a
feature-major x (cols, m), and turn an input batch (n, F) into that layout;
`tests/test_sparse_runtime.py` runs every check on both.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from prunelab.errors import UserError

try:  # the C kernels behind scipy.sparse's matmul, without its per-call Python overhead
    from scipy.sparse import _sparsetools as _st

    HAVE_SPARSETOOLS = hasattr(_st, "csr_matvec") and hasattr(_st, "csr_matvecs")
except ImportError:  # pragma: no cover - older/newer scipy layouts
    _st = None
    HAVE_SPARSETOOLS = False

BACKENDS = ("auto", "numba", "numpy")


def list_backends() -> list[str]:
    return list(BACKENDS)


@lru_cache(maxsize=1)
def numba_available() -> bool:
    try:
        from prunelab.sparse import compiled

        compiled.warm_up()  # compile or load from numba's cache once per process
    except ImportError:
        return False
    except Exception as exc:  # noqa: BLE001 - a numba that cannot compile here must not break loading
        import warnings

        warnings.warn(f"numba is installed but its kernels failed to compile ({exc!r:.200}); "
                      "using the numpy back-end", RuntimeWarning, stacklevel=2)
        return False
    return True


def resolve_backend(backend: str) -> str:
    """'numba' or 'numpy' for a user's choice ('auto' prefers numba when installed)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown kernel back-end {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        return "numba" if numba_available() else "numpy"
    if backend == "numba" and not numba_available():
        raise UserError("the numba back-end needs numba: pip install 'prunelab[fast]' "
                        "(or use backend='numpy')")
    return backend


def compiled_module() -> Any:
    from prunelab.sparse import compiled

    return compiled


# --- the numpy/scipy back-end ---------------------------------------------------------


def scipy_matmat(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bias: np.ndarray,
                 x: np.ndarray, y: np.ndarray, relu: bool) -> None:
    """y (rows, m) = W @ x + bias with scipy's C kernel (x (cols, m) C-contiguous)."""
    rows, m = y.shape
    y[:] = bias[:, None]
    if HAVE_SPARSETOOLS:
        _st.csr_matvecs(rows, x.shape[0], m, indptr, indices, data, x.reshape(-1), y.reshape(-1))
    else:  # pragma: no cover
        import scipy.sparse as sp

        y += sp.csr_matrix((data, indices, indptr), shape=(rows, x.shape[0])) @ x
    if relu:
        np.maximum(y, 0, out=y)


def scipy_matvec(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bias: np.ndarray,
                 x: np.ndarray) -> np.ndarray:
    """W @ x + bias for one sample x (cols,) -> a new (rows,) array."""
    y = bias.copy()
    if HAVE_SPARSETOOLS:
        _st.csr_matvec(y.size, x.size, indptr, indices, data, x, y)
    else:  # pragma: no cover
        import scipy.sparse as sp

        y += sp.csr_matrix((data, indices, indptr), shape=(y.size, x.size)) @ x
    return y


def numpy_feature_major(x: np.ndarray, scale: float) -> np.ndarray:
    """(n, F) float32/uint8 -> (F, n) float32 C-contiguous, times `scale` (one pass)."""
    out = np.empty((x.shape[1], x.shape[0]), np.float32)
    if scale == 1.0:
        out[:] = x.T
    else:
        np.multiply(x.T, np.float32(scale), out=out, casting="unsafe")
    return out

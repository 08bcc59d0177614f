"""`import_pt2`: store a `torch.export` program as a model, and run it on a data set.

    model, test = import_pt2("net.pt2", store=Store(), name="mine", dataset="mnist")
    evaluate_exported(model, load_dataset("npz:digits.npz"))    # EvalResult on the test split

The program is read without unpickling anything (`prunelab.models.exported`),
checked against the data set's shapes, evaluated on its test split and stored
as (graph JSON, safetensors).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from prunelab.data.datasets import Dataset, load_dataset
from prunelab.errors import UserError
from prunelab.models.exported import ExportedModel, ExportedSpec, read_pt2
from prunelab.train import EvalResult, evaluate, to_input, versions

if TYPE_CHECKING:
    from prunelab.store import Store


def check_fit(spec: ExportedSpec, ds: Dataset) -> None:
    """Raise `UserError` unless the data set's images and labels fit the program:
    the same sample shape (or the same number of values, for a program taking
    flat vectors) and no label beyond the program's classes."""
    sample, want = tuple(ds.input_shape), tuple(spec.input_shape)
    flat_ok = len(want) == 1 and int(np.prod(sample)) == want[0]
    if sample != want and not flat_ok:
        raise UserError(f"the model takes samples shaped {want} but data set {ds.name} has {sample}; "
                        "use a data set whose images fit (--dataset idx:DIR or npz:FILE), or export the model "
                        "for these images")
    if ds.classes > spec.classes:
        raise UserError(f"data set {ds.name} has {ds.classes} classes but the model scores {spec.classes}; "
                        f"use a data set with labels 0..{spec.classes - 1}")


def model_input(x: np.ndarray, spec: ExportedSpec) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 (N, *input_shape) in [0, 1]."""
    return to_input(x).reshape(len(x), *spec.input_shape)


def evaluate_exported(model: ExportedModel, ds: Dataset, module: torch.nn.Module | None = None) -> EvalResult:
    """Accuracy, loss and confusion on `ds`'s test split (shapes checked first)."""
    check_fit(model.spec, ds)
    net = module if module is not None else model.to_torch()
    return evaluate(net, model_input(ds.x_test, model.spec), torch.from_numpy(ds.y_test), classes=model.spec.classes)


def dataset_of(model: ExportedModel, dataset: str | Dataset | None) -> Dataset:
    """`dataset` (a name or a Dataset), else the one the model was imported or fine-tuned with."""
    if isinstance(dataset, Dataset):
        return dataset
    name = dataset or (model.meta.get("config") or {}).get("dataset") or "mnist"
    return load_dataset(name)


def import_pt2(path: str | Path, *, store: Store | None = None, name: str | None = None,
               dataset: str | Dataset = "mnist") -> tuple[ExportedModel, EvalResult]:
    """Read `path` (a .pt2 from torch.export.save), check it against `dataset`,
    evaluate it on the test split and (with `store`) store it. Returns the
    model (with its registry record in `meta` when stored) and the evaluation."""
    if store is not None and name is not None:
        store.check_new_name(name)
    model = read_pt2(path)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    test = evaluate_exported(model, ds)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    model.meta = {
        "name": name, "kind": "imported",
        "metrics": {"test_accuracy": test.accuracy, "test_loss": test.loss, "confusion": test.confusion},
        "history": [],
        "config": {"dataset": ds.name, "source": Path(path).name, "source_sha256": digest},
        "dataset": ds.describe(), "versions": versions(), "seed": None,
    }
    if store is not None:
        model = store.save_exported(model)
    return model, test

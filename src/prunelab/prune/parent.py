"""The parent of a pruning run: found by id/name, its training config, its
own training data, its weights at initialisation.

`prunelab.prune` and `prunelab.prune.sensitivity` both start here, so
pruning's choices use the parent's own split and never its test images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from prunelab.data.datasets import DEFAULT_VAL_FRACTION, Dataset, limit_train, load_dataset
from prunelab.errors import UserError
from prunelab.models.builder import build, get_weights
from prunelab.models.model import Model

if TYPE_CHECKING:
    from prunelab.store import Store


def resolve_model(model: Model | str, store: Store | None) -> tuple[Model, Store | None]:
    """(the Model, the store it came from): `model` itself, or the id/name of
    one in `store` (default store: $PRUNELAB_HOME)."""
    if isinstance(model, Model):
        return model, store
    if not isinstance(model, str) or not model.strip():
        raise UserError(f"model must be a Model or a model id/name, got {model!r}")
    from prunelab.store import Store  # the store pulls in sqlite and safetensors: only when named by id

    store = store if store is not None else Store()
    return store.load(model.strip()), store


def train_config(model: Model) -> dict[str, Any]:
    """The training config of the model's trained ancestor (copied down the lineage)."""
    cfg = model.meta.get("config") or {}
    if "train" in cfg:
        return dict(cfg["train"])
    return dict(cfg) if "arch" in cfg else {}


def training_data(parent: Model, dataset: Dataset | None) -> tuple[Dataset, dict[str, Any]]:
    """The parent's own training slice (same dataset, train_limit, val split and seed).

    The validation split is the parent's own when it was trained with one (it
    never saw those images); a parent trained on everything (val_fraction 0)
    gets the default share carved out here, so that pruning's choices and
    curves still use data the fine-tune does not train on.
    """
    cfg = parent.meta.get("config") or {}
    info = {"dataset": cfg.get("dataset", "mnist"), "train_limit": cfg.get("train_limit"),
            "val_fraction": cfg.get("val_fraction", 0.0) or DEFAULT_VAL_FRACTION,
            "data_seed": cfg.get("data_seed", cfg.get("seed", 0)),
            "val_seen_by_parent": not cfg.get("val_fraction")}
    base = dataset if dataset is not None else load_dataset(info["dataset"])
    if tuple(base.input_shape) != tuple(parent.spec.input_shape):
        raise UserError(f"dataset {base.name!r} has inputs {base.input_shape} but the model expects "
                        f"{tuple(parent.spec.input_shape)}; pick the dataset it was trained on")
    return limit_train(base, info["train_limit"], info["val_fraction"], info["data_seed"]), info


def initial_weights(parent: Model, tcfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The parent's weights at initialisation, rebuilt from its training seed
    (`train` seeds torch with config.seed right before building the network)."""
    if "seed" not in tcfg:
        raise UserError("lottery needs the parent's training config (its seed); prune a model trained by prunelab")
    torch.manual_seed(int(tcfg["seed"]))
    init = get_weights(build(parent.spec))
    for k, v in parent.weights.items():
        if k not in init or init[k].shape != v.shape:
            raise UserError("lottery rewinding needs the parent's original layer sizes; "
                            "it cannot follow a structured pruning step")
    return init

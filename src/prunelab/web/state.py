"""Server-side state of one explorer app: the store, the job queue and caches.

Caches hold only derived, immutable things (a model id's weights never
change), so they never go stale: datasets by name, torch modules by model
id, and each model's predictions on its test split.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from prunelab.data.datasets import Dataset, load_dataset
from prunelab.errors import UserError
from prunelab.models.exported import is_exported_record
from prunelab.models.model import Model
from prunelab.store import Store
from prunelab.web.jobs import JobQueue


class _Lru:
    """A tiny thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class WebState:
    """Everything the routes share. `store_root` None means `$PRUNELAB_HOME`."""

    def __init__(self, store_root: str | Path | None = None, workers: int = 1) -> None:
        self.store = Store(store_root)
        self.jobs = JobQueue(workers=workers)
        self._datasets: dict[str, Dataset] = {}
        self._data_lock = threading.Lock()
        self._modules = _Lru(16)
        self._test_preds = _Lru(8)
        self.measurements = _Lru(64)  # model id -> sparse.compare row (bytes, latency)

    def __repr__(self) -> str:
        return f"WebState(store={self.store!r}, jobs={self.jobs!r})"

    def dataset(self, name: str = "mnist") -> Dataset:
        """A dataset by name, loaded once per server."""
        with self._data_lock:
            if name not in self._datasets:
                self._datasets[name] = load_dataset(name)
            return self._datasets[name]

    def model_dataset(self, rec: dict[str, Any]) -> Dataset:
        """The dataset a stored model was trained on (its recorded name, else its config's)."""
        for name in (rec.get("dataset", {}).get("name"), rec.get("config", {}).get("dataset"), "mnist"):
            if isinstance(name, str) and (name == "mnist" or name.startswith("idx:")):
                return self.dataset(name)
        raise UserError(f"model {rec['id']} was trained on data prunelab cannot reload")

    def module(self, model_id: str) -> Any:
        """The torch module of a stored model, in eval mode (cached by id)."""
        module = self._modules.get(model_id)
        if module is None:
            rec = self.store.get(model_id)
            model = self.store.load_exported(model_id) if is_exported_record(rec) else self.store.load(model_id)
            module = model.to_torch().eval()
            self._modules.put(model_id, module)
        return module

    def load(self, ref: str) -> Model:
        return self.store.load(ref)

    def test_predictions(self, model_id: str) -> tuple[np.ndarray, np.ndarray, Dataset]:
        """(predicted class (N,), probability of that class (N,), dataset) on the test split."""
        cached = self._test_preds.get(model_id)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        import torch

        from prunelab.train import to_input

        rec = self.store.get(model_id)
        ds = self.model_dataset(rec)
        module = self.module(model_id)
        preds, confs = [], []
        with torch.no_grad():
            for i in range(0, len(ds.y_test), 1000):
                p = torch.softmax(module(to_input(ds.x_test[i : i + 1000])), dim=1)
                c, k = p.max(dim=1)
                preds.append(k.numpy())
                confs.append(c.numpy())
        out = (np.concatenate(preds), np.concatenate(confs), ds)
        self._test_preds.put(model_id, out)
        return out

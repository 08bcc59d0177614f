"""The model registry: SQLite (WAL) metadata + one safetensors file per model.

Layout under `$PRUNELAB_HOME`:
    registry.db            one row per model (spec, metrics, lineage, config, ...)
    models/<id>.safetensors weights ('fc1.weight', ...) and masks ('mask:fc1.weight', uint8)

Save order makes every write atomic: the weights file is written to a temp
file and renamed into place first, then the row is inserted in one
transaction. A process killed before the commit leaves at most an orphan
file with no row (invisible, cleaned by `prunelab doctor`), never a row
pointing at half a file. Removal deletes the row first, then the file.
"""

from __future__ import annotations

import builtins
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from prunelab.atomic import write_atomic
from prunelab.errors import UserError
from prunelab.home import home
from prunelab.models.exported import ExportedModel, is_exported_record, load_stored
from prunelab.models.model import Model
from prunelab.models.spec import ModelSpec

SCHEMA_VERSION = 1
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/1/i/l/o: easy to type and read
_MASK_PREFIX = "mask:"
_COLUMNS = ("id", "name", "created", "parent", "kind", "arch", "spec", "metrics", "history",
            "sparsity", "params", "nonzero", "dataset", "config", "versions", "seed", "file")
_JSON_COLUMNS = ("spec", "metrics", "history", "dataset", "config", "versions")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    created REAL NOT NULL,
    parent TEXT REFERENCES models(id),
    kind TEXT NOT NULL,
    arch TEXT NOT NULL,
    spec TEXT NOT NULL,
    metrics TEXT NOT NULL,
    history TEXT NOT NULL,
    sparsity REAL NOT NULL,
    params INTEGER NOT NULL,
    nonzero INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    versions TEXT NOT NULL,
    seed INTEGER,
    file TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS models_parent ON models(parent);
"""


def new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


def check_name(name: str) -> str:
    """A model name: non-empty, printable, at most 64 characters, not an id lookalike clash."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("model name must not be empty")
    name = name.strip()
    if len(name) > 64 or not name.isprintable():
        raise UserError("model name must be at most 64 printable characters")
    return name


class Store:
    """Registry of models under `root` (default `$PRUNELAB_HOME`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else home()
        self.models_dir = self.root / "models"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "registry.db"
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UserError(f"the registry {self.db_path} was written by a newer prunelab (schema {version}, "
                                f"this one reads {SCHEMA_VERSION}); upgrade prunelab or use another PRUNELAB_HOME")
            if version < SCHEMA_VERSION:
                # one transaction: a process killed here leaves the old schema intact
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the registry {self.db_path}: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            yield db
        except (sqlite3.IntegrityError, sqlite3.OperationalError):
            raise  # constraint violations and busy/locked errors are handled by the callers
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise UserError(
                f"the registry {self.db_path} is damaged ({exc}); run `prunelab doctor` "
                "or move the file away to start a new registry"
            ) from None
        finally:
            db.close()

    # --- lookup --------------------------------------------------------
    def _row(self, ref: str) -> dict[str, Any]:
        with self._connect() as db:
            row = db.execute("SELECT * FROM models WHERE id = ?", (ref,)).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM models WHERE name = ?", (ref,)).fetchone()
        if row is None:
            raise UserError(f"no model {ref!r} in {self.root}; `prunelab models` lists them")
        return _decode(row)

    def resolve(self, ref: str) -> str:
        """Id of the model with id or name `ref`."""
        return str(self._row(ref)["id"])

    def get(self, ref: str) -> dict[str, Any]:
        """The registry record of a model (no weights)."""
        return self._row(ref)

    def list(self) -> builtins.list[dict[str, Any]]:
        """All records, oldest first, without the bulky history/confusion fields."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM models ORDER BY created, id").fetchall()
        out = []
        for row in rows:
            rec = _decode(row)
            rec.pop("history", None)
            rec["metrics"] = {k: v for k, v in rec["metrics"].items() if k != "confusion"}
            out.append(rec)
        return out

    def children(self, ref: str) -> builtins.list[str]:
        model_id = self.resolve(ref)
        with self._connect() as db:
            return [r["id"] for r in db.execute("SELECT id FROM models WHERE parent = ?", (model_id,))]

    def load(self, ref: str) -> Model:
        """The model with its weights and masks, rebuilt from its stored spec."""
        rec = self._row(ref)
        if is_exported_record(rec):  # read with load_exported (models/exported.py)
            raise UserError(f"model {rec['id']} is an imported torch.export program; prune, eval, compare, "
                            "export and the explorer's model list work on it, this command does not yet")
        path = self.models_dir / rec["file"]
        if not path.is_file():
            raise UserError(f"weights file of model {rec['id']} is missing ({path}); "
                            f"remove the entry with `prunelab rm {rec['id']}`")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"weights file {path} of model {rec['id']} is damaged ({exc}); "
                            f"remove the entry with `prunelab rm {rec['id']}`") from None
        weights = {k: v for k, v in tensors.items() if not k.startswith(_MASK_PREFIX)}
        masks = {k[len(_MASK_PREFIX):]: v.astype(bool) for k, v in tensors.items() if k.startswith(_MASK_PREFIX)}
        spec = ModelSpec.from_dict(rec["spec"])
        return Model(spec=spec, weights=weights, masks=masks, meta=rec)

    def load_exported(self, ref: str) -> ExportedModel:
        """An imported torch.export model (graph JSON + safetensors), see `prunelab.models.exported`."""
        rec = self._row(ref)
        if not is_exported_record(rec):
            raise UserError(f"model {rec['id']} is not an imported torch.export program")
        path = self.models_dir / rec["file"]
        if not path.is_file():
            raise UserError(f"weights file of model {rec['id']} is missing ({path}); "
                            f"remove the entry with `prunelab rm {rec['id']}`")
        return load_stored(rec, path)

    def weights_path(self, ref: str) -> Path:
        return self.models_dir / self._row(ref)["file"]

    # --- writes --------------------------------------------------------
    def check_new_name(self, name: str) -> str:
        name = check_name(name)
        with self._connect() as db:
            if db.execute("SELECT 1 FROM models WHERE name = ? OR id = ?", (name, name)).fetchone():
                raise UserError(f"a model named {name!r} already exists; pick another --name")
        return name

    def save(self, model: Model) -> Model:
        """Store `model` as a new entry; returns it with `meta` filled in (id, created, ...)."""
        return self._save(model)  # type: ignore[return-value]

    def save_exported(self, model: ExportedModel) -> ExportedModel:
        """Store an imported torch.export model: graph JSON in the file's header, tensors as safetensors."""
        return self._save(model)  # type: ignore[return-value]

    def _save(self, model: Model | ExportedModel) -> Model | ExportedModel:
        meta = dict(model.meta)
        name = meta.get("name")
        if name is not None:
            name = self.check_new_name(name)
        parent = meta.get("parent")
        if parent is not None:
            parent = self.resolve(parent)
        header: dict[str, str] | None = None
        if isinstance(model, ExportedModel):  # keeps dtypes (int64 BatchNorm counters) and the graph
            tensors, header = model.payload()
        else:
            tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in model.weights.items()}
            tensors.update({_MASK_PREFIX + k: np.ascontiguousarray(v, dtype=np.uint8)
                            for k, v in model.masks.items()})
        for _ in range(10):
            model_id = new_id()
            file = f"{model_id}.safetensors"
            if not (self.models_dir / file).exists():
                break
        write_atomic(self.models_dir / file, lambda tmp: save_file(tensors, tmp, metadata=header))
        model.meta = meta  # so sparsity()/nonzero() below see the new weights
        rec = {
            "id": model_id, "name": name, "created": time.time(), "parent": parent,
            "kind": meta.get("kind", "trained"), "arch": model.spec.arch, "spec": model.spec.to_dict(),
            "metrics": meta.get("metrics", {}), "history": meta.get("history", []),
            "sparsity": model.sparsity(), "params": model.params(), "nonzero": model.nonzero(),
            "dataset": meta.get("dataset", {}), "config": meta.get("config", {}),
            "versions": meta.get("versions", {}), "seed": meta.get("seed"), "file": file,
        }
        values = [json.dumps(rec[c]) if c in _JSON_COLUMNS else rec[c] for c in _COLUMNS]
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES "
                               f"({', '.join('?' * len(_COLUMNS))})", values)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.IntegrityError as exc:
            (self.models_dir / file).unlink(missing_ok=True)
            if "name" in str(exc):  # another process took the name between our check and our insert
                raise UserError(f"a model named {name!r} already exists; pick another --name") from None
            raise UserError(f"cannot store the model: {exc}") from None
        except BaseException:
            (self.models_dir / file).unlink(missing_ok=True)
            raise
        if isinstance(model, ExportedModel):
            return model.with_meta(self._row(model_id))
        return Model(spec=model.spec, weights=model.weights, masks=model.masks, meta=self._row(model_id))

    def update_metrics(self, ref: str, **metrics: Any) -> None:
        """Merge `metrics` into a model's stored metrics."""
        model_id = self.resolve(ref)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT metrics FROM models WHERE id = ?", (model_id,)).fetchone()
            merged = {**json.loads(row["metrics"]), **metrics}
            db.execute("UPDATE models SET metrics = ? WHERE id = ?", (json.dumps(merged), model_id))
            db.execute("COMMIT")

    def rename(self, ref: str, name: str | None) -> None:
        model_id = self.resolve(ref)
        if name is not None:
            name = self.check_new_name(name)
        try:
            with self._connect() as db:
                db.execute("UPDATE models SET name = ? WHERE id = ?", (name, model_id))
        except sqlite3.IntegrityError:
            raise UserError(f"a model named {name!r} already exists; pick another name") from None

    def remove(self, ref: str, recursive: bool = False) -> builtins.list[str]:
        """Delete a model (and with `recursive` its descendants); returns the removed ids."""
        model_id = self.resolve(ref)
        doomed = [model_id]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                i = 0
                while i < len(doomed):
                    kids = [r["id"] for r in db.execute("SELECT id FROM models WHERE parent = ?", (doomed[i],))]
                    if kids and not recursive:
                        raise UserError(f"model {model_id} has children ({', '.join(kids)}); "
                                        "use --recursive to remove them too")
                    doomed.extend(kids)
                    i += 1
                files = [db.execute("SELECT file FROM models WHERE id = ?", (d,)).fetchone()["file"]
                         for d in doomed]
                for d in reversed(doomed):  # children first, for the parent foreign key
                    db.execute("DELETE FROM models WHERE id = ?", (d,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        for file in files:
            (self.models_dir / file).unlink(missing_ok=True)
        return doomed


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    rec = dict(row)
    for c in _JSON_COLUMNS:
        rec[c] = json.loads(rec[c])
    return rec

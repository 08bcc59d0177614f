"""`prunelab doctor`: check the store and repair or quarantine what it can.

Checks, in order: the SQLite file opens and passes `PRAGMA integrity_check`;
every row's weights file exists and loads; no file in models/ lacks a row
(orphans from a process killed between the rename and the commit); no temp
files are left from killed writes. With `repair=True`: orphan and temp files
move to `quarantine/`, rows whose weights are missing or damaged are removed
(their files quarantined), and a registry that fails its integrity check is
moved to `quarantine/` so a fresh one can be started.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.numpy import load_file

from prunelab.home import home


@dataclass
class DoctorReport:
    """What `check_store` found (`problems`) and did (`actions`)."""

    root: str
    models: int = 0
    problems: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "models": self.models, "healthy": self.healthy,
                "problems": self.problems, "actions": self.actions}

    def __repr__(self) -> str:
        return f"DoctorReport(models={self.models}, problems={len(self.problems)}, actions={len(self.actions)})"


def _quarantine(root: Path, path: Path, report: DoctorReport) -> None:
    target = root / "quarantine" / f"{int(time.time())}-{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)
    report.actions.append(f"moved {path} to {target}")


def check_store(root: str | Path | None = None, repair: bool = False) -> DoctorReport:
    """Check the store under `root` (default `$PRUNELAB_HOME`); fix what it can when `repair`."""
    root = Path(root) if root is not None else home()
    report = DoctorReport(root=str(root))
    db_path = root / "registry.db"
    models_dir = root / "models"
    rows: list[tuple[str, str]] = []
    if db_path.exists():
        try:
            con = sqlite3.connect(db_path, timeout=30)
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
            rows = [(r[0], r[1]) for r in con.execute("SELECT id, file FROM models")]
            con.close()
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"registry {db_path} is damaged: {exc}")
            if repair:
                for suffix in ("", "-wal", "-shm"):
                    extra = Path(str(db_path) + suffix)
                    if extra.exists():
                        _quarantine(root, extra, report)
                report.actions.append("a new empty registry will be created on next use; "
                                      "the weights files in models/ are kept")
            return report
    report.models = len(rows)
    files = {p.name for p in models_dir.glob("*.safetensors")} if models_dir.exists() else set()
    bad_rows = []
    for model_id, file in rows:
        path = models_dir / file
        if not path.exists():
            report.problems.append(f"model {model_id}: weights file {path} is missing")
            bad_rows.append(model_id)
            continue
        try:
            load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            report.problems.append(f"model {model_id}: weights file {path} is damaged ({exc})")
            bad_rows.append(model_id)
    for orphan in sorted(files - {f for _, f in rows}):
        report.problems.append(f"orphan weights file {models_dir / orphan} has no registry row")
        if repair:
            _quarantine(root, models_dir / orphan, report)
    if models_dir.exists():
        for tmp in sorted(models_dir.glob(".*.tmp")):
            report.problems.append(f"leftover temp file {tmp} from an interrupted write")
            if repair:
                _quarantine(root, tmp, report)
    if repair and bad_rows:
        con = sqlite3.connect(db_path, timeout=30)
        with con:
            for model_id in bad_rows:
                # children keep existing; they lose their parent link
                con.execute("UPDATE models SET parent = NULL WHERE parent = ?", (model_id,))
                file = con.execute("SELECT file FROM models WHERE id = ?", (model_id,)).fetchone()[0]
                con.execute("DELETE FROM models WHERE id = ?", (model_id,))
                if (models_dir / file).exists():
                    _quarantine(root, models_dir / file, report)
                report.actions.append(f"removed registry row of model {model_id}")
        con.close()
    return report

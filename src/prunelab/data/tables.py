"""Tables on disk: reading selection inputs (.npz with X, y, timestamps, scores; .csv with target
columns) and writing the kept rows back in the same format, atomically."""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunelab.atomic import write_atomic, write_bytes_atomic
from prunelab.errors import UserError


@dataclass
class Table:
    """Arrays read from a file; for CSV also the header and the raw rows (written back verbatim)."""

    path: Path
    X: np.ndarray
    y: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    scores: np.ndarray | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "csv" if self.header else "npz"


def load(path: str | Path, targets: list[str] | tuple[str, ...] = (), timestamps: str | None = None,
         scores: str | None = None) -> Table:
    """Read `.npz` (arrays X, optional y, timestamps, scores) or `.csv` (header row; `targets`
    name the label / target columns, `timestamps` and `scores` optional columns, every other
    column is a numeric feature)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"input file not found: {p}")
    if p.is_dir():
        raise UserError(f"input {p} is a folder; give a .npz or .csv file")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        if targets or timestamps or scores:
            raise UserError("--target/--timestamps/--scores name CSV columns; a .npz gives arrays "
                            "X, y, timestamps, scores")
        return _load_npz(p)
    if suffix == ".csv":
        return _load_csv(p, list(targets), timestamps, scores)
    raise UserError(f"unsupported input {p.name}: use a .npz (arrays X, y) or a .csv with a header row")


def _check_npz_headers(p: Path) -> None:
    """Refuse an array whose .npy header claims more data than its member holds, before numpy
    allocates the claimed shape (a 100-byte file claiming 10**11 floats made it try 745 GiB)."""
    with zipfile.ZipFile(p) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue  # not an array; reported as an unexpected entry below
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    continue  # numpy checks the rest; 3.0 headers only add UTF-8 field names
                if dtype.hasobject:
                    continue  # refused by allow_pickle=False with its own message
                claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if claimed != info.file_size - f.tell():
                    raise UserError(f"{p}: array {info.filename!r} claims shape {shape} ({claimed} bytes) but "
                                    f"holds {info.file_size - f.tell()} bytes; the file is damaged, "
                                    "write it again with numpy.savez(path, X=..., y=...)")


def _load_npz(p: Path) -> Table:
    try:
        _check_npz_headers(p)
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, MemoryError, zlib.error,
            NotImplementedError, RuntimeError) as exc:  # zipfile: damaged deflate stream, odd or encrypted entries
        if isinstance(exc, UserError):
            raise
        why = str(exc).splitlines()[0] if str(exc) else "corrupt"
        raise UserError(f"cannot read {p} as .npz ({type(exc).__name__}: {why}); "
                        "write it with numpy.savez(path, X=..., y=...)") from None
    if "X" not in arrays:
        raise UserError(f"{p} has no array 'X' (found: {', '.join(sorted(arrays)) or 'none'}); "
                        "save features as X and labels as y")
    unknown = sorted(set(arrays) - {"X", "y", "timestamps", "scores"})
    if unknown:
        raise UserError(f"{p} has unexpected arrays {unknown}; expected X, y, timestamps, scores")
    return Table(path=p, X=arrays["X"], y=arrays.get("y"), timestamps=arrays.get("timestamps"),
                 scores=arrays.get("scores"))


def _load_csv(p: Path, targets: list[str], ts_col: str | None, sc_col: str | None) -> Table:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {p} as CSV text ({type(exc).__name__})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{p} is empty; give a CSV with a header row and at least one data row") from None
    except csv.Error as exc:
        raise UserError(f"cannot parse {p} as CSV: {exc}") from None
    header = [h.strip() for h in header]
    try:
        rows = [r for r in reader if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise UserError(f"cannot parse {p} as CSV: {exc}") from None
    if not rows:
        raise UserError(f"{p} has a header but no data rows; nothing to select from")
    for name in [*targets, ts_col, sc_col]:
        if name is not None and name not in header:
            raise UserError(f"column {name!r} not in {p.name}; columns are: {', '.join(header)}")
    bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise UserError(f"{p}: row {bad[0]} has a different number of fields than the header ({len(header)})")
    special = set(targets) | {ts_col, sc_col}
    features = [i for i, h in enumerate(header) if h not in special]
    if not features:
        raise UserError(f"{p} has no feature columns left after the target columns")
    X = _numeric(p, header, rows, features)
    y = None
    if targets:
        cols = [header.index(t) for t in targets]
        try:
            y = _numeric(p, header, rows, cols, quiet=True)
            y = y.ravel() if len(cols) == 1 else y.astype(np.float64)
            if len(cols) == 1 and np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
        except ValueError:
            if len(cols) > 1:
                raise UserError("several --target columns must all be numeric (a regression target)") from None
            y = np.array([r[cols[0]].strip() for r in rows])
    ts = _numeric(p, header, rows, [header.index(ts_col)]).ravel().astype(np.float64) if ts_col else None
    sc = _numeric(p, header, rows, [header.index(sc_col)]).ravel().astype(np.float64) if sc_col else None
    return Table(path=p, X=X, y=y, timestamps=ts, scores=sc, header=header, rows=rows)


def _numeric(p: Path, header: list[str], rows: list[list[str]], cols: list[int], quiet: bool = False) -> np.ndarray:
    out = np.empty((len(rows), len(cols)), dtype=np.float64)
    for r, row in enumerate(rows):
        for j, c in enumerate(cols):
            try:
                out[r, j] = float(row[c])
            except ValueError:
                if quiet:
                    raise
                raise UserError(f"{p}: row {r + 2}, column {header[c]!r} is not a number ({row[c]!r})") from None
    return out


def save(table: Table, indices: np.ndarray, out: str | Path) -> Path:
    """Write the kept rows: CSV input -> the same CSV rows; .npz output -> arrays (+ `indices`)."""
    out = Path(out)
    if out.suffix.lower() == ".npz":
        arrays = {"X": table.X[indices], "indices": indices}
        for name in ("y", "timestamps", "scores"):
            value = getattr(table, name)
            if value is not None:
                arrays[name] = value[indices]

        def _write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        write_atomic(out, _write)
        return out
    if out.suffix.lower() == ".csv":
        if table.kind != "csv":
            raise UserError("--out .csv needs a .csv input; write .npz for .npz input")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(table.header)
        w.writerows(table.rows[i] for i in indices)
        write_bytes_atomic(out, buf.getvalue().encode())
        return out
    raise UserError(f"--out must end in .npz or .csv, got {out.name}")

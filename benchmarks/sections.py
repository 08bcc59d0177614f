"""One writer for the marked sections that benchmark scripts own in RESULTS.md and the docs.

A section is the text between `<!-- BEGIN name -->` and `<!-- END name -->`; a script
replaces only its own, atomically, so scripts run one after another never undo each other.
"""

from __future__ import annotations

import re
from pathlib import Path

from prunelab.atomic import write_bytes_atomic


def write_section(path: Path, name: str, body: str, *, create: bool = True) -> None:
    """Replace section `name` of `path` with `body`; append it when missing (`create`),
    otherwise stop with a message saying which markers to add."""
    text = path.read_text()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = f"{begin}\n{body}\n{end}"
    if pattern.search(text):
        text = pattern.sub(lambda _m: new, text)
    elif create:
        text = text.rstrip() + f"\n\n{new}\n"
    else:
        raise SystemExit(f"{path} has no {begin} ... {end} block; add the markers first")
    write_bytes_atomic(path, text.encode())

"""The shape of the code base: layers import downwards only, commands are documented."""

from __future__ import annotations

import ast

from prunelab.cli import build_parser
from tests.conftest import REPO

SRC = REPO / "src" / "prunelab"


def _imports(path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_library_never_imports_the_cli_or_the_web_app():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(("cli/", "web/")) or rel in ("demo.py", "__main__.py"):
            continue
        bad = {m for m in _imports(path) if m.startswith(("prunelab.cli", "prunelab.web"))}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert offenders == []


def test_sparse_runtime_never_imports_torch_at_module_level():
    for path in (SRC / "sparse").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top:
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(m == "torch" or m.startswith("torch.") for m in mods), path


def test_every_command_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = [name for name in sub.choices if f"prunelab {name}" not in readme]
    assert missing == [], f"commands missing from README.md: {missing}"

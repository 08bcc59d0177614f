"""The `prunelab` command line: argument parsing and output only.

Each area registers its subcommands from its own module (`cli/models.py`,
...); every handler calls the library and returns a JSON-able dict plus the
human text. Contract (../shared/DESIGN.md): `--json` prints exactly one JSON
object on stdout; bad input exits 2 with one `error: ...` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from prunelab.errors import UserError

# Modules that add subcommands: each has `register(subparsers)`.
COMMAND_MODULES = ["prunelab.cli.models", "prunelab.cli.serve", "prunelab.cli.prune",
                   "prunelab.cli.export",
                   "prunelab.cli.select", "prunelab.cli.imports"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one `error:` line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="prunelab", description="Make neural networks and training sets smaller, "
                     "and measure it.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def _version() -> str:
    from prunelab import __version__

    return f"prunelab {__version__}"


def emit(args: argparse.Namespace, result: dict[str, Any], human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, default=_jsonable))
    else:
        print(human)


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        raise SystemExit(0)
    try:
        args.handler(args)
    except UserError as exc:
        fail(str(exc))
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(str(exc))
    except sqlite3.OperationalError as exc:
        fail(f"the registry is busy or unreadable ({exc}); try again")
    except BrokenPipeError:
        raise SystemExit(0) from None
    except KeyboardInterrupt:
        print("interrupted; nothing was stored", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()

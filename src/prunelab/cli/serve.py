"""`serve`: start the explorer web app (binds 127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from prunelab.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="start the explorer web app")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: only this machine can connect)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--workers", type=int, default=1, help="background jobs run at once (default 1)")
    p.set_defaults(handler=cmd_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> None:
    import socket

    import uvicorn

    from prunelab.web import create_app

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if not is_loopback(args.host):
        print(f"warning: binding {args.host} exposes the explorer (which can train and delete models) to "
              "other machines; it has no login. Use the default 127.0.0.1 unless you mean it.",
              file=sys.stderr)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); "
                        "pick another --port") from None
    sock.listen(128)  # accept connections (they queue) as soon as the URL is printed
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"prunelab explorer running at http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)
    app = create_app(workers=args.workers)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])

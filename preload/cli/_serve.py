"""
``preload serve`` (the server extra) and ``preload keys``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import ArgumentError, at_least, command


def serve_parsers(sub: Any) -> None:
    serve = command(
        sub,
        "serve",
        help="serve the HTTP API (the server extra)",
        description="Serve the HTTP API under /v1 (interactive page at /docs). Each tenant of "
        'the keys has its own engine; with cache.backend = "redis" sessions live in Redis '
        "and any replica serves any turn. See docs/server.md.",
    )
    serve.add_argument("--config", type=Path, help="TOML configuration (configs/server.toml)")
    serve.add_argument("--model", type=Path, help="model file from 'train', loaded at start")
    serve.add_argument("--knowledge", type=Path, help="knowledge file (JSONL) for every tenant")
    serve.add_argument(
        "--keys", type=Path, help="keys file from 'keys new' (else PRELOAD_API_KEYS)"
    )
    serve.add_argument("--sources", help="module:callable giving a tenant's extra sources")
    serve.add_argument("--tools", help="module:callable giving a tenant's call sources")
    serve.add_argument(
        "--calls-model", type=Path, help="call forecaster from 'train --calls-out', loaded at start"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=at_least(0), default=8000, help="port (0: any free one)")
    serve.add_argument("--workers", type=at_least(1), default=1, help="worker processes")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(run=run_serve)

    keys = sub.add_parser("keys", help="manage the server's API keys")
    keys_sub = keys.add_subparsers(required=True, metavar="ACTION")
    new = command(
        keys_sub,
        "new",
        help="make a key for a tenant: print it once, store its digest",
    )
    new.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    new.add_argument("--keys", type=Path, required=True, help="keys file to append to")
    new.set_defaults(run=run_new_key)
    revoke = command(
        keys_sub,
        "revoke",
        help="take a tenant's keys, or one key, out of the keys file",
        description="Take every key of a tenant (--tenant), or the key of a digest (--sha256), "
        "out of the keys file, rewritten atomically. A server started with the file "
        "refuses the keys within server.keys_reload_s. It never leaves the file without "
        "a key: to rotate, make the new key first, then revoke the old one.",
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", help="revoke every key of this tenant")
    which.add_argument("--sha256", help="revoke the key of this digest (from the keys file)")
    revoke.add_argument("--keys", type=Path, required=True, help="keys file to rewrite")
    revoke.set_defaults(run=run_revoke_key)
    listed = command(
        keys_sub,
        "list",
        help="print the keys file's tenants and digests, one key a line",
    )
    listed.add_argument("--keys", type=Path, required=True, help="keys file to read")
    listed.set_defaults(run=run_list_keys)


def run_serve(args: argparse.Namespace) -> int:
    try:
        from ..server import ServerSettings
        from ..server._serve import serve as run_server
    except ImportError as exc:
        raise ArgumentError(
            None, f"the server needs its extra: pip install 'preload[server]' ({exc.name})"
        ) from None
    for name in ("config", "model", "knowledge", "keys", "calls_model"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise ArgumentError(f"--{name.replace('_', '-')}", f"{path}: no such file")
    settings = ServerSettings(
        config=_text(args.config),
        model=_text(args.model),
        knowledge=_text(args.knowledge),
        keys=_text(args.keys),
        sources=args.sources,
        tools=args.tools,
        calls_model=_text(args.calls_model),
    )
    return run_server(
        settings, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
    )


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def run_new_key(args: argparse.Namespace) -> int:
    from ..server._serve import new_key_command

    print(new_key_command(args.tenant, args.keys))  # noqa: T201 (the key, once)
    return 0


def run_revoke_key(args: argparse.Namespace) -> int:
    from ..server._serve import revoke_key_command

    print(revoke_key_command(args.keys, tenant=args.tenant, sha256=args.sha256))  # noqa: T201
    return 0


def run_list_keys(args: argparse.Namespace) -> int:
    from ..server._serve import list_keys_command

    print(list_keys_command(args.keys))  # noqa: T201
    return 0

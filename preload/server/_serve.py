"""
``preload serve``, ``preload keys new`` and ``preload keys revoke``: checked before uvicorn starts, so that a bad
file or an unreachable Redis is one clear line, not a traceback from a worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import EngineConfig
from .._errors import PreloadError
from ..replay._table import plural
from ._app import SETTINGS_ENV, ModelsRead, ServerSettings, check_tools, create_app
from ._keys import KeyRing, append_key, key_entries, revoke_keys

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "ServeError",
    "check",
    "list_keys_command",
    "new_key_command",
    "revoke_key_command",
    "serve",
]


class ServeError(PreloadError):
    """
    The server cannot start: the message says why.
    """


def check(settings: ServerSettings, workers: int) -> tuple[EngineConfig, FastAPI]:
    """
    Everything the server needs, tried once: the files, the keys, the tools, Redis.
    The app it made of them, which serves when one process does (``workers`` 1): the
    files are then read once, not again by the app.

    Raises:
        ServeError: What is wrong, in one line.
        PreloadError: A file is not usable (it names the file and the line).
    """
    config = EngineConfig.from_toml(settings.config) if settings.config else EngineConfig()
    try:
        read = ModelsRead.read(settings)
        app = create_app(settings, read=read)  # reads the keys, the knowledge, the factories
        check_tools(settings)
    except (ValueError, TypeError, OSError) as exc:
        raise ServeError(str(exc)) from None
    if config.cache.backend != "redis":
        if workers > 1:
            raise ServeError(
                f"--workers {workers} needs a store the workers share: set "
                'cache.backend = "redis" in the config (configs/server.toml does)'
            )
        return config, app
    try:
        import redis
    except ImportError:  # pragma: no cover (the server extra brings it)
        raise ServeError("the Redis store needs: pip install 'preload[server]'") from None
    client = redis.Redis.from_url(
        config.cache.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ServeError(
            f"cannot reach Redis at {config.cache.redis_url} (cache.redis_url): {exc}; "
            'start redis-server, or set cache.backend = "memory" for one process'
        ) from None
    finally:
        client.close()
    return config, app


def serve(settings: ServerSettings, *, host: str, port: int, workers: int, log_level: str) -> int:
    """
    Check, then run uvicorn until SIGTERM or SIGINT (it stops accepting, finishes the
    requests in flight, and the app closes its engines and the store). Under ``preload
    serve``, a SIGHUP stops a single process the same way (the command line turns it
    into SIGTERM); with ``workers``, uvicorn replaces them on SIGHUP.
    """
    _, app = check(settings, workers)
    import uvicorn

    if workers > 1:  # each worker process makes its own app, as the settings say
        del app  # and its models: this process only watches the workers
        os.environ[SETTINGS_ENV] = settings.to_json()
        target: Any = "preload.server._app:app_from_environment"
    else:
        target = app
    uvicorn.run(
        target,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        access_log=False,
    )
    return 0


def new_key_command(tenant: str, keys: Path) -> str:
    """
    A new key for ``tenant``, its digest appended to ``keys``.

    Raises:
        ServeError: The tenant name is invalid or the file cannot be written.
    """
    try:
        key = append_key(keys, tenant)
        KeyRing.from_file(keys)  # the file still reads
    except (ValueError, OSError) as exc:
        raise ServeError(str(exc)) from None
    return key


def revoke_key_command(keys: Path, *, tenant: str | None, sha256: str | None) -> str:
    """
    Take the keys of ``tenant``, or the key of ``sha256``, out of ``keys``; what was
    done, in one line.

    Raises:
        ServeError: No key matches, none would be left, or the file cannot be read
            or written (naming the file, and the line of a bad entry).
    """
    try:
        revoked = revoke_keys(keys, tenant=tenant, sha256=sha256)
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    what = f"tenant {tenant}" if tenant is not None else f"sha256 {sha256}"
    return (
        f"revoked {plural(revoked, 'key')} of {what} in {keys}; servers reading the file "
        f"refuse {'it' if revoked == 1 else 'them'} within server.keys_reload_s"
    )


def list_keys_command(keys: Path) -> str:
    """
    The keys file's keys, a line each: the tenant and the key's digest (the key itself
    is never stored), in the file's order, then how many.

    Raises:
        PreloadError: The file cannot be read, or a line is not a key entry (naming it).
    """
    entries = key_entries(keys)
    width = max([len("tenant"), *(len(tenant) for _, tenant in entries)])
    lines = [f"{'tenant':<{width}}  sha256"]
    lines += [f"{tenant:<{width}}  {hexdigest}" for hexdigest, tenant in entries]
    tenants = len({tenant for _, tenant in entries})
    lines.append(f"{plural(len(entries), 'key')} of {plural(tenants, 'tenant')} in {keys}")
    return "\n".join(lines)

"""
``preload serve``: an HTTP API over the engine, for chat servers with replicas and
tenants (the ``server`` extra: FastAPI, uvicorn, redis, prometheus-client).

Each tenant (by API key) has its own engine and cache namespace; sessions live in a
store replicas share (Redis when ``cache.backend = "redis"``), so any replica serves
any turn of any session. ``docs/server.md`` describes the API.

.. versionadded:: 0.4
"""

from __future__ import annotations

from ._app import ServerSettings, app_from_environment, create_app
from ._follow import Follower
from ._keys import KeyRing, append_key, digest, key_entries, new_key, revoke_keys
from ._store import Changed, SessionBusy, SessionStore, StoreConflict, StoreUnavailable
from ._store_memory import MemorySessionStore
from ._store_redis import RedisSessionStore

__all__ = [
    "Changed",
    "Follower",
    "KeyRing",
    "MemorySessionStore",
    "RedisSessionStore",
    "ServerSettings",
    "SessionBusy",
    "SessionStore",
    "StoreConflict",
    "StoreUnavailable",
    "app_from_environment",
    "append_key",
    "create_app",
    "digest",
    "key_entries",
    "new_key",
    "revoke_keys",
]

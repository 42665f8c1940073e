"""
The cache of warm context: one :class:`CacheBackend` interface, two backends.

:class:`MemoryCache` keeps everything in this process; :class:`RedisCache`
(``cache.backend = "redis"``) shares the cache between replicas and falls back to a
``MemoryCache`` of its own while Redis is down. :func:`make_cache` builds the
configured one. Values are plain data serialized as msgpack or JSON, never pickle;
keys are built by :func:`cache_key` from tenant, source, item key and content
version, so that one tenant's context is never returned to another.
"""

from __future__ import annotations

from ._base import CacheBackend as CacheBackend
from ._base import CacheStatistics as CacheStatistics
from ._base import cache_key as cache_key
from ._base import length_prefixed as length_prefixed
from ._demand import Demand as Demand
from ._demand import EntryValue as EntryValue
from ._factory import make_cache as make_cache
from ._memory import MemoryCache as MemoryCache
from ._redis import RedisCache as RedisCache
from ._serialization import JsonSerializer as JsonSerializer
from ._serialization import MsgPackSerializer as MsgPackSerializer

__all__ = [
    "CacheBackend",
    "CacheStatistics",
    "Demand",
    "EntryValue",
    "JsonSerializer",
    "MemoryCache",
    "MsgPackSerializer",
    "RedisCache",
    "cache_key",
    "length_prefixed",
    "make_cache",
]

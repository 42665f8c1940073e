"""
caches.
"""

from __future__ import annotations

from ._memory import CacheStatistics as CacheStatistics
from ._memory import JsonSerializer as JsonSerializer
from ._memory import MemoryCache as MemoryCache
from ._memory import MsgPackSerializer as MsgPackSerializer
from ._memory import cache_key as cache_key
from ._memory import make_cache as make_cache
from ._redis import RedisCache as RedisCache

__all__ = [
    "CacheStatistics",
    "JsonSerializer",
    "MemoryCache",
    "MsgPackSerializer",
    "RedisCache",
    "cache_key",
    "make_cache",
]

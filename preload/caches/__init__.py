"""
caches.
"""

from __future__ import annotations

from ._memory import CacheStatistics as CacheStatistics
from ._memory import ItemCache as ItemCache
from ._memory import JsonSerializer as JsonSerializer
from ._memory import MsgPackSerializer as MsgPackSerializer
from ._memory import cache_key as cache_key
from ._memory import make_cache as make_cache
from ._redis import RedisItemCache as RedisItemCache

__all__ = [
    "CacheStatistics",
    "ItemCache",
    "JsonSerializer",
    "MsgPackSerializer",
    "RedisItemCache",
    "cache_key",
    "make_cache",
]

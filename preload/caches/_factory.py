"""
Building the cache the configuration asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._memory import MemoryCache

if TYPE_CHECKING:
    from .._config import CacheConfig
    from ._base import CacheBackend

__all__ = ["make_cache"]


def make_cache(config: CacheConfig) -> CacheBackend:
    """
    The cache ``config`` asks for: in memory, or on Redis (shared by replicas).

    The Redis backend is imported only when asked for: it needs the ``redis`` extra.

    Raises:
        ConfigError: The Redis backend is asked for but the ``redis`` package is
            missing, or ``cache.redis_url`` is not usable.

    .. versionadded:: 0.1
    """
    if config.backend == "redis":
        from ._redis import RedisCache

        return RedisCache(config)
    return MemoryCache(config)

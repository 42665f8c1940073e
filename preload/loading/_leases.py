"""
Reading items from the cache, and waiting for the replica that holds a key's lease.

On a shared cache one replica loads a key under a lease while the others poll for its
value; when the lease goes away without a value (the holder failed or died and its
lease expired), a waiting replica takes the lease and loads the key itself.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import CacheError
from ..compression import Representation

if TYPE_CHECKING:
    from ..caches import CacheBackend

__all__ = ["await_other_replica", "decode_item", "read_item"]

logger = logging.getLogger(__name__)

#: The longest pause between two polls for another replica's value.
MAX_POLL_S = 0.1


def decode_item(ck: str, value: Any) -> Representation | None:
    """
    The item a cached value stands for, or None (logged) when it is not one.
    """
    try:
        return Representation.from_dict(value)
    except CacheError:
        logger.warning("dropping a cache entry that is not an item: %s", ck)
        return None


async def read_item(cache: CacheBackend, ck: str) -> Representation | None:
    """
    The item under the cache key ``ck``, or None.
    """
    item: Representation | None = (await cache.get_objects([ck], decode_item))[0]
    return item


async def await_other_replica(
    cache: CacheBackend, ck: str, *, poll_s: float, lease_ttl_s: float
) -> tuple[Representation | None, str | None]:
    """
    Poll, with backoff on the loop's clock, for the value another replica is loading
    under its lease.

    Returns:
        The item when the other replica stored it, else the lease token this replica
        now holds (and must release) to load the key itself.
    """
    pause = poll_s
    while True:
        await anyio.sleep(pause)
        pause = min(pause * 2, MAX_POLL_S)
        item = await read_item(cache, ck)
        if item is not None:
            return item, None
        if not await cache.leased(ck):
            token = await cache.lease(ck, lease_ttl_s)
            if token is not None:
                item = await read_item(cache, ck)  # stored just before the release?
                if item is not None:
                    await cache.release(ck, token)
                    return item, None
                return None, token

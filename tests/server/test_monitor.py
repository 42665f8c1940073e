"""
What the server watches about itself, the garbage collector's pauses, and how it
keeps them rare.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

from preload.server._app import ServerSettings, create_app
from preload.server._keys import append_key
from preload.server._monitor import Reservoir, watch_gc

from .conftest import write_config

if TYPE_CHECKING:
    from ..conftest import RedisServer


def test_watch_gc_records_each_collection_while_watching() -> None:
    """
    Every collection in the block adds its pause; none after it.
    """
    pauses = Reservoir()
    with watch_gc(pauses):
        gc.collect()
        gc.collect(0)
    counted = pauses.count
    gc.collect()
    assert 2 <= counted == pauses.count  # other threads' collections may add some
    assert 0 < pauses.maximum() and 0 < pauses.total


async def test_the_server_collects_young_objects_less_often_while_it_serves(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    Between start-up and shutdown the collector runs at ``server.gc_thresholds``; the
    process' thresholds come back after.
    """
    keys = tmp_path / "keys.jsonl"
    append_key(keys, "acme")
    config = write_config(
        tmp_path / "server.toml", redis_server.url, more="gc_thresholds = [1234, 5, 67]"
    )
    app = create_app(ServerSettings(config=str(config), keys=str(keys)))
    before = gc.get_threshold()
    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == (1234, 5, 67)
    assert gc.get_threshold() == before

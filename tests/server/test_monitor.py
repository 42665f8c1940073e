"""
What the server watches about itself: the garbage collector's pauses.
"""

from __future__ import annotations

import gc

from preload.server._monitor import Reservoir, watch_gc


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

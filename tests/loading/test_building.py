"""
Building an item: its compression off the event loop when its text is long.
"""

from __future__ import annotations

import threading

from preload import TiktokenCounter
from preload.compression import Representation, TruncatingCompressor
from preload.loading import OFFLOAD_CHARS
from preload.loading._building import ItemBuilder


class _Where(TruncatingCompressor):
    """
    Records the thread each item is compressed in.
    """

    def __init__(self) -> None:
        super().__init__(TiktokenCounter())
        self.threads: list[int] = []

    def compress(self, *, key: str, source: str, category: str, text: str) -> Representation:
        self.threads.append(threading.get_ident())
        return super().compress(key=key, source=source, category=category, text=text)


async def test_a_long_item_is_compressed_in_a_worker_thread_a_short_one_on_the_loop() -> None:
    """
    An item above ``OFFLOAD_CHARS`` characters (such as SGD's longer tenth, 3.6 KB
    and more, milliseconds of work) is compressed in a worker thread, one at most that
    long on the loop (a thread hop costs more than its work); a replay, which does not
    offload, compresses every item on the loop.
    """
    loop = threading.get_ident()
    short, long = "x" * OFFLOAD_CHARS, "a row of a table. " * 200  # 3,600 characters
    where = _Where()
    builder = ItemBuilder(where, lambda key: "knowledge", offload=True)
    await builder.build("kb", "short", short)
    await builder.build("kb", "long", long)
    inline = ItemBuilder(where, lambda key: "knowledge", offload=False)
    await inline.build("kb", "long", long)
    assert loop == where.threads[0] != where.threads[1]
    assert loop == where.threads[2]

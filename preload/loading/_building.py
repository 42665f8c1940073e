"""
Turning a fetched text into a cached item: its compression levels, written in a worker
thread when the text is long, and the summary level by a user's async summarizer when
the compressor has one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..compression import Compressor, Level, Representation, SummarizingCompressor

__all__ = ["OFFLOAD_CHARS", "ItemBuilder"]

#: Items longer than this (characters) are compressed in a worker thread: above it the
#: work holds the event loop for milliseconds (SGD's knowledge: 0.5 ms for most items,
#: 2.6 ms at 3.6 KB, 7.8 ms at 10 KB), more than a thread hop costs.
OFFLOAD_CHARS = 2_000


class ItemBuilder:
    """
    Builds items with one compressor, checked once for the summarizing capability.

    Args:
        compressor: Builds each item's levels.
        category: The context category of a key.
        offload: Compress long texts in a worker thread (off in replays, where the
            virtual clock must not wait on threads).
    """

    def __init__(
        self, compressor: Compressor, category: Callable[[str], str], *, offload: bool
    ) -> None:
        self.compressor = compressor
        self._summarizing = (
            compressor
            if isinstance(compressor, SummarizingCompressor) and compressor.summarizer is not None
            else None
        )
        self._category = category
        self._offload = offload
        self._cpu_limiter = anyio.CapacityLimiter(1)

    async def build(self, source: str, key: str, text: str) -> Representation:
        """
        The item ``key`` of ``source`` with the text ``text``.
        """
        category = self._category(key)

        def run() -> Representation:
            return self.compressor.compress(key=key, source=source, category=category, text=text)

        offload = self._offload and len(text) > OFFLOAD_CHARS
        if self._summarizing is not None:
            # A user's async summarizer (an LLM call) writes the summary level.
            async def in_thread(fn: Callable[[], tuple[Level, ...]]) -> tuple[Level, ...]:
                return await anyio.to_thread.run_sync(fn, limiter=self._cpu_limiter)

            run_sync: Callable[..., Awaitable[Any]] | None = in_thread if offload else None
            return await self._summarizing.acompress(
                key=key, source=source, category=category, text=text, run_sync=run_sync
            )
        if offload:
            return await anyio.to_thread.run_sync(run, limiter=self._cpu_limiter)
        return run()

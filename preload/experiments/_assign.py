"""
Which arm of an experiment serves a session: a stable hash of the experiment's name,
its salt and the session id, cut by the arms' weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["assign", "bucket"]


def bucket(name: str, salt: str, session_id: str) -> float:
    """
    Where a session falls in [0, 1): the first 8 bytes of the SHA-256 of
    ``name``, ``salt`` and ``session_id`` (UTF-8, separated by ``\\x1f``) as an
    unsigned big-endian integer, over 2**64. The same in every process, run and
    version of Python (unlike ``hash()``, which is salted per process).

    .. versionadded:: 0.6
    """
    text = f"{name}\x1f{salt}\x1f{session_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(text).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(name: str, salt: str, session_id: str, weights: Mapping[str, float]) -> str:
    """
    The arm that serves ``session_id``: the arms, in their order, share [0, 1) in
    proportion to their weights, and the session's :func:`bucket` picks one.

    Raises:
        ValueError: No arm, or a weight that is not positive.

    .. versionadded:: 0.6
    """
    if not weights:
        raise ValueError("an experiment needs arms")
    total = 0.0
    for arm, weight in weights.items():
        if not weight > 0:
            raise ValueError(f"arm {arm!r}: its weight must be positive, got {weight!r}")
        total += weight
    point = bucket(name, salt, session_id) * total
    upper = 0.0
    for arm, weight in weights.items():
        upper += weight
        if point < upper:
            return arm
    return arm  # rounding: the last arm

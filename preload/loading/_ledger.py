"""
The ledger of preloads by session: which session each background load was for, and
whether that session read it.

One load has one owner, the first session that asked for it (by name, so that a
replay counts the same way every time). A session that reads the item claims it
(``preloads_used``); what a session never read counts as ``wasted`` when it ends.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["PreloadLedger"]


class PreloadLedger:
    """
    Preloads not yet read, by the session they were loaded for.
    """

    def __init__(self) -> None:
        self._owned: dict[str, set[str]] = {}
        self.used = 0
        self.wasted = 0

    def __len__(self) -> int:
        return len(self._owned)

    def sessions(self) -> set[str]:
        """
        The sessions that own a preload they have not read yet.
        """
        return set(self._owned)

    def loaded(self, key: str, sessions: Collection[str]) -> None:
        """
        A background load of ``key`` started for ``sessions`` (none: nobody owns it).
        """
        if sessions:
            self._owned.setdefault(min(sessions), set()).add(key)

    def read(self, session: str, key: str) -> bool:
        """
        ``session`` read ``key``; whether that used one of its preloads.
        """
        owned = self._owned.get(session)
        if owned is None or key not in owned:
            return False
        owned.discard(key)
        self.used += 1
        return True

    def end(self, session: str) -> None:
        """
        ``session`` is over: what it never read is wasted.
        """
        self.wasted += len(self._owned.pop(session, ()))

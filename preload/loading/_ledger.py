"""
The ledger of preloads by session: which session each background load was for, and
whether that session read it.

One load has one owner, the first session that asked for it (by name, so that a
replay counts the same way every time). A session that reads the item claims it
(``preloads_used``); what a session never read counts as ``wasted`` when it ends.

A preload its session needed but that had left the cache first (another entry's load
evicted it, or it expired) is *lost* (``preloads_lost``; used and wasted are counted as
before: a lost preload whose key the session reads later, loaded again, counts as
used). The share of the
needed preloads that were still there, a moving average, is the cache's
:attr:`PreloadLedger.survival`: near 1 while the cache holds what is preloaded, low
when preloads evict each other before their use.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["SURVIVAL_WEIGHT", "PreloadLedger"]

#: The weight of the latest outcome in :attr:`PreloadLedger.survival`.
SURVIVAL_WEIGHT = 1 / 32


class PreloadLedger:
    """
    Preloads not yet read, by the session they were loaded for.
    """

    def __init__(self) -> None:
        self._owned: dict[str, set[str]] = {}
        self._lost: dict[str, set[str]] = {}  # owned preloads found lost, by session
        self.used = 0
        self.wasted = 0
        self.lost = 0
        #: The moving share of needed preloads still there when needed (1 at first).
        self.survival = 1.0

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
            owner = min(sessions)
            self._owned.setdefault(owner, set()).add(key)
            lost = self._lost.get(owner)
            if lost is not None:
                lost.discard(key)  # a new preload of it: its own outcome counts

    def read(self, session: str, key: str) -> bool:
        """
        ``session`` read ``key``; whether that used one of its preloads.
        """
        owned = self._owned.get(session)
        if owned is None or key not in owned:
            return False
        owned.discard(key)
        self.used += 1
        lost = self._lost.get(session)
        if lost is None or key not in lost:
            self._survived(True)
        else:
            lost.discard(key)
        return True

    def lose(self, session: str, key: str) -> bool:
        """
        ``session`` needed ``key`` and it was not in the cache: if it was preloaded
        for this session and not read yet (nor found lost before), that preload was
        lost.

        Returns:
            Whether it was such a preload.
        """
        owned = self._owned.get(session)
        lost = self._lost.setdefault(session, set())
        if owned is None or key not in owned or key in lost:
            if not lost:
                del self._lost[session]
            return False
        lost.add(key)
        self.lost += 1
        self._survived(False)
        return True

    def _survived(self, kept: bool) -> None:
        self.survival += SURVIVAL_WEIGHT * (float(kept) - self.survival)

    def end(self, session: str) -> None:
        """
        ``session`` is over: what it never read is wasted.
        """
        self.wasted += len(self._owned.pop(session, ()))
        self._lost.pop(session, None)

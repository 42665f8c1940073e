"""
The engine's experiment side: which arm serves a session, and what each request and
each feedback of an experiment's session adds to its outcome and its arm's counts.

A session counts in its arm where its first turn is served, once; a request counts
once (a request served again under its id does not count again, see
:meth:`PreloadEngine.handle <preload.PreloadEngine.handle>`); a turn served here, then
dropped or replaced by another replica's, is taken out again.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..experiments import ArmStatistics, OutcomeTally, SessionOutcome, assign

if TYPE_CHECKING:
    from .._config import ExperimentsConfig
    from ..window import Context
    from ._session import Arm, EngineSession

__all__ = ["MAX_OUTCOMES", "ExperimentSide"]

#: Outcomes of ended sessions an engine keeps for :meth:`PreloadEngine.experiment_outcomes`;
#: the oldest go first.
MAX_OUTCOMES = 100_000


class ExperimentSide:
    """
    The arms of the engine's experiment and its sessions' outcomes.

    Args:
        config: The ``[experiments]`` section.
        arms: Each arm by name (none: no experiment).
    """

    def __init__(self, config: ExperimentsConfig, arms: Mapping[str, Arm]) -> None:
        self.config = config
        self.arms = dict(arms)
        self._weights = {name: arm.weight for name, arm in config.arms.items()}
        # ended sessions' outcomes by session id, the oldest first
        self._outcomes: OrderedDict[str, SessionOutcome] = OrderedDict()

    def arm_of(self, session_id: str) -> str | None:
        """
        The name of the arm a session's id is assigned to; None without an experiment.
        """
        if not self.arms:
            return None
        return assign(self.config.name, self.config.salt, session_id, self._weights)

    def arm_for(self, session_id: str) -> Arm | None:
        """
        The arm that serves a new session; None without an experiment.
        """
        name = self.arm_of(session_id)
        return None if name is None else self.arms[name]

    def tally_for(self, session_id: str) -> OutcomeTally:
        """
        The tally of a session the engine takes up: new, or holding what the session
        counted before the engine forgot it (its outcome, taken back from the ended
        ones), so that its outcome stays one.
        """
        tally = OutcomeTally()
        before = self._outcomes.pop(session_id, None)
        if before is not None and before.counts is not None:
            tally.add(before.counts)
        return tally

    def count_turn(
        self, session: EngineSession, context: Context, needs: list[str], text: str
    ) -> None:
        """
        Count a request of an experiment's session in its outcome and its arm's (the
        turn the session is about to take).
        """
        held = {item.key for item in context.items}
        counts: dict[str, Any] = {
            "hits": context.hits,
            "partial_hits": context.partial_hits,
            "misses": context.misses,
            "tokens": context.tokens,
            "needs": len(needs),
            "held": sum(need in held for need in needs),
            "wait_s": context.waited_s,
        }
        for tally in _tallies(session):
            tally.turn(**counts)
        if not session.turns and not session.in_arm and session.arm is not None:
            # a session counts in its arm where its first turn is served, once: not
            # again on every replica (or after every restart) that continues it
            session.arm.tally.sessions += 1
            session.in_arm = True
        session.counted[session.count] = (hash(text), counts)

    def take_back(self, session: EngineSession, start: int, new: list[dict[str, Any]]) -> None:
        """
        Take the turns counted from ``start`` on (an index among all of the session's
        turns, at least ``session.first``) out of the tallies, except those ``new`` (the
        turns from ``start`` on) keeps: a turn served here, then dropped or replaced,
        counts once when it is served again. A turn with a request id stays counted, as
        it was first served: it is served again under that id, uncounted.
        """
        for turn in range(start, session.count):
            if turn not in session.counted:
                continue
            text, counts = session.counted[turn]
            if turn - start >= len(new) or hash(new[turn - start]["text"]) != text:
                del session.counted[turn]
                if "request_id" not in session.turns[turn - session.first]:
                    for tally in _tallies(session):
                        tally.turn(**counts, count=-1)

    def feedback(self, session: EngineSession, items: int, used: int, score: float | None) -> None:
        """
        Count feedback on a window of ``items`` of which the answer used ``used``, and
        its task score, in the session's outcome and its arm's.
        """
        for tally in _tallies(session):
            tally.feedback(items=items, used=used, score=score)

    def end(self, session: EngineSession) -> None:
        """
        Keep the outcome of a session that ends, when it counted a request.
        """
        if session.tally is not None and session.tally.requests:
            self._outcomes[session.id] = self._outcome(session)
            while len(self._outcomes) > MAX_OUTCOMES:
                self._outcomes.popitem(last=False)

    def outcomes(self, live: Iterable[EngineSession]) -> Iterator[SessionOutcome]:
        """
        The outcomes of the sessions that ended, then those of the ``live`` ones so far,
        each worked out as it is reached (of the sessions that had ended, and of
        ``live``, as they were when called).
        """
        ended, sessions = list(self._outcomes.values()), list(live)
        now = (self._outcome(s) for s in sessions if s.tally is not None and s.tally.requests)
        return itertools.chain(ended, now)

    def statistics(self) -> dict[str, ArmStatistics]:
        """
        Each arm's counts so far.
        """
        return {name: arm.tally.statistics() for name, arm in self.arms.items()}

    def _outcome(self, session: EngineSession) -> SessionOutcome:
        assert session.arm is not None and session.tally is not None
        return session.tally.outcome(self.config.name, session.arm.name, session.id)


def _tallies(session: EngineSession) -> list[OutcomeTally]:
    """
    The tallies a request of the session counts in: its own and its arm's, in an
    experiment.
    """
    arm = session.arm.tally if session.arm is not None else None
    return [t for t in (session.tally, arm) if t is not None]

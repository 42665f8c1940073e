"""
Speculative calls: the registry of call keys, the source adapter that lets the
preloader run calls like loads, and the ledger of what was speculated and used.

A speculative call is an ordinary background load of its call key: single-flight, the
source's timeout and concurrency limit, retries, a cool-down for a failing source, and
an error is never cached. Only the registry (:class:`CallBook`) knows which tool and
arguments a key stands for; the adapter (:class:`CallAdapter`) asks the call source.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import MissingItemError
from ._limit import SourceLimit, SourceLoad

if TYPE_CHECKING:
    from ._call import ToolCall
    from ._sources import CallSource

__all__ = [
    "CallAdapter",
    "CallBook",
    "CallStatistics",
    "Moment",
    "SpeculatedCall",
    "SpeculationLedger",
]

logger = logging.getLogger(__name__)

#: Call keys the registry remembers before it forgets the least recent.
MAX_BOOK_ENTRIES = 100_000

#: Speculations a session's ledger keeps (the request path describes its pending ones).
MAX_PER_SESSION = 32

#: When a call was run ahead: after the previous reply, as the request arrived, or
#: after one of the request's own calls (for the calls it makes next).
Moment = Literal["reply", "request", "call"]
#: Each moment, as :meth:`SpeculatedCall.describe` says it.
_WHEN: dict[Moment, str] = {
    "reply": "at the reply",
    "request": "at the request",
    "call": "after a call",
}


class CallBook:
    """
    The calls the engine has seen or speculated, by cache key (least recent forgotten
    first, beyond ``limit``).
    """

    def __init__(self, limit: int = MAX_BOOK_ENTRIES) -> None:
        self.limit = limit
        self._calls: OrderedDict[str, ToolCall] = OrderedDict()

    def add(self, call: ToolCall) -> str:
        """
        Remember ``call``; its key.
        """
        key = call.key
        self._calls[key] = call
        self._calls.move_to_end(key)
        while len(self._calls) > self.limit:
            self._calls.popitem(last=False)
        return key

    def get(self, key: str) -> ToolCall | None:
        """
        The call behind ``key``, if remembered.
        """
        return self._calls.get(key)


class CallAdapter:
    """
    A :class:`~preload.ListingSource` over a call source: it has the keys of the calls
    in the book whose tool the call source knows, and fetching one runs the call. A
    failing tool is logged once (at WARNING), then at DEBUG.

    Args:
        source: The call source.
        book: The registry of call keys.
        on_result: Told of each call's end (its key, the call, and the text it
            returned, or None when it failed), as it ends.
        timed: Told how long each call that returned took, in seconds (through
            :meth:`fetch` or :meth:`call`), and how many other calls of the source
            were running when it started (as the load's limit is).
        load: Where the calls of the source running now are counted, and whose
            limit times them: shared with the adapters of other engines given the
            same source (:func:`~preload.calls.source_load`); None: a load of this
            adapter's calls alone, its limit never moving.
        returned: Told the source's name and the key of each call :meth:`fetch` ran
            that returned (what frees its fleet-wide slot, in the background:
            :meth:`FleetSlots.give_back <preload.calls.FleetSlots.give_back>`).

    .. versionchanged:: 0.25
       ``timed``.
    .. versionchanged:: 0.26
       ``timed`` is told the calls running beside; :attr:`running`.
    .. versionchanged:: 0.27
       ``load``.
    .. versionchanged:: 0.28
       ``returned``.
    """

    def __init__(
        self,
        source: CallSource,
        book: CallBook,
        on_result: Callable[[str, ToolCall, str | None], None] | None = None,
        *,
        timed: Callable[[float, int], None] | None = None,
        load: SourceLoad | None = None,
        returned: Callable[[str, str], None] | None = None,
    ) -> None:
        self.source = source
        self.name = source.name
        self.book = book
        self.on_result = on_result
        self.timed = timed
        self.load = load if load is not None else SourceLoad(SourceLimit(1, tolerance=0))
        self.returned = returned
        self._logged: set[str] = set()

    @property
    def running(self) -> int:
        """
        The calls of the source running now (with a shared ``load``, every engine's).
        """
        return self.load.running

    def __contains__(self, key: object) -> bool:
        call = self.book.get(key) if isinstance(key, str) else None
        return call is not None and self.source.read_only(call.name) is not None

    def category(self, key: str) -> str:
        """
        Call results are working memory.
        """
        return "working_memory"

    async def fetch(self, key: str) -> str:
        """
        Run the call behind ``key``.

        Raises:
            MissingItemError: The book no longer has the key.
            Exception: Whatever the call raised.
        """
        call = self.book.get(key)
        if call is None:
            raise MissingItemError(self.name, key)
        try:
            result = await self.call(call.name, call.args)
        except Exception as exc:
            if call.name not in self._logged:
                self._logged.add(call.name)
                logger.warning(
                    "call source %r: tool %r failed (%r); later failures are logged at DEBUG",
                    self.name,
                    call.name,
                    exc,
                )
            else:
                logger.debug("call source %r: tool %r failed: %r", self.name, call.name, exc)
            if self.on_result is not None:
                self.on_result(key, call, None)
            raise
        if self.on_result is not None:
            self.on_result(key, call, result)
        if self.returned is not None:
            self.returned(self.name, key)
        return result

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """
        Make a call of the source, and tell the load's limit and ``timed`` how long it
        took if it returned, and beside how many others: the loader's calls
        (:meth:`fetch`) and those the engine makes directly.
        """
        load = self.load
        beside = load.running
        load.running += 1
        start = anyio.current_time()
        try:
            result = await self.source.call(name, args)
        finally:
            load.running -= 1
        took = anyio.current_time() - start
        load.limit.timed(took, beside)
        if self.timed is not None:
            self.timed(took, beside)
        return result


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeculatedCall:
    """
    A call the engine ran before it was asked for, and why.

    ``evidence`` tells where each argument's value came from (``user``, ``agent``, an
    earlier call's argument, a default...), as the forecaster gave it; ``status`` is
    ``pending`` until the session makes the call (``used``) or ends (``wasted``).

    .. versionadded:: 0.3
    """

    name: str
    args: Mapping[str, Any]
    p: float
    moment: Moment
    evidence: Mapping[str, str] = field(default_factory=dict)
    status: Literal["pending", "used", "wasted"] = "pending"

    def describe(self) -> str:
        """
        One line: the call, its probability, when and on what evidence.
        """
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        why = ", ".join(f"{k} from {v}" for k, v in self.evidence.items()) or "no evidence"
        when = _WHEN[self.moment]
        return f"{self.name}({args}) p={self.p:.2f} {when} [{self.status}; {why}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStatistics:
    """
    The engine's call counters: what the agent called and what was speculated.

    ``call_hits`` counts read-only calls whose result was warm when asked, and
    ``call_joins`` those that joined a load in flight; ``speculative_used`` counts
    the speculated calls the session made (``used_after_reply``, ``used_at_request``
    and ``used_after_call`` by the moment they were run), ``speculative_wasted`` those it never made, once the
    session ended; ``speculative_skipped`` the likely calls not run for a budget of
    ``[calls]``: the step's (``speculative_skipped_step``, ``max_per_turn``), the
    source's (``speculative_skipped_source``, ``max_in_flight_per_source``: under load,
    what to raise) or the allowance per read-only call
    (``speculative_skipped_allowance``, ``max_per_call``), each counted by the first
    that held it back, or by every replica's together
    (``speculative_skipped_fleet``, ``fleet_max_in_flight_per_source``: the slots the
    replicas share were all taken); of those the source's limit held,
    ``speculative_skipped_slow`` were held while the limit was lowered because the
    source's calls took longer than usual (``calls.source_slowdown``), and
    ``source_limit`` is a gauge: the lowest of the sources' limits now (each
    ``max_in_flight_per_source`` while none is slow).
    ``learned_word_counts`` is a gauge: the word counts the call predictor's models
    hold as of its latest learning (the ones that grow with what sessions say, which
    ``calls.max_vocabulary`` bounds; a shared model's are not counted), about 120 bytes
    each; 0 for a predictor that does not tell (``word_counts()``) or learns nothing.

    .. versionadded:: 0.3
    .. versionchanged:: 0.22
       ``learned_word_counts``.
    .. versionchanged:: 0.23
       ``used_after_call``.
    .. versionchanged:: 0.24
       ``speculative_skipped_step``, ``speculative_skipped_source`` and
       ``speculative_skipped_allowance``.
    .. versionchanged:: 0.25
       ``speculative_skipped_slow`` and ``source_limit``.
    .. versionchanged:: 0.28
       ``speculative_skipped_fleet``.
    """

    calls: int = 0
    read_only_calls: int = 0
    call_hits: int = 0
    call_joins: int = 0
    call_misses: int = 0
    call_failures: int = 0
    speculative: int = 0
    speculative_used: int = 0
    used_after_reply: int = 0
    used_at_request: int = 0
    used_after_call: int = 0
    speculative_wasted: int = 0
    speculative_skipped: int = 0
    speculative_skipped_step: int = 0
    speculative_skipped_source: int = 0
    speculative_skipped_slow: int = 0
    speculative_skipped_fleet: int = 0
    speculative_skipped_allowance: int = 0
    learned_word_counts: int = 0
    source_limit: int = 0


class SpeculationLedger:
    """
    Per session, the calls speculated for it and whether it made them.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, SpeculatedCall]] = {}
        self.used = 0
        self.used_by_moment: dict[Moment, int] = {"reply": 0, "request": 0, "call": 0}
        self.wasted = 0

    def add(self, session: str, key: str, call: SpeculatedCall) -> None:
        """
        Record a speculation. One of the same key still pending was lost before the
        session used it (its result left the cache, or the call failed): it counts as
        wasted, and this one takes its place.
        """
        calls = self._sessions.setdefault(session, {})
        old = calls.pop(key, None)
        self.wasted += old is not None and old.status == "pending"
        calls[key] = call
        while len(calls) > MAX_PER_SESSION:  # the oldest go; unused, they were wasted
            oldest = calls.pop(next(iter(calls)))
            self.wasted += oldest.status == "pending"

    def pending(self, session: str, key: str) -> bool:
        """
        Whether ``session`` has a speculation of ``key`` it has not made yet.
        """
        call = self._sessions.get(session, {}).get(key)
        return call is not None and call.status == "pending"

    def use(self, session: str, key: str) -> SpeculatedCall | None:
        """
        ``session`` made the call ``key``: its pending speculation, now used.
        """
        calls = self._sessions.get(session, {})
        call = calls.get(key)
        if call is None or call.status != "pending":
            return None
        calls[key] = used = replace(call, status="used")
        self.used += 1
        self.used_by_moment[call.moment] += 1
        return used

    def of(self, session: str) -> list[SpeculatedCall]:
        """
        ``session``'s speculations, oldest first.
        """
        return list(self._sessions.get(session, {}).values())

    def end(self, session: str) -> int:
        """
        Forget ``session``; its speculations never used count as wasted (returned).
        """
        calls = self._sessions.pop(session, {})
        wasted = sum(c.status == "pending" for c in calls.values())
        self.wasted += wasted
        return wasted

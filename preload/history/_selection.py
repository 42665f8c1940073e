"""
Choosing what of a history to show within a token budget: greedy maximum coverage.

The most recent exchanges come first, verbatim, within :data:`RECENT_SHARE` of the
budget: the new request may answer the last reply ("yes", "the second one"), which no
fact line holds. Then single facts (the likeliest :data:`MAX_FACTS`) and the other
exchanges at each level (of the latest :data:`MAX_EXCHANGES`) are parts; a part is
worth the likelihoods of the facts it holds that no chosen part holds yet, and parts
are taken by worth per token, with lazy evaluation. Each exchange and each fact left
out gets a :class:`HistoryDecision`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._parts import Exchange, Ledger

__all__ = ["MAX_EXCHANGES", "MAX_FACTS", "RECENT_SHARE", "HistoryDecision", "cover"]

#: The share of the budget the most recent exchanges may take verbatim before the rest
#: is chosen for its facts (``raw_turns`` of them, the newest first, as long as each
#: fits).
RECENT_SHARE = 0.75

#: Facts considered per :meth:`CompressedConversation.get_context`, the likeliest first.
MAX_FACTS = 600

#: Exchanges considered per :meth:`CompressedConversation.get_context`, the latest:
#: older ones are shown through their facts alone, so that choosing a long-lived
#: session's context stops growing with its history.
MAX_EXCHANGES = 200

#: A move of the greedy: ``(-1, fact position, 0)`` lists a fact, ``(exchange, from,
#: to)`` raises an exchange from one level to another.
_Move = tuple[int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryDecision:
    """
    What :meth:`CompressedConversation.get_context` did with one exchange or the facts.

    .. versionadded:: 0.1
    """

    part: str
    level: str
    tokens: int
    reason: str


def cover(
    ledger: Ledger,
    exchanges: Sequence[Exchange],
    worth: dict[str, float],
    ranked: Sequence[str],
    budget: int,
    *,
    terse: bool,
    raw_turns: int,
) -> tuple[list[str], dict[int, int], list[HistoryDecision]]:
    """
    The most recent exchanges verbatim, then greedy maximum coverage by value per
    token (lazy evaluation): the facts to list, each exchange's level (1 condensed, 2
    the user's words, 3 verbatim), and why.

    Args:
        ledger: The facts stated so far.
        exchanges: The exchanges kept, oldest first (each knows its index: the first
            may be past 0, the older ones forgotten).
        worth: How likely each standing fact is to be needed.
        ranked: The facts to consider, by worth per token (at most :data:`MAX_FACTS`).
        budget: Tokens the chosen parts may take (counted part by part).
        terse: Whether the facts are listed without separators.
        raw_turns: The most recent exchanges shown verbatim first, as long as they
            fit within :data:`RECENT_SHARE` of ``budget``.
    """
    greedy = _Greedy(ledger, exchanges, worth, ranked, terse=terse)
    recent = greedy.keep_recent(raw_turns, int(budget * RECENT_SHARE))
    greedy.run(budget - recent)
    return greedy.chosen, greedy.level, greedy.decisions()


class _Greedy:
    """
    The state of one greedy cover: what is chosen, what it holds, the moves left.
    """

    def __init__(
        self,
        ledger: Ledger,
        exchanges: Sequence[Exchange],
        worth: dict[str, float],
        ranked: Sequence[str],
        *,
        terse: bool,
    ) -> None:
        self.ledger = ledger
        self.exchanges = exchanges
        self.first = exchanges[0].index if exchanges else 0  # of exchanges[0]
        self.worth = worth
        self.terse = terse
        self.keys = list(ranked)
        self.covered: set[str] = set()
        self.level: dict[int, int] = {}
        self.chosen: list[str] = []
        self.recent: set[int] = set()  # the exchanges keep_recent showed
        self.heap: list[tuple[float, int, _Move]] = []
        self.serial = 0

    def keep_recent(self, count: int, room: int) -> int:
        """
        Show the last ``count`` exchanges verbatim, the newest first, while they fit
        ``room`` tokens; stop at the first that does not, so that the shown ones are
        the latest in a row. Returns the tokens they take.
        """
        used = 0
        for ex in reversed(self.exchanges[len(self.exchanges) - count :] if count else ()):
            tokens = ex.cost(3)
            if used + tokens > room:
                break
            used += tokens
            self.level[ex.index] = 3
            self.recent.add(ex.index)
            self.covered.update(ex.keys(3))
        return used

    def move(self, cand: _Move) -> tuple[float, int]:
        """
        The gain and the tokens of the move ``cand``, given what is covered.
        """
        return self.gain(cand), self.tokens(cand)

    def tokens(self, cand: _Move) -> int:
        """
        The tokens the move ``cand`` adds.
        """
        i, frm, to = cand
        if i < 0:
            return self.ledger.tokens[self.keys[frm]] - self.terse
        ex = self.exchanges[i - self.first]
        return ex.cost(to) - ex.cost(frm)

    def gain(self, cand: _Move) -> float:
        """
        What the move ``cand`` gains, given what is covered.
        """
        worth, covered = self.worth, self.covered
        i, frm, to = cand
        if i < 0:
            key = self.keys[frm]
            return sum(worth.get(k, 0.0) for k in self.ledger.covers[key] if k not in covered)
        return sum(
            worth.get(k, 0.0) for k in self.exchanges[i - self.first].keys(to) if k not in covered
        )

    def push(self, ratio: float, cand: _Move) -> None:
        """
        Queue the move ``cand`` at its worth per token.
        """
        heapq.heappush(self.heap, (-ratio, self.serial, cand))
        self.serial += 1

    def start(self, budget: int) -> None:
        """
        Queue every move that gains something within ``budget``: each fact, and each
        of the latest :data:`MAX_EXCHANGES` exchanges not shown yet from left out to
        each level.
        """
        cands: list[_Move] = [(-1, pos, 0) for pos in range(len(self.keys))]
        for ex in self.exchanges[-MAX_EXCHANGES:]:
            if ex.index in self.recent:
                continue
            cands.extend((ex.index, 0, lv) for lv in (1, 2, 3))
        for cand in cands:
            tokens = self.tokens(cand)  # first: a long exchange's gain is not summed
            if tokens <= budget and (gain := self.gain(cand)) > 0:
                self.heap.append((-gain / max(1, tokens), self.serial, cand))
                self.serial += 1
        heapq.heapify(self.heap)

    def run(self, budget: int) -> None:
        """
        Take the best move per token while one fits: a move whose gain fell since it
        was queued goes back at its new worth; a raised exchange may still go verbatim.
        """
        self.start(budget)
        heap, level = self.heap, self.level
        used = 0
        while heap:
            _, _, cand = heapq.heappop(heap)
            i, frm, to = cand
            if i >= 0 and level.get(i, 0) != frm:
                if level.get(i, 0) in (1, 2) and to == 3:
                    cand = (i, level[i], 3)
                else:
                    continue
            gain, tokens = self.move(cand)
            if gain <= 0 or used + tokens > budget:
                continue
            ratio = gain / max(1, tokens)
            if heap and ratio < -heap[0][0] - 1e-12:
                self.push(ratio, cand)
                continue
            used += tokens
            self.take(cand, ratio)

    def take(self, cand: _Move, ratio: float) -> None:
        """
        Apply the move ``cand``; an exchange not yet verbatim may be raised again.
        """
        i, frm, to = cand
        if i < 0:
            key = self.keys[frm]
            self.chosen.append(key)
            self.covered.update(self.ledger.covers[key])
        else:
            self.level[i] = to
            self.covered.update(self.exchanges[i - self.first].keys(to))
            if to < 3:
                self.push(ratio, (i, to, 3))

    def decisions(self) -> list[HistoryDecision]:
        """
        Why each exchange considered is in, at which level, or out (the older ones in
        one), and each fact left out.
        """
        ledger = self.ledger
        decisions: list[HistoryDecision] = []
        older = self.first + max(0, len(self.exchanges) - MAX_EXCHANGES)
        if older > 0:
            decisions.append(
                HistoryDecision(
                    part=f"exchanges 0-{older - 1}",
                    level="-",
                    tokens=0,
                    reason=f"left out: older than the latest {MAX_EXCHANGES}; their facts "
                    "stay in the facts line",
                )
            )
        for ex in self.exchanges[-MAX_EXCHANGES:]:
            lv = self.level.get(ex.index, 0)
            if lv == 0:
                reason = "left out: older and no room; its facts stay in the facts line"
            elif ex.index in self.recent:
                reason = "recent, kept verbatim"
            elif lv == 3:
                reason = "kept verbatim"
            elif lv == 2:
                reason = "the user's words verbatim, without the reply"
            else:
                reason = "condensed to its content words"
            decisions.append(
                HistoryDecision(
                    part=f"exchange {ex.index}",
                    level=("-", "compact", "user", "full")[lv],
                    tokens=ex.cost(lv) - (lv > 0),
                    reason=reason,
                )
            )
        decisions.extend(
            HistoryDecision(
                part=f"fact {ledger.facts[key].text!r}",
                level="-",
                tokens=ledger.tokens[key],
                reason="left out: facts worth more per token filled the budget",
            )
            for key in self.keys
            if key not in self.covered
        )
        return decisions

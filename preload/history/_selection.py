"""
Choosing what of a history to show within a token budget: greedy maximum coverage.

Single facts and exchanges at each level are parts; a part is worth the likelihoods of
the facts it holds that no chosen part holds yet (plus, for an exchange, its context
value, recent ones more), and parts are taken by worth per token, with lazy
evaluation. Each exchange and each fact left out gets a :class:`HistoryDecision`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._parts import Exchange, Ledger

__all__ = ["EXCHANGE_VALUE", "MAX_FACTS", "HistoryDecision", "cover"]

#: What showing an exchange is worth beyond the facts it holds (its context), for
#: the last one; halved per exchange back. Index 1 is the condensed level, 2 the
#: user's words verbatim, 3 the whole exchange verbatim. Zero: an exchange is shown
#: for the facts it holds (any context value cost facts on SGD and STAR: at 0.1 for
#: the last exchange verbatim, 25 % budget, SGD 94.4 vs 94.6 %, STAR 91.9 vs 92.8 %).
EXCHANGE_VALUE = (0.0, 0.0, 0.0, 0.0)

#: Facts considered per :meth:`CompressedConversation.get_context`, the likeliest first.
MAX_FACTS = 300

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
    Greedy maximum coverage by value per token (lazy evaluation): the facts to list,
    each exchange's level (1 condensed, 2 the user's words, 3 verbatim), and why.

    Args:
        ledger: The facts stated so far.
        exchanges: The exchanges, oldest first.
        worth: How likely each standing fact is to be needed.
        ranked: The facts to consider, by worth per token (at most :data:`MAX_FACTS`).
        budget: Tokens the chosen parts may take (counted part by part).
        terse: Whether the facts are listed without separators.
        raw_turns: The most recent exchanges, worth more verbatim.
    """
    greedy = _Greedy(ledger, exchanges, worth, ranked, terse=terse, raw_turns=raw_turns)
    greedy.run(budget)
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
        raw_turns: int,
    ) -> None:
        self.ledger = ledger
        self.exchanges = exchanges
        self.worth = worth
        self.terse = terse
        self.raw_turns = raw_turns
        self.last = len(exchanges) - 1
        self.keys = list(ranked)
        self.covered: set[str] = set()
        self.level: dict[int, int] = {}
        self.chosen: list[str] = []
        self.heap: list[tuple[float, int, _Move]] = []
        self.serial = 0

    def context(self, i: int, lv: int) -> float:
        """
        What exchange ``i`` at level ``lv`` is worth beyond its facts.
        """
        age = self.last - i
        boost = 2.0 if age < self.raw_turns and lv == 3 else 1.0
        return EXCHANGE_VALUE[lv] * boost / (1 << min(age, 60))

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
        ex = self.exchanges[i]
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
        gain = sum(worth.get(k, 0.0) for k in self.exchanges[i].keys(to) if k not in covered)
        return gain + (self.context(i, to) - self.context(i, frm))

    def push(self, ratio: float, cand: _Move) -> None:
        """
        Queue the move ``cand`` at its worth per token.
        """
        heapq.heappush(self.heap, (-ratio, self.serial, cand))
        self.serial += 1

    def start(self, budget: int) -> None:
        """
        Queue every move that gains something within ``budget``: each fact, and each
        exchange from left out to each level.
        """
        cands: list[_Move] = [(-1, pos, 0) for pos in range(len(self.keys))]
        for ex in self.exchanges:
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
            self.covered.update(self.exchanges[i].keys(to))
            if to < 3:
                self.push(ratio, (i, to, 3))

    def decisions(self) -> list[HistoryDecision]:
        """
        Why each exchange is in, at which level, or out, and each fact left out.
        """
        ledger = self.ledger
        decisions: list[HistoryDecision] = []
        for ex in self.exchanges:
            lv = self.level.get(ex.index, 0)
            if lv == 0:
                reason = "left out: older and no room; its facts stay in the facts line"
            elif lv == 3:
                reason = "recent, kept verbatim" if ex.index == self.last else "kept verbatim"
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

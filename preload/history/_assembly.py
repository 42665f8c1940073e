"""
The chosen parts of a history joined into its context: the facts in the order they were
said, the text trimmed where the per-part counts fell short of the budget, and topped up
with more facts where they left room.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._tokens import TokenCounter
    from ._parts import Ledger

__all__ = ["TOP_UP", "Line", "in_order", "top_up", "trim"]

#: Facts tried on the joined text when the chosen parts leave room.
TOP_UP = 12


@dataclass(frozen=True, slots=True)
class Line:
    """
    How the facts are listed (``header`` and ``sep``: "Known: a, b" or "a b"), within
    ``budget`` tokens for the whole context.
    """

    header: str
    sep: str
    budget: int

    def of(self, ledger: Ledger, keys: Iterable[str]) -> str:
        """
        The facts line of ``keys``.
        """
        return self.header + self.sep.join(ledger.facts[k].text for k in keys)


def in_order(ledger: Ledger, keys: list[str]) -> list[str]:
    """
    ``keys`` in the order their facts were said, in each turn as said.
    """
    facts, order = ledger.facts, ledger.order
    return sorted(keys, key=lambda k: (facts[k].turn, order[k]))


def trim(
    counter: TokenCounter,
    ledger: Ledger,
    worth: Mapping[str, float],
    parts: list[str],
    facts: list[str],
    line: Line,
) -> str:
    """
    The joined ``parts``, trimmed to the budget where the per-part counts were
    short: the facts worth least first, then the oldest exchanges.
    """
    budget = line.budget
    text = "\n".join(parts)
    by_worth = sorted(facts, key=lambda k: worth.get(k, 0.0))
    while facts and counter.count(text) > budget and len(facts) > 1:
        facts.remove(by_worth.pop(0))
        parts[0] = line.of(ledger, facts)
        text = "\n".join(parts)
    while counter.count(text) > budget and len(parts) > 1:
        parts.pop(1 if facts and len(parts) > 2 else 0)
        text = "\n".join(parts)
    return text


def top_up(
    counter: TokenCounter,
    ledger: Ledger,
    ranked: Sequence[str],
    text: str,
    parts: list[str],
    facts: list[str],
    shown: Iterable[Iterable[str]],
    line: Line,
) -> str:
    """
    Fill what the per-part counts left of the budget with the facts worth most per
    token (``ranked``: by worth per token) that nothing shown holds (the facts listed,
    the exchanges ``shown``), each checked on the joined text.
    """
    budget = line.budget
    covered: set[str] = set()
    for key in facts:
        covered.update(ledger.covers[key])
    for keys in shown:
        covered.update(keys)
    room = budget - counter.count(text)
    if room < 1:
        return text
    # What is covered or too long now stays so (covered only grows, room only
    # shrinks), so those facts are passed over as they come.
    tries = 0
    for key in ranked:
        if tries >= TOP_UP:
            break
        if key in covered or ledger.tokens[key] - 1 > room:
            continue
        tries += 1
        trial = in_order(ledger, [*facts, key])
        listed = line.of(ledger, trial)
        joined = "\n".join([listed, *parts[1:]] if facts else [listed, *parts])
        tokens = counter.count(joined)
        if tokens <= budget:
            if not facts:
                parts.insert(0, listed)
            else:
                parts[0] = listed
            facts[:] = trial
            covered.update(ledger.covers[key])
            text, room = joined, budget - tokens
            if room < 1:
                break
    return text

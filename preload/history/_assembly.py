"""
The chosen parts of a history joined into its context: the facts in the order they were
said, the text trimmed where the per-part counts fell short of the budget, and topped up
with more facts where they left room.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._tokens import TokenCounter
    from ._parts import Ledger

__all__ = ["TOP_UP", "Line", "fewest", "in_order", "top_up", "trim"]

#: The most facts taken (put back ones included) when the chosen parts leave room.
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
    short: the fewest of the facts worth least (one fact staying), then the oldest
    exchanges. How many facts go is first guessed from their own tokens and the
    excess, then found by doubling and halving from the guess, so that the joined text
    is counted a few times, not once for each fact that goes (a long history's facts
    line is over its budget by a dozen facts or more).
    """
    budget = line.budget
    text = "\n".join(parts)
    excess = counter.count(text) - budget
    if excess > 0 and len(facts) > 1:
        by_worth = sorted(facts, key=lambda k: worth.get(k, 0.0))
        texts: dict[int, str] = {}

        def fits(gone: int) -> bool:
            left = set(by_worth[gone:])
            parts[0] = line.of(ledger, [k for k in facts if k in left])
            texts[gone] = "\n".join(parts)
            return counter.count(texts[gone]) <= budget

        saved = itertools.accumulate(ledger.tokens[k] for k in by_worth[:-1])
        guess = next((n for n, s in enumerate(saved, 1) if s >= excess), len(facts) - 1)
        gone = fewest(fits, guess, len(facts) - 1)
        left = set(by_worth[gone:])
        facts[:] = [k for k in facts if k in left]
        text = texts.get(gone) or "\n".join(parts)
        parts[0] = line.of(ledger, facts)
    while counter.count(text) > budget and len(parts) > 1:
        parts.pop(1 if facts and len(parts) > 2 else 0)
        text = "\n".join(parts)
    return text


def fewest(fits: Callable[[int], bool], guess: int, most: int) -> int:
    """
    The smallest ``n`` in 1..``most`` for which ``fits(n)`` holds (``fits`` is taken to
    hold from some ``n`` on), or ``most`` if it never does: from ``guess``, by doubling
    steps away from it and then halving, so that a good guess costs two or three calls.
    """
    guess = max(1, min(guess, most))
    if fits(guess):
        bad, good, step = 0, guess, 1
        while good - step > bad:
            if not fits(good - step):
                bad = good - step
                break
            good -= step
            step *= 2
    else:
        bad, step = guess, 1
        while True:
            at = min(guess + step, most)
            if fits(at):
                good = at
                break
            if at == most:
                return most
            bad, step = at, step * 2
    while good - bad > 1:
        mid = (bad + good) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


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
    the exchanges ``shown``), the joined text checked against the budget.
    """
    budget = line.budget
    covered: set[str] = set()
    for key in facts:
        covered.update(ledger.covers[key])
    for keys in shown:
        covered.update(keys)
    tokens = counter.count(text)
    # Facts are taken by their own tokens (each with its separator), and the joined
    # text is counted once a round: a fact whose tokens merged less well than counted
    # alone is put back, the last taken first; a round that left room takes more.
    # Counting the joined text for each fact would tokenize the whole history up to
    # TOP_UP times on the request's path.
    tries = 0
    while tries < TOP_UP and budget - tokens >= 1:
        header = 0 if facts else counter.count(line.header) + 1  # a facts line to start
        taken = _taken(ledger, ranked, covered, budget - tokens, TOP_UP - tries, header)
        tries += len(taken)
        while taken:
            trial = in_order(ledger, [*facts, *taken])
            listed = line.of(ledger, trial)
            joined = "\n".join([listed, *parts[1:]] if facts else [listed, *parts])
            count = counter.count(joined)
            if count <= budget:
                if not facts:
                    parts.insert(0, listed)
                else:
                    parts[0] = listed
                facts[:] = trial
                for key in taken:
                    covered.update(ledger.covers[key])
                text, tokens = joined, count
                break
            taken.pop()
        else:
            break  # nothing more fits
    return text


def _taken(
    ledger: Ledger,
    ranked: Sequence[str],
    covered: set[str],
    room: int,
    most: int,
    header: int,
) -> list[str]:
    """
    Up to ``most`` facts of ``ranked``, in order, that nothing covers and whose own
    tokens (with a separator; the first with ``header`` more) fit ``room``.
    """
    taken: list[str] = []
    inside: set[str] = set()
    for key in ranked:
        if len(taken) >= most:
            break
        cost = ledger.tokens[key] + (0 if taken else header)
        if key in covered or key in inside or cost - 1 > room:
            continue
        taken.append(key)
        inside.update(ledger.covers[key])
        room -= cost
    return taken

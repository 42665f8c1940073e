"""
The session's own history, compressed: recent turns raw, older ones condensed, and
the facts the user and the agent stated kept until superseded.

:class:`CompressedConversation` keeps every exchange at three levels (``full``, the
user's words alone, and a ``compact`` one without filler words) and a ledger of stated
facts: names, places, dates, times, numbers, the phrases they form ("place of worship",
"5th and main"), the user's short answers and statements in their own words, a bare
yes or no tied to the question it answers, and the content words the user picked.
The fact model (:mod:`._fact_model`) says how likely the next tool call is to need
each fact. :meth:`~CompressedConversation.get_context` spends a token budget by greedy
maximum coverage (:mod:`._selection`). The facts go on one ``Known: a, b, c`` line, or,
under ``TERSE`` tokens, as a bare keyword list (separators would take a third of it).
The returned text never exceeds the budget.

A fact is superseded when a later user turn corrects it ("actually", "instead",
"change it to", "make it", ...) with a new name, date, time or number within a few
exchanges; a superseded fact stays in the ledger, much less likely to be shown.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from .._config import TokensConfig
from .._tokens import TiktokenCounter
from ..compression._truncation import cut_at_word
from ._answers import YES_NO, answers, statements
from ._fact_model import StandingFact, feature_rows, likelihoods
from ._facts import Fact, extract_facts
from ._parts import Exchange, Ledger
from ._selection import HistoryDecision, cover
from ._words import WORD, norm

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["CompressedConversation"]

_CORRECTION = re.compile(
    r"\b(?:instead|change (?:it|that) to|make it|not\s+\w+\s*,?\s*but|I meant|correction)\b",
    re.IGNORECASE,
)

#: The kinds of facts a correction supersedes ("actually, make it 8 pm"), and how
#: many exchanges back the fact it corrects may be.
_VALUES = frozenset(("name", "time", "date", "number"))
CORRECTS = 3

#: Budgets (tokens) below which the facts are listed without separators.
TERSE = 100

#: Facts tried on the joined text when the chosen parts leave room.
TOP_UP = 12

#: A fact stated in an exchange: who stated it, its text and its kind.
_Stated = tuple[str, str, str]


def _default_counter() -> TiktokenCounter:
    """
    The tiktoken counter of the default configuration.
    """
    tokens = TokensConfig()
    return TiktokenCounter(tokens.encoding, cache_size=tokens.cache_size)


class CompressedConversation:
    """
    A conversation's history within a token budget.

    Args:
        max_tokens: The most tokens :meth:`get_context` ever returns (a cap on
            ``available_tokens``).
        counter: Counts tokens (the real tokenizer); by default a
            :class:`~preload.TiktokenCounter` with the encoding and cache size of
            :class:`~preload.TokensConfig`'s defaults.
        raw_turns: Exchanges worth showing verbatim first (the most recent ones).
        exact_items: Kept for compatibility; the choice is a coverage greedy.

    Example::

        history = CompressedConversation(1500, counter=TiktokenCounter())
        history.add_exchange("Book a table at Rintaro for 4 at 7 pm", "Done.")
        prompt_history = history.get_context(available_tokens=300)

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``counter`` is optional.
    """

    def __init__(
        self,
        max_tokens: int,
        *,
        counter: TokenCounter | None = None,
        raw_turns: int = 2,
        exact_items: int = 8,
    ) -> None:
        self.max_tokens = max_tokens
        self.counter: TokenCounter = counter if counter is not None else _default_counter()
        self.raw_turns = raw_turns
        self.exact_items = exact_items
        self._exchanges: list[Exchange] = []
        self._ledger = Ledger()
        self._full: tuple[str, int] = ("", 0)  # the whole history verbatim, its tokens
        self._worth: dict[str, float] = {}  # of each standing fact, by the fact model
        self.decisions: tuple[HistoryDecision, ...] = ()

    def __len__(self) -> int:
        return len(self._exchanges)

    @property
    def tokens(self) -> int:
        """
        Tokens of the whole history verbatim (about: exchanges counted one by one).
        """
        return sum(ex.full_tokens + 1 for ex in self._exchanges)

    @property
    def facts(self) -> list[Fact]:
        """
        Every fact stated so far, superseded ones included, oldest mention first.
        """
        return sorted(self._ledger.facts.values(), key=lambda f: f.turn)

    def standing_facts(self) -> list[StandingFact]:
        """
        Every fact of the ledger with its key, the keys it holds and the features the
        fact model scores it by, in the ledger's order.

        .. versionadded:: 0.2
        """
        ledger = self._ledger
        return [
            StandingFact(
                key=key,
                fact=ledger.facts[key],
                holds=frozenset(ledger.covers[key]),
                features=tuple(row),
            )
            for key, row in self._feature_rows().items()
        ]

    def add_exchange(self, user: str, agent: str = "") -> None:
        """
        Record one exchange: the user's request and the agent's reply.
        """
        index = len(self._exchanges)
        question = self._exchanges[-1].full if self._exchanges else ""
        asked = "?" in question.rpartition("\nAssistant: ")[2]
        self._exchanges.append(Exchange.of(index, user, agent, self.counter, self._ledger.facts))
        if YES_NO.match(user) and not user.lower().lstrip(" \t\"'").startswith("n"):
            self._accept_offers(index)
        said_in = {"user": len(WORD.findall(user)), "agent": len(WORD.findall(agent))}
        correcting = bool(_CORRECTION.search(user))
        for role, value, kind in _stated(user, agent, question):
            key = norm(value)
            if not key:
                continue
            if correcting and role == "user" and kind in _VALUES:
                self._supersede(key, value, kind, index)
            self._record(
                key,
                value,
                kind,
                role=role,
                index=index,
                answered=role == "user" and asked,
                said_in=said_in[role],
            )
        # Scored and counted here, where the history changes (the engine records
        # exchanges in the background), not in get_context on the request path.
        self._worth = likelihoods(self._feature_rows())
        text = "\n".join(ex.full for ex in self._exchanges)
        self._full = (text, self.counter.count(text))

    def _accept_offers(self, index: int) -> None:
        """
        The user took what the agent offered in the last reply.
        """
        facts = self._ledger.facts
        for old_key, old in facts.items():
            if old.turn == index - 1 and old.role == "agent" and not old.accepted:
                facts[old_key] = replace(old, accepted=True)

    def _supersede(self, key: str, value: str, kind: str, index: int) -> None:
        """
        A new ``value`` the user corrects to supersedes the latest standing fact of its
        kind stated at most :data:`CORRECTS` exchanges back.
        """
        facts = self._ledger.facts
        if key in facts:
            return
        for old_key, old in sorted(facts.items(), key=lambda kv: kv[1].turn, reverse=True):
            if index - old.turn > CORRECTS:
                break
            if old.kind == kind and old.superseded_by is None:
                facts[old_key] = replace(old, superseded_by=value)
                break

    def _record(
        self,
        key: str,
        value: str,
        kind: str,
        *,
        role: str,
        index: int,
        answered: bool,
        said_in: int,
    ) -> None:
        """
        Enter a fact stated in exchange ``index`` into the ledger; a fact said again
        keeps who stated it first and how, and counts the mention.
        """
        facts = self._ledger.facts
        prior = facts.pop(key, None)
        who, what, mentions = role, kind, 1
        echoed, accepted = False, False
        if prior is not None and prior.superseded_by is None:
            who = "user" if "user" in (prior.role, role) else role
            what = prior.kind if prior.kind != "choice" else kind
            mentions = prior.mentions + (prior.turn != index)
            echoed = prior.echoed or prior.role != role
            answered = answered or prior.answered
            accepted = prior.accepted
        facts[key] = Fact(
            text=value,
            kind=what,
            turn=index,
            role=who,
            mentions=mentions,
            echoed=echoed,
            answered=answered,
            accepted=accepted,
            said_in=said_in,
        )
        if prior is None:
            self._index(key, value)

    def _index(self, key: str, value: str) -> None:
        """
        Record which exchanges and which other facts hold the new fact ``key``.
        """
        ledger = self._ledger
        ledger.tokens[key] = self.counter.count(value) + 1  # with its separator
        padded = f" {key} "
        inside = {key}
        for other, covered in ledger.covers.items():
            if padded in f" {other} ":
                covered.add(key)
            elif f" {other} " in padded:
                inside.add(other)
        ledger.covers[key] = inside
        for ex in self._exchanges:
            if padded in ex.norm_full:
                ex.keys_full.add(key)
                if padded in ex.norm_compact:
                    ex.keys_compact.add(key)
                if padded in ex.norm_user:
                    ex.keys_user.add(key)

    def _feature_rows(self) -> dict[str, list[float]]:
        """
        The fact model's features of each standing fact, by key.
        """
        ledger = self._ledger
        return feature_rows(ledger.facts, ledger.covers, len(self._exchanges) - 1)

    def get_context(self, available_tokens: int) -> str:
        """
        The history as prompt text within ``min(available_tokens, max_tokens)`` tokens.

        Everything verbatim when it fits. Otherwise the parts that hold the most
        likely-needed facts per token, chosen greedily (the facts a part holds count
        once, whichever part holds them): single facts on one ``Known:`` line, and
        exchanges condensed or verbatim (worth their facts plus their context, recent
        ones more). Why each part is in, at which level, or out is in
        :attr:`decisions` afterwards.
        """
        budget = max(0, min(available_tokens, self.max_tokens))
        if budget == 0 or not self._exchanges:
            self.decisions = ()
            return ""
        full_text, full_tokens = self._full
        if full_tokens <= budget:
            self.decisions = (
                HistoryDecision(part="all", level="full", tokens=full_tokens, reason="fits"),
            )
            return full_text
        # Below TERSE tokens the facts are a bare keyword list (no separators: they
        # would take a third of it); above it they are a "Known: a, b, c" line.
        terse = budget < TERSE
        header, sep = ("", " ") if terse else ("Known: ", ", ")
        head = self.counter.count(header) if header else 0
        worth = self._worth
        chosen, levels, decisions = cover(
            self._ledger,
            self._exchanges,
            worth,
            budget - head,
            terse=terse,
            raw_turns=self.raw_turns,
        )
        facts = self._in_order(chosen)
        parts: list[str] = []
        if facts:
            parts.append(header + sep.join(self._ledger.facts[k].text for k in facts))
        parts.extend(self._exchanges[i].text(level) for i, level in sorted(levels.items()))
        text = self._trim(parts, facts, budget, header, sep)
        if self.counter.count(text) > budget:
            text = cut_at_word(text, budget, self.counter)
        else:
            text = self._top_up(text, parts, facts, levels, budget, header, sep)
        if facts:
            decisions.append(
                HistoryDecision(
                    part="facts",
                    level="facts",
                    tokens=self.counter.count(parts[0]),
                    reason=f"{len(facts)} stated facts the shown exchanges do not hold",
                )
            )
        self.decisions = tuple(decisions)
        return text

    def _in_order(self, keys: list[str]) -> list[str]:
        """
        ``keys`` in the order their facts were said, in each turn as said.
        """
        facts = self._ledger.facts
        order = {k: i for i, k in enumerate(facts)}
        return sorted(keys, key=lambda k: (facts[k].turn, order[k]))

    def _trim(self, parts: list[str], facts: list[str], budget: int, header: str, sep: str) -> str:
        """
        The joined ``parts``, trimmed to the budget where the per-part counts were
        short: the facts worth least first, then the oldest exchanges.
        """
        counter, worth = self.counter, self._worth
        text = "\n".join(parts)
        by_worth = sorted(facts, key=lambda k: worth.get(k, 0.0))
        while facts and counter.count(text) > budget and len(facts) > 1:
            facts.remove(by_worth.pop(0))
            parts[0] = header + sep.join(self._ledger.facts[k].text for k in facts)
            text = "\n".join(parts)
        while counter.count(text) > budget and len(parts) > 1:
            parts.pop(1 if facts and len(parts) > 2 else 0)
            text = "\n".join(parts)
        return text

    def _top_up(
        self,
        text: str,
        parts: list[str],
        facts: list[str],
        levels: dict[int, int],
        budget: int,
        header: str,
        sep: str,
    ) -> str:
        """
        Fill what the per-part counts left of the budget with the facts worth most per
        token that nothing shown holds, each checked on the joined text.
        """
        ledger = self._ledger
        counter, worth = self.counter, self._worth
        covered: set[str] = set()
        for key in facts:
            covered |= ledger.covers[key]
        for i, lv in levels.items():
            covered |= self._exchanges[i].keys(lv)
        room = budget - counter.count(text)
        if room < 1:
            return text
        rest = sorted(
            (k for k in worth if k not in covered and ledger.tokens[k] - 1 <= room),
            key=lambda k: -worth[k] / ledger.tokens[k],
        )
        tries = 0
        for key in rest:
            if key in covered or tries >= TOP_UP or ledger.tokens[key] - 1 > room:
                continue
            tries += 1
            trial = self._in_order([*facts, key])
            line = header + sep.join(ledger.facts[k].text for k in trial)
            joined = "\n".join([line, *parts[1:]] if facts else [line, *parts])
            tokens = counter.count(joined)
            if tokens <= budget:
                if not facts:
                    parts.insert(0, line)
                else:
                    parts[0] = line
                facts[:] = trial
                covered |= ledger.covers[key]
                text, room = joined, budget - tokens
                if room < 1:
                    break
        return text

    def explain(self) -> str:
        """
        The last :meth:`get_context`'s decisions, one a line.
        """
        return "\n".join(
            f"{d.part}: {d.level} ({d.tokens} tok) - {d.reason}" for d in self.decisions
        )


def _stated(user: str, agent: str, question: str) -> list[_Stated]:
    """
    The facts an exchange states, the user's first: their facts, their answer to the
    agent's ``question``, their statements, then the agent's facts.
    """
    stated = [("user", v, k) for v, k in extract_facts(user)]
    stated += [("user", v, k) for v, k in answers(user, question)]
    stated += [("user", v, "sentence") for v in statements(user)]
    stated += [("agent", v, k) for v, k in extract_facts(agent)]
    return stated

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

A history over its budget forgets what it can no longer show, so that recording an
exchange and choosing the context stop growing with a long session: once it holds
twice :data:`~._selection.MAX_EXCHANGES` exchanges (the latest of which alone are ever
considered) or twice :data:`KEPT_FACTS` facts, it keeps the latest ``MAX_EXCHANGES``
exchanges and the :data:`KEPT_FACTS` facts likeliest to be needed per token (and those
of the last :data:`CORRECTS` exchanges, which a correction may supersede).

A fact is superseded when a later user turn corrects it ("actually", "instead",
"change it to", "make it", ...) with a new name, date, time or number within a few
exchanges; a superseded fact stays in the ledger, much less likely to be shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .._config import TokensConfig
from .._tokens import TiktokenCounter
from ..compression._truncation import cut_at_word
from . import _selection
from ._answers import replied
from ._assembly import Line, in_order, top_up, trim
from ._fact_model import Scorer, StandingFact, feature_rows
from ._facts import Fact
from ._parts import Exchange, Ledger
from ._prepared import PreparedExchange, Stated, prepare
from ._selection import MAX_FACTS, HistoryDecision, cover
from ._words import norm

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._tokens import TokenCounter
    from ._matching import KeyParts
    from ._parts import Levels

__all__ = ["CompressedConversation"]

#: The kinds of facts a correction supersedes ("actually, make it 8 pm"), and how
#: many exchanges back the fact it corrects may be.
_VALUES = frozenset(("name", "time", "date", "number"))
CORRECTS = 3

#: Budgets (tokens) below which the facts are listed without separators.
TERSE = 100

#: The facts a history over its budget keeps when it forgets, the likeliest to be
#: needed per token (of which the first ``MAX_FACTS`` are ever considered).
KEPT_FACTS = 2 * MAX_FACTS


def _default_counter() -> TiktokenCounter:
    """
    The tiktoken counter of the default configuration.
    """
    tokens = TokensConfig()
    return TiktokenCounter(
        tokens.encoding, cache_size=tokens.cache_size, cache_chars=tokens.cache_chars
    )


class CompressedConversation:
    """
    A conversation's history within a token budget.

    Args:
        max_tokens: The most tokens :meth:`get_context` ever returns (a cap on
            ``available_tokens``).
        counter: Counts tokens (the real tokenizer); by default a
            :class:`~preload.TiktokenCounter` with the encoding and cache size of
            :class:`~preload.TokensConfig`'s defaults.
        raw_turns: The latest exchanges shown verbatim first once the history is over
            its budget, the newest first, as long as they fit three quarters of it.
        exact_items: Kept for compatibility; the choice is a coverage greedy.

    Example::

        history = CompressedConversation(1500, counter=TiktokenCounter())
        history.add_exchange("Book a table at Rintaro for 4 at 7 pm", "Done.")
        prompt_history = history.get_context(available_tokens=300)

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``counter`` is optional.
    .. versionchanged:: 0.13
        Over budget, the last ``raw_turns`` exchanges are shown verbatim first (they
        were chosen for their facts alone, so the last reply was almost never shown).
    .. versionchanged:: 0.14
        Over its budget, a long history forgets the exchanges and facts it can no
        longer show (see the module): recording one stops growing with the session.
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
        self._exchanges: list[Exchange] = []  # the latest, kept
        self._first = 0  # the index of the first exchange kept
        self._ledger = Ledger()
        # The whole history verbatim and its tokens; None once over max_tokens (as it
        # was when it went over: _whole_cap).
        self._whole: tuple[str, int] | None = ("", 0)
        self._whole_cap = max_tokens
        # word -> the exchanges that hold it, once the ledger is indexed
        self._where: dict[str, list[int]] | None = None
        self._worth: dict[str, float] = {}  # of each standing fact, by the fact model
        self._ranked: list[str] = []  # the standing facts by worth per token
        self._scored = True  # _worth and _ranked are of the facts as they stand
        self._asked = max_tokens  # the last budget get_context was given
        # The last context chosen over budget, for (budget, max_tokens), with its
        # decisions, while no exchange came since: made ready when an exchange is
        # recorded (in the engine's background) for the budget asked last.
        self._chosen: tuple[int, int, str, tuple[HistoryDecision, ...]] | None = None
        self._scorer = Scorer()
        self.decisions: tuple[HistoryDecision, ...] = ()

    def __len__(self) -> int:
        """
        The exchanges recorded, those forgotten included.
        """
        return self._first + len(self._exchanges)

    @property
    def kept_exchanges(self) -> int:
        """
        How many exchanges the history holds: the latest; over its budget it forgets
        the older ones it can no longer show.

        .. versionadded:: 0.14
        """
        return len(self._exchanges)

    @property
    def tokens(self) -> int:
        """
        Tokens of the exchanges kept, verbatim (about: counted one by one).
        """
        return sum(ex.full_tokens + 1 for ex in self._exchanges)

    @property
    def facts(self) -> list[Fact]:
        """
        Every fact kept, superseded ones included, oldest mention first.
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

    def prepare(self, user: str, agent: str = "") -> PreparedExchange:
        """
        The exchange of ``user``'s request and ``agent``'s reply, ready for
        :meth:`add_prepared`: the work that grows with the texts (their levels and
        tokens, the facts they state, where each occurs). It reads and changes nothing
        of the conversation (only :attr:`counter`, which must be safe to use from a
        worker thread, as :class:`~preload.TiktokenCounter` is), so it may run in one
        while the event loop keeps using the conversation::

            prepared = await anyio.to_thread.run_sync(history.prepare, user, agent)
            history.add_prepared(prepared)

        .. versionadded:: 0.2
        """
        return prepare(user, agent, self.counter)

    def add_prepared(self, prepared: PreparedExchange, *, score: bool = True) -> None:
        """
        Record an exchange :meth:`prepare` made ready (with this conversation's
        counter): enter its facts into the ledger and score them. Its cost grows with
        the facts, not with the length of the texts.

        Args:
            prepared: The exchange.
            score: Score the standing facts now (when the history no longer fits its
                last budget), else with the next exchange added or the next
                :meth:`get_context`: scoring grows with the facts so far, so a caller
                that adds many exchanges in a row scores with the last alone.

        .. versionadded:: 0.2
        .. versionchanged:: 0.13
           ``score``.
        """
        index = len(self)
        ledger = self._ledger
        before = self._exchanges[-1].levels if self._exchanges else None
        asked = before is not None and before.asks
        exchange = Exchange(index, prepared.levels)
        self._hold_known(exchange)
        self._exchanges.append(exchange)
        if prepared.accepts:
            self._accept_offers(index)
        ledger.forget_before(index - CORRECTS)
        said_in = dict(zip(("user", "agent"), prepared.said_in, strict=True))
        for role, value, kind, key in self._stated(prepared, before):
            if prepared.correcting and role == "user" and kind in _VALUES:
                self._supersede(key, value, kind, index)
            self._record(
                key,
                value,
                kind,
                role=role,
                index=index,
                answered=role == "user" and asked,
                said_in=said_in[role],
                prepared=prepared,
            )
        if self._where is not None:
            for word in exchange.levels.distinct_words():
                self._where.setdefault(word, []).append(index)
        # Counted, scored and chosen here, where the history changes (the engine
        # records exchanges in the background), not in get_context on the request
        # path; but scored only when the last budget asked (max_tokens before any) is
        # below the whole history: a context that fits returns it verbatim and reads
        # no score, as every one did in the SGD and STAR dev replays. Another budget
        # than the last one scores and chooses once in get_context.
        self._join(exchange)
        self._scored = False
        self._chosen = None
        if self._whole is None and (
            len(self._exchanges) > 2 * _selection.MAX_EXCHANGES
            or len(ledger.facts) > 2 * KEPT_FACTS
        ):
            self._forget()
        if score and (self._whole is None or self._whole[1] > self._asked):
            self._score()
            # and chosen for the budget asked last, which the next request most likely
            # asks again: choosing grows with the history (about 20 ms for 1,000
            # exchanges), and the request path then reads it ready
            self.get_context(self._asked)

    def add_exchange(self, user: str, agent: str = "", *, score: bool = True) -> None:
        """
        Record one exchange: the user's request and the agent's reply. The same as
        ``add_prepared(prepare(user, agent), score=score)``.

        .. versionchanged:: 0.13
           ``score``.
        """
        self.add_prepared(self.prepare(user, agent), score=score)

    @staticmethod
    def _stated(prepared: PreparedExchange, before: Levels | None) -> list[Stated]:
        """
        The facts the exchange states, with the bare yes or no tied to the question of
        the exchange ``before`` in its place.
        """
        stated = prepared.stated
        if prepared.reply is None or before is None:
            return list(stated)
        at = prepared.reply_at
        tied = [("user", v, k, norm(v)) for v, k in replied(before.topic, prepared.reply)]
        return [*stated[:at], *(s for s in tied if s[3]), *stated[at:]]

    def _hold_known(self, exchange: Exchange) -> None:
        """
        Which of the facts known so far each level of the new ``exchange`` holds, in
        the ledger's order: looked up one by one, or, when the ledger has more facts
        than the exchange has words, found by walking its words.
        """
        ledger, levels = self._ledger, exchange.levels
        facts = ledger.facts
        index = ledger.index
        if index is None or len(facts) <= levels.full_words + levels.compact_words:
            for key in facts:
                full, short, user = levels.holds(key)
                if full:
                    exchange.keys_full[key] = None
                if short:
                    exchange.keys_compact[key] = None
                if user:
                    exchange.keys_user[key] = None
            return
        words = levels.norm_full.split()
        found = (
            index.runs(levels.norm_compact.split()),
            index.runs(words, upto=levels.user_words),
            index.runs(words),
        )
        order = ledger.order.__getitem__
        for held, keys in zip(
            found, (exchange.keys_compact, exchange.keys_user, exchange.keys_full), strict=True
        ):
            for key in sorted(held, key=order):
                keys[key] = None

    def _accept_offers(self, index: int) -> None:
        """
        The user took what the agent offered in the last reply.
        """
        facts = self._ledger.facts
        offered: list[str] = []
        for key in reversed(facts):  # the latest turns last: stop before the one asked
            old = facts[key]
            if old.turn < index - 1:
                break
            if old.turn == index - 1 and old.role == "agent" and not old.accepted:
                offered.append(key)
        for key in offered:
            facts[key] = replace(facts[key], accepted=True)

    def _supersede(self, key: str, value: str, kind: str, index: int) -> None:
        """
        A new ``value`` the user corrects to supersedes the latest standing fact of its
        kind stated at most :data:`CORRECTS` exchanges back.
        """
        facts = self._ledger.facts
        if key in facts:
            return
        old_key = self._ledger.latest(kind, range(index, index - CORRECTS - 1, -1))
        if old_key is not None:
            facts[old_key] = replace(facts[old_key], superseded_by=value)

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
        prepared: PreparedExchange,
    ) -> None:
        """
        Enter a fact stated in exchange ``index`` into the ledger; a fact said again
        keeps who stated it first and how, and counts the mention.
        """
        ledger = self._ledger
        prior = ledger.facts.get(key)
        who, what, mentions = role, kind, 1
        echoed, accepted = False, False
        if prior is not None and prior.superseded_by is None:
            who = "user" if "user" in (prior.role, role) else role
            what = prior.kind if prior.kind != "choice" else kind
            mentions = prior.mentions + (prior.turn != index)
            echoed = prior.echoed or prior.role != role
            answered = answered or prior.answered
            accepted = prior.accepted
        fact = Fact(
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
        ledger.enter(key, fact, correctable=what in _VALUES)
        if prior is None:
            known = prepared.keys.get(key)
            if known is not None:
                self._index(key, *known)
            else:  # the yes or no tied to the last question
                tokens = self.counter.count(value) + 1
                self._index(key, tokens, prepared.levels.holds(key), None)

    def _index(
        self, key: str, tokens: int, holds: tuple[bool, bool, bool], parts: KeyParts | None
    ) -> None:
        """
        Record which exchanges and which other facts hold the new fact ``key``; the
        new exchange holds it as ``holds`` says (full, compact, user level).
        """
        self._ledger.add_key(key, tokens, parts)
        exchanges = self._exchanges
        full, short, user = holds
        if full:
            last = exchanges[-1]
            last.keys_full[key] = None
            if short:
                last.keys_compact[key] = None
            if user:
                last.keys_user[key] = None
        for i in self._holders(key):
            holder = exchanges[i - self._first]
            levels = holder.levels
            at = levels.find_full(key)
            if at < 0:
                continue
            holder.keys_full[key] = None
            if levels.find_compact(key) >= 0:
                holder.keys_compact[key] = None
            if at + len(key) + 2 <= levels.user_chars:
                holder.keys_user[key] = None

    def _holders(self, key: str) -> Sequence[int]:
        """
        The earlier exchanges that may hold ``key``: all of them while the ledger is
        small, then those with its rarest word.
        """
        if self._ledger.index is None:
            return range(self._first, len(self) - 1)
        where = self._where
        if where is None:
            where = self._where = {}
            for ex in self._exchanges[:-1]:
                for word in ex.levels.distinct_words():
                    where.setdefault(word, []).append(ex.index)
        best: list[int] | None = None
        for word in key.split(" "):
            found = where.get(word)
            if found is None:
                return []
            if best is None or len(found) < len(best):
                best = found
        return best or []

    def _score(self) -> None:
        """
        The worth of each standing fact by the fact model, and the facts in order of
        worth per token (what :meth:`get_context` considers first).
        """
        ledger = self._ledger
        worth = self._scorer.worth(ledger.facts, ledger.covers, ledger.inside, len(self) - 1)
        tokens = ledger.tokens
        self._worth = worth
        self._ranked = sorted(worth, key=lambda k: -worth[k] / tokens[k])
        self._scored = True

    def _forget(self) -> None:
        """
        Forget what the history can no longer show: the exchanges before the latest
        ``MAX_EXCHANGES`` (the only ones :func:`~._selection.cover` considers), and the
        facts but the :data:`KEPT_FACTS` likeliest per token and those of the last
        :data:`CORRECTS` exchanges. Its cost grows with what is kept; it comes once in
        at least ``MAX_EXCHANGES`` exchanges or ``KEPT_FACTS`` new facts.
        """
        self._score()
        ledger = self._ledger
        keep = set(self._ranked[:KEPT_FACTS])
        recent = len(self) - 1 - CORRECTS
        for key in reversed(ledger.facts):  # by the turn of their last mention
            if ledger.facts[key].turn < recent:
                break
            keep.add(key)
        cut = max(0, len(self._exchanges) - _selection.MAX_EXCHANGES)
        self._exchanges = self._exchanges[cut:]
        self._first += cut
        ledger.keep(keep)
        for ex in self._exchanges:
            ex.keys_full = {k: None for k in ex.keys_full if k in keep}
            ex.keys_compact = {k: None for k in ex.keys_compact if k in keep}
            ex.keys_user = {k: None for k in ex.keys_user if k in keep}
        self._scorer.keep(keep)
        self._where = None  # rebuilt from the exchanges kept when next needed
        self._scored = False

    def _join(self, exchange: Exchange) -> None:
        """
        The whole history verbatim and its tokens, while it may fit ``max_tokens``.
        A longer history never takes fewer tokens, so once it is over, it stays over
        and is no longer joined and counted (which would grow with the history).
        """
        if self._whole is None:
            return
        levels, cap = exchange.levels, self.max_tokens
        self._whole_cap = cap
        if levels.full_tokens > cap:
            self._whole = None
            return
        text = f"{self._whole[0]}\n{levels.full}" if len(self._exchanges) > 1 else levels.full
        tokens = self.counter.count(text)
        self._whole = (text, tokens) if tokens <= cap else None

    def _whole_history(self) -> tuple[str, int] | None:
        """
        The whole history verbatim and its tokens, or None if over ``max_tokens``
        (joined again only if ``max_tokens`` grew since, and no exchange was forgotten).
        """
        if self._whole is None and self.max_tokens > self._whole_cap and not self._first:
            self._whole_cap = self.max_tokens
            text = "\n".join(ex.full for ex in self._exchanges)
            tokens = self.counter.count(text)
            self._whole = (text, tokens) if tokens <= self.max_tokens else None
        return self._whole

    def _feature_rows(self) -> dict[str, list[float]]:
        """
        The fact model's features of each standing fact, by key.
        """
        ledger = self._ledger
        return feature_rows(ledger.facts, ledger.covers, len(self) - 1, inside=ledger.inside)

    def get_context(self, available_tokens: int) -> str:
        """
        The history as prompt text within ``min(available_tokens, max_tokens)`` tokens.

        Everything verbatim when it fits. Otherwise the last ``raw_turns`` exchanges
        verbatim (while they fit three quarters of the budget: what the new request
        may answer), then the parts that hold the most likely-needed facts per token,
        chosen greedily (the facts a part holds count once, whichever part holds
        them): single facts on one ``Known:`` line, and older exchanges condensed or
        verbatim. Why each part is in, at which level, or out is in :attr:`decisions`
        afterwards.
        """
        budget = max(0, min(available_tokens, self.max_tokens))
        self._asked = budget
        if budget == 0 or not self._exchanges:
            self.decisions = ()
            return ""
        whole = self._whole_history()
        if whole is not None and whole[1] <= budget:
            self.decisions = (
                HistoryDecision(part="all", level="full", tokens=whole[1], reason="fits"),
            )
            return whole[0]
        chosen = self._chosen
        if chosen is not None and chosen[:2] == (budget, self.max_tokens):
            self.decisions = chosen[3]
            return chosen[2]
        text = self._choose(budget)
        self._chosen = (budget, self.max_tokens, text, self.decisions)
        return text

    def _choose(self, budget: int) -> str:
        """
        The context of a history over ``budget`` tokens, and its :attr:`decisions`.
        """
        # Below TERSE tokens the facts are a bare keyword list (no separators: they
        # would take a third of it); above it they are a "Known: a, b, c" line.
        terse = budget < TERSE
        header, sep = ("", " ") if terse else ("Known: ", ", ")
        head = self.counter.count(header) if header else 0
        if not self._scored:
            self._score()
        worth = self._worth
        chosen, levels, decisions = cover(
            self._ledger,
            self._exchanges,
            worth,
            self._ranked[:MAX_FACTS],
            budget - head,
            terse=terse,
            raw_turns=self.raw_turns,
        )
        facts = in_order(self._ledger, chosen)
        parts: list[str] = []
        if facts:
            parts.append(header + sep.join(self._ledger.facts[k].text for k in facts))
        kept, first = self._exchanges, self._first
        parts.extend(kept[i - first].text(level) for i, level in sorted(levels.items()))
        line = Line(header, sep, budget)
        text = trim(self.counter, self._ledger, worth, parts, facts, line)
        if self.counter.count(text) > budget:
            text = cut_at_word(text, budget, self.counter)
        else:
            shown = [kept[i - first].keys(lv) for i, lv in levels.items()]
            text = top_up(self.counter, self._ledger, self._ranked, text, parts, facts, shown, line)
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

    def explain(self) -> str:
        """
        The last :meth:`get_context`'s decisions, one a line.
        """
        return "\n".join(
            f"{d.part}: {d.level} ({d.tokens} tok) - {d.reason}" for d in self.decisions
        )

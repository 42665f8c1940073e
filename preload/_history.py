"""
The session's own history, compressed: recent turns raw, older ones condensed, and
the facts the user and the agent stated kept until superseded.

:class:`CompressedConversation` keeps every exchange at two levels (``full`` and a
``compact`` one without filler words) and a ledger of stated facts: names, places,
dates, times, numbers, and the choices the user made. :meth:`~CompressedConversation.get_context`
spends a token budget on the facts line first (the facts are what a later tool call
needs, and they are the densest), then chooses which exchanges to show and at which
level with the multiple-choice knapsack, favouring recent ones. Facts that a shown
exchange already holds are not repeated. The returned text never exceeds the budget.

A fact is superseded when a later user turn corrects it ("actually", "instead",
"change it to", "make it", ...) with a new fact of the same kind; superseded facts
leave the facts line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._budget import Option, select
from ._compression import cut_at_word

if TYPE_CHECKING:
    from ._tokens import TokenCounter

__all__ = ["CompressedConversation", "Fact", "HistoryDecision", "extract_facts"]

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|tomorrow|tonight"
_TIME = re.compile(
    r"\b(?:\d{1,2}(?::\d{2})?\s*(?:a\.?m\.?|p\.?m\.?)|\d{1,2}:\d{2}|noon|midnight|"
    r"\d{1,2}\s*o'?clock)(?![\w])",
    re.IGNORECASE,
)
_DATE = re.compile(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}(?:st|nd|rd|th)"
    rf"(?:\s+of\s+(?:{_MONTHS}|this month|next month))?|(?:next\s+|this\s+)?(?:{_DAYS})|"
    rf"\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])\$?\d[\d,]*(?:\.\d+)?%?(?:\s+[a-z]{3,})?")
_PROPER = re.compile(
    r"\b(?:\d[\d,]*\s+(?=[A-Z][a-z]))?[A-Z][\w'&.-]*(?:\s+(?:(?:of|the|de|la|le|del|and|&|on|by|in|at|du|von|van|for|to|a|"
    r"an|with|from)\s+[A-Z]|[A-Z0-9])[\w'&.-]*)*"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d:.,]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)$")
_ADDRESS = re.compile(
    r"\b\d{1,6}\s+(?:[A-Z0-9][\w'.-]*\s+){0,4}(?:Street|St|Road|Rd|Avenue|Ave|Boulevard|Blvd|"
    r"Way|Drive|Dr|Lane|Ln|Court|Ct|Place|Pl|Parkway|Pkwy|Highway|Hwy|Square|Plaza)\b\.?"
    r"(?:\s+(?:#|Suite\s+|Apt\.?\s+)?\d+\w?\b)?"
)
_CORRECTION = re.compile(
    r"\b(?:instead|change (?:it|that) to|make it|not\s+\w+\s*,?\s*but|I meant|correction)\b",
    re.IGNORECASE,
)


def _words(text: str) -> list[str]:
    return text.split()


#: Words that carry no fact: function words and the small talk of assistants.
FILLER = frozenset(
    _words(
        """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he he'd he'll he's her here here's hers herself him himself his how how's i
    i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself
    no nor not of off on once only or other ought our ours ourselves out over own same shan't she
    she'd she'll she's should shouldn't so some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those through to
    too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's which while who who's whom why why's will with won't would wouldn't you
    you'd you'll you're you've your yours yourself yourselves yes yeah yep ok okay sure thanks
    thank please great good nice perfect fine cool awesome alright right hello hi hey bye goodbye
    well just really also like want wanna need would could help find search look looking get got
    go going know let tell give show see sounds sound something anything else thing things one
    much many lot lots way kind sort maybe possible able mind wish interested prefer now then
    there can could shall may might must will listen watch see visit stay eat travel fly say
    said think sounds told ask asked try trying available there's information details
    confirm confirmed following correct successfully found option options assist ready done
    lets let's moment shall works work actually make made instead rather"""
    )
)

#: Capitalized words that start sentences without naming anything.
_NOT_NAMES = FILLER | frozenset(
    _words(
        """search find book reserve get show tell give look need want like help make check play
    buy rent call send add set schedule thanks thank great perfect okay sure yes yeah no nope
    hello hi hey please awesome cool good nice fine alright correct right exactly also actually
    well that what which when where how could would can will do does is are let it there this
    i'm i'd i'll i've it's that's what's how's let's sounds sound am was any anything nothing
    nothing, is are you we they he she my your our their its an a the and but or so if
    unfortunately sorry ok okay enjoy have has had did does done may might shall should"""
    )
)

#: How much more a fact said in two or more turns is worth (stated and confirmed).
CONFIRMED = 1.3

#: The share of the budget the last exchange may take, verbatim or condensed.
LAST_SHARE = 0.3

#: How much a fact is worth by who stated it and its kind, before recency: what the
#: user stated first, then the agent's names, numbers, dates and times (offers the
#: user may have taken), then the other content words.
PRIOR = {
    ("user", "name"): 1.0,
    ("user", "time"): 1.0,
    ("user", "date"): 1.0,
    ("user", "number"): 1.0,
    ("agent", "name"): 0.7,
    ("agent", "time"): 0.7,
    ("agent", "date"): 0.7,
    ("agent", "number"): 0.5,
    ("user", "choice"): 0.35,
    ("agent", "choice"): 0.2,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """
    A value stated in the conversation.

    .. versionadded:: 0.1
    """

    text: str
    kind: str
    turn: int
    role: str
    superseded_by: str | None = None
    mentions: int = 1


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


def _norm(text: str) -> str:
    return " ".join(w.lower() for w in _WORD.findall(text))


def extract_facts(text: str) -> list[tuple[str, str]]:
    """
    The facts stated in ``text`` as ``(text, kind)``: names and places (capitalized
    spans that do not merely start a sentence), times, dates, numbers, and the other
    content words (kind ``choice``: what a user picks, such as "economy" or "savings").

    .. versionadded:: 0.1
    """
    found: list[tuple[int, int, str, str]] = []
    taken = [False] * (len(text) + 1)

    def claim(start: int, end: int, kind: str) -> None:
        if any(taken[start:end]):
            end = start + taken[start:end].index(True)
            if not text[start:end].strip(" .,;:!?"):
                return
        for k in range(start, end):
            taken[k] = True
        found.append((start, end, text[start:end].strip(" .,;:!?"), kind))
        if text[start:end].rstrip().endswith((" for", " on", " of", " to", " by", " at")):
            found[-1] = (start, end, text[start:end].rstrip().rsplit(" ", 1)[0].strip(" .,;"), kind)

    for m in _ADDRESS.finditer(text):
        claim(m.start(), m.end(), "name")
    for m in _TIME.finditer(text):
        claim(m.start(), m.end(), "time")
    for m in _DATE.finditer(text):
        claim(m.start(), m.end(), "date")
    for m in _PROPER.finditer(text):
        span = m.group(0)
        start = m.start()
        words = span.split()
        first = words[0].lower().strip(".,'")
        at_start = _SENTENCE_START.search(text[:start]) is not None
        if first in _NOT_NAMES and (at_start or len(words) == 1 or first in FILLER):
            # drop a sentence-initial common word: "Search in Palo Alto"
            cut = len(words[0])
            rest = span[cut:].lstrip()
            if not rest or rest.split()[0].lower() in _NOT_NAMES:
                continue
            start += len(span) - len(rest)
            span = rest
        claim(start, start + len(span.rstrip(" .")), "name")
    for m in _NUMBER.finditer(text):
        span = m.group(0)
        parts = span.split()
        if len(parts) > 1 and parts[1].lower() in FILLER:
            span = parts[0]
        claim(m.start(), m.start() + len(span), "number")
    run: list[re.Match[str]] = []

    def close() -> None:
        if run:
            claim(run[0].start(), run[-1].end(), "choice")
            run.clear()

    for m in _WORD.finditer(text):
        word = m.group(0)
        content = len(word) > 2 and word.lower() not in FILLER and not word[0].isdigit()
        gap = text[run[-1].end() : m.start()] if run else " "
        if not content or any(taken[m.start() : m.end()]):
            close()
            continue
        if gap.strip():
            close()
        run.append(m)
    close()
    found.sort()
    return [(t, kind) for _, _, t, kind in found if t]


def _compact(text: str) -> str:
    """
    ``text`` without filler words and most punctuation: a telegraphic form.
    """
    words = [w for w in _WORD.findall(text) if w.lower() not in FILLER]
    return " ".join(words)


@dataclass(slots=True)
class _Exchange:
    index: int
    full: str
    compact: str
    full_tokens: int
    compact_tokens: int
    norm_full: str
    norm_compact: str


@dataclass(slots=True)
class _Ledger:
    facts: dict[str, Fact] = field(default_factory=dict)  # by normalized text


class CompressedConversation:
    """
    A conversation's history within a token budget.

    Args:
        max_tokens: The most tokens :meth:`get_context` ever returns (a cap on
            ``available_tokens``).
        counter: Counts tokens (the real tokenizer).
        raw_turns: Exchanges kept verbatim when they fit.
        exact_items: Exchanges up to which the level choice is solved exactly.

    Example::

        history = CompressedConversation(1500, counter=TiktokenCounter())
        history.add_exchange("Book a table at Rintaro for 4 at 7 pm", "Done.")
        prompt_history = history.get_context(available_tokens=300)

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        max_tokens: int,
        *,
        counter: TokenCounter,
        raw_turns: int = 2,
        exact_items: int = 8,
    ) -> None:
        self.max_tokens = max_tokens
        self.counter = counter
        self.raw_turns = raw_turns
        self.exact_items = exact_items
        self._exchanges: list[_Exchange] = []
        self._ledger = _Ledger()
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

    def add_exchange(self, user: str, agent: str = "") -> None:
        """
        Record one exchange: the user's request and the agent's reply.
        """
        index = len(self._exchanges)
        full = f"User: {user}" + (f"\nAssistant: {agent}" if agent else "")
        compact = f"U: {_compact(user)}" + (f" | A: {_compact(agent)}" if agent else "")
        self._exchanges.append(
            _Exchange(
                index=index,
                full=full,
                compact=compact,
                full_tokens=self.counter.count(full),
                compact_tokens=self.counter.count(compact),
                norm_full=f" {_norm(full)} ",
                norm_compact=f" {_norm(compact)} ",
            )
        )
        correcting = bool(_CORRECTION.search(user))
        ledger = self._ledger.facts
        for role, text in (("user", user), ("agent", agent)):
            for value, kind in extract_facts(text):
                key = _norm(value)
                if not key:
                    continue
                if correcting and role == "user" and kind != "choice" and key not in ledger:
                    for old_key, old in sorted(
                        ledger.items(), key=lambda kv: kv[1].turn, reverse=True
                    ):
                        if old.kind == kind and old.superseded_by is None:
                            ledger[old_key] = _replace_fact(old, superseded_by=value)
                            break
                prior = ledger.pop(key, None)
                who, what, mentions = role, kind, 1
                if prior is not None and prior.superseded_by is None:
                    # a fact said again: keep who stated it first and how, count it
                    who = "user" if "user" in (prior.role, role) else role
                    what = prior.kind if prior.kind != "choice" else kind
                    mentions = prior.mentions + (prior.turn != index)
                ledger[key] = Fact(text=value, kind=what, turn=index, role=who, mentions=mentions)

    def get_context(self, available_tokens: int) -> str:
        """
        The history as prompt text within ``min(available_tokens, max_tokens)`` tokens.

        Everything verbatim when it fits. Otherwise: the last exchange (condensed when
        it has to be), then the stated facts by value per token (who stated them, their
        kind, how recently) that the shown text does not already hold, then older
        exchanges with what is left, chosen and sized by the knapsack. Why each part is
        in, at which level, or out is in :attr:`decisions` afterwards.
        """
        budget = max(0, min(available_tokens, self.max_tokens))
        if budget == 0 or not self._exchanges:
            self.decisions = ()
            return ""
        counter = self.counter
        full_text = "\n".join(ex.full for ex in self._exchanges)
        full_tokens = counter.count(full_text)
        if full_tokens <= budget:
            self.decisions = (
                HistoryDecision(part="all", level="full", tokens=full_tokens, reason="fits"),
            )
            return full_text
        decisions: list[HistoryDecision] = []
        last = self._exchanges[-1]
        shown: list[tuple[_Exchange, str]] = []
        used = 0
        if last.full_tokens + 1 <= budget * LAST_SHARE:
            shown.append((last, "full"))
            used = last.full_tokens + 1
        elif last.compact_tokens + 1 <= budget * LAST_SHARE:
            shown.append((last, "compact"))
            used = last.compact_tokens + 1
        visible = " ".join(ex.norm_full if lv == "full" else ex.norm_compact for ex, lv in shown)
        n = len(self._exchanges)
        ranked: list[tuple[float, Fact, int]] = []
        for key, fact in self._ledger.facts.items():
            if fact.superseded_by is not None or f" {key} " in visible:
                continue
            age = n - 1 - fact.turn
            recency = 1.0 if age == 0 else 0.8 if age <= 2 else 0.6
            tokens = counter.count(fact.text) + 1
            value = PRIOR.get((fact.role, fact.kind), 0.1) * recency
            if fact.mentions > 1:
                value *= CONFIRMED
            ranked.append((value / tokens**0.25, fact, tokens))
        ranked.sort(key=lambda r: (-r[0], -r[1].turn))
        header = "Facts: " if budget >= 50 else ""
        head = counter.count(header)
        facts: list[Fact] = []
        room = budget - used - head
        for _, fact, tokens in ranked:
            if tokens <= room:
                facts.append(fact)
                room -= tokens
            else:
                decisions.append(
                    HistoryDecision(
                        part=f"fact {fact.text!r}",
                        level="-",
                        tokens=tokens,
                        reason="left out: facts worth more per token filled the budget",
                    )
                )
        if facts:
            used += head + sum(t for _, f, t in ranked if f in facts)
        older = self._choose(budget - used, decisions, exclude=last.index if shown else -1)
        shown = sorted([*older, *shown], key=lambda el: el[0].index)
        parts: list[str] = []
        if facts:
            line = header + "; ".join(f.text for f in sorted(facts, key=lambda f: f.turn))
            parts.append(line)
            decisions.append(
                HistoryDecision(
                    part="facts",
                    level="facts",
                    tokens=counter.count(line),
                    reason=f"{len(facts)} stated facts the shown exchanges do not hold",
                )
            )
        if shown and shown[-1][0] is last:
            decisions.append(
                HistoryDecision(
                    part=f"exchange {last.index}",
                    level=shown[-1][1],
                    tokens=last.full_tokens if shown[-1][1] == "full" else last.compact_tokens,
                    reason="the last exchange",
                )
            )
        parts.extend(ex.full if level == "full" else ex.compact for ex, level in shown)
        text = "\n".join(parts)
        # The counts above are per part; the joined text is checked and trimmed, the
        # facts worth least first.
        by_rank = [f for _, f, _ in ranked if f in facts]
        while facts and counter.count(text) > budget and len(by_rank) > 1:
            facts.remove(by_rank.pop())
            parts[0] = header + "; ".join(f.text for f in sorted(facts, key=lambda f: f.turn))
            text = "\n".join(parts)
        while counter.count(text) > budget and len(parts) > 1:
            parts.pop(1 if facts and len(parts) > 2 else 0)
            text = "\n".join(parts)
        if counter.count(text) > budget:
            text = cut_at_word(text, budget, counter)
        self.decisions = tuple(decisions)
        return text

    def explain(self) -> str:
        """
        The last :meth:`get_context`'s decisions, one a line.
        """
        return "\n".join(
            f"{d.part}: {d.level} ({d.tokens} tok) - {d.reason}" for d in self.decisions
        )

    def _choose(
        self, room: int, decisions: list[HistoryDecision], *, exclude: int
    ) -> list[tuple[_Exchange, str]]:
        exchanges = [ex for ex in self._exchanges if ex.index != exclude]
        n = len(self._exchanges)
        items: list[list[Option]] = []
        for ex in exchanges:
            age = n - 1 - ex.index
            weight = 2.0 if age < self.raw_turns else 0.5**age + 0.05
            items.append(
                [
                    Option(value=weight, tokens=ex.full_tokens + 1),
                    Option(value=weight * 0.6, tokens=ex.compact_tokens + 1),
                ]
            )
        selection = select(items, max(0, room), exact_items=self.exact_items)
        chosen: list[tuple[_Exchange, str]] = []
        for ex, choice in zip(exchanges, selection.choices, strict=True):
            if choice < 0:
                decisions.append(
                    HistoryDecision(
                        part=f"exchange {ex.index}",
                        level="-",
                        tokens=0,
                        reason="left out: older and no room; its facts stay in the facts line",
                    )
                )
                continue
            level = "full" if choice == 0 else "compact"
            chosen.append((ex, level))
            decisions.append(
                HistoryDecision(
                    part=f"exchange {ex.index}",
                    level=level,
                    tokens=ex.full_tokens if choice == 0 else ex.compact_tokens,
                    reason="recent, kept verbatim"
                    if level == "full"
                    else "older, condensed to its content words",
                )
            )
        return chosen


def _replace_fact(fact: Fact, *, superseded_by: str) -> Fact:
    return Fact(
        text=fact.text,
        kind=fact.kind,
        turn=fact.turn,
        role=fact.role,
        superseded_by=superseded_by,
        mentions=fact.mentions,
    )

"""
The session's own history, compressed: recent turns raw, older ones condensed, and
the facts the user and the agent stated kept until superseded.

:class:`CompressedConversation` keeps every exchange at three levels (``full``, the
user's words alone, and a ``compact`` one without filler words) and a ledger of stated
facts: names, places, dates, times, numbers, the phrases they form ("place of worship",
"5th and main"), the user's short answers and statements in their own words, a bare
yes or no tied to the question it answers, and the content words the user picked.
Each fact has the features of :data:`FEATURES` (who stated it, its kind, its age,
whether it was repeated, answered a question or accepted, its length and form), and a
logistic model over them (:data:`WEIGHTS`, fit on the SGD and STAR train splits by
``simulations/fit_fact_prior.py``) says how likely the next tool call is to need it.
:meth:`~CompressedConversation.get_context` spends a token budget by greedy maximum
coverage: single facts and exchanges at each level are parts, a part is worth the
likelihoods of the facts it holds that no chosen part holds yet (plus, for an
exchange, its context value, recent ones more), and parts are taken by worth per
token. The facts go on one ``Known: a, b, c`` line, or, under ``TERSE`` tokens, as a
bare keyword list (separators would take a third of it). The returned text never
exceeds the budget.

A fact is superseded when a later user turn corrects it ("actually", "instead",
"change it to", "make it", ...) with a new name, date, time or number within a few
exchanges; a superseded fact stays in the ledger, much less likely to be shown.
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..compression._compressor import cut_at_word

if TYPE_CHECKING:
    from .._tokens import TokenCounter

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
    r"an|with|from|[+*/])\s+[A-Z]|[A-Z0-9])[\w'&.-]*)*"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d:.,]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)$")
_ADDRESS = re.compile(
    r"\b\d{1,6}\s+(?:[A-Z0-9][\w'.-]*\s+){0,4}(?i:Street|St|Road|Rd|Avenue|Ave|Boulevard|Blvd|"
    r"Way|Drive|Dr|Lane|Ln|Court|Ct|Place|Pl|Parkway|Pkwy|Highway|Hwy|Square|Plaza)\b\.?"
    r"(?:\s+(?:(?:#\s*|Suite\s+|Apt\.?\s+)\w+|\d+\w?)\b)?"
)
_SPAN_END = re.compile(r"(?<!\b(?:Dr|St|Mr|Ms|Jr|Sr|Mt|Ft|No))(?<!\bMrs)(?<!\b[A-Z])\.\s")
_INTRO = re.compile(
    r"\b(?:my name is|name's|call me|i am|i'm|this is)\s+([a-z][a-z'-]+)(?=\s*(?:[.,!;]|$|\band\b))",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"(?<![\w'])['\"]([^'\"\n]{3,60}?)['\"](?![\w'])")
_JOINER = re.compile(r"\s+(?:to|from|by|in|at|on|with|for)\s+")
#: Small words that join two facts into a phrase ("place of worship", "5th and main").
_BRIDGE = frozenset(("and", "of", "the", "a", "an", "&", "n", "or", "de", "la", "del", "du", "y"))
#: And those that join looser phrases ("two beds in the room").
_BRIDGE_LOOSE = _BRIDGE | frozenset(
    ("to", "from", "in", "at", "on", "for", "by", "with", "into", "near", "my", "your", "our")
)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n")
_BRIDGE_MARKS = frozenset(("&", "+", "-", "/", "*", "#"))
_TRAILING = frozenset(("for", "on", "of", "to", "by", "at", "from", "in", "with", "and", "&", "I"))
_ARTICLES = frozenset(("the", "a", "an"))
_YES_NO = re.compile(
    r"^\W*(yes|yeah|yep|yup|sure|no|nope|nah|ok|okay|correct|right)\b", re.IGNORECASE
)
_CORRECTION = re.compile(
    r"\b(?:instead|change (?:it|that) to|make it|not\s+\w+\s*,?\s*but|I meant|correction)\b",
    re.IGNORECASE,
)


def _words(text: str) -> list[str]:
    return text.split()


_ASKING = frozenset(
    _words(
        """what which who whom whose when where why how is are am was were do does did can
    could will would shall should may might have has had isn't aren't don't doesn't didn't
    can't won't"""
    )
)

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

_KINDS = (
    "name",
    "time",
    "date",
    "number",
    "choice",
    "word",
    "phrase",
    "answer",
    "reply",
    "sentence",
)

#: What :meth:`CompressedConversation._score_facts` knows of a standing fact: who stated it
#: and its kind (one of them is 1), then its age in exchanges, further mentions,
#: whether the agent echoed the user (or the other way round), whether the user
#: stated it answering a question, its length, its form, and how many standing
#: facts hold it and it holds.
FEATURES = (
    *(f"{role}:{kind}" for role in ("user", "agent") for kind in _KINDS),
    "age 0",
    "age <= 2",
    "age <= 5",
    "log(1 + age)",
    "mentions",
    "echoed",
    "answered",
    "log words",
    "one word",
    "capitalized",
    "digit",
    "log(1 + inside)",
    "log holds",
    "superseded",
    "accepted",
    "log(1 + utterance words)",
    "share of the utterance",
    "answered x share",
)
_SLOT = {name: i for i, name in enumerate(FEATURES[: 2 * len(_KINDS)])}
_NUMERIC = 2 * len(_KINDS)

#: The weights of :data:`FEATURES` and the intercept of the logistic model of how
#: likely a fact is to be needed by the next tool call. Printed by
#: ``python -m simulations.fit_fact_prior`` (the first 3000 sessions of the SGD and
#: STAR train splits, each corpus weighing the same); never fit on dev.
BIAS = -2.377
WEIGHTS = (
    2.032,  # user:name
    2.235,  # user:time
    1.470,  # user:date
    2.959,  # user:number
    -1.129,  # user:choice
    -1.175,  # user:word
    -0.803,  # user:phrase
    -1.965,  # user:answer
    -1.721,  # user:reply
    -2.261,  # user:sentence
    0.967,  # agent:name
    0.666,  # agent:time
    -0.798,  # agent:date
    0.865,  # agent:number
    -0.696,  # agent:choice
    -1.294,  # agent:word
    -1.681,  # agent:phrase
    0.000,  # agent:answer
    0.000,  # agent:reply
    0.000,  # agent:sentence
    0.110,  # age 0
    -0.125,  # age <= 2
    0.171,  # age <= 5
    -1.097,  # log(1 + age)
    0.248,  # mentions
    0.276,  # echoed
    -0.119,  # answered
    -0.661,  # log words
    -0.727,  # one word
    0.686,  # capitalized
    0.009,  # digit
    -0.247,  # log(1 + inside)
    -0.370,  # log holds
    -0.480,  # superseded
    0.389,  # accepted
    0.152,  # log(1 + utterance words)
    0.444,  # share of the utterance
    1.517,  # answered x share
)

#: What showing an exchange is worth beyond the facts it holds (its context), for
#: the last one; halved per exchange back. Index 1 is the condensed level, 2 the
#: user's words verbatim, 3 the whole exchange verbatim. Zero: an exchange is shown
#: for the facts it holds (any context value cost facts on SGD and STAR: at 0.1 for
#: the last exchange verbatim, 25 % budget, SGD 94.4 vs 94.6 %, STAR 91.9 vs 92.8 %).
EXCHANGE_VALUE = (0.0, 0.0, 0.0, 0.0)

#: The most words a user turn may have to be kept whole as an answer.
ANSWER_WORDS = 6

#: The kinds of facts a correction supersedes ("actually, make it 8 pm"), and how
#: many exchanges back the fact it corrects may be.
_VALUES = frozenset(("name", "time", "date", "number"))
CORRECTS = 3

#: The fewest and the most words of a user's statement kept whole as a fact.
SENTENCE_WORDS = (3, 24)

#: The most words of a phrase fact.
PHRASE_WORDS = 12

#: Budgets (tokens) below which the facts are listed without separators.
TERSE = 100

#: Facts tried on the joined text when the chosen parts leave room.
TOP_UP = 12

#: Facts considered per :meth:`CompressedConversation.get_context`, the likeliest first.
MAX_FACTS = 300


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
    echoed: bool = False  # stated by the user and by the agent
    answered: bool = False  # the user stated it right after a question
    accepted: bool = False  # the agent offered it and the user said yes
    said_in: int = 0  # words of the utterance that stated it


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
    spans that do not merely start a sentence, and quoted text), times, dates,
    numbers, the other content words (kind ``choice``: what a user picks, such as
    "economy" or "savings"), and the phrases these form when they follow each other or
    are joined by a few small words (kind ``phrase``: "place of worship", "5th and
    main", "two beds in the room").

    .. versionadded:: 0.1
    """
    found: list[tuple[int, int, str, str]] = []
    taken = [False] * (len(text) + 1)

    def claim(start: int, end: int, kind: str) -> None:
        # the parts of [start, end) no earlier fact holds, each without the small
        # words and punctuation it starts or ends with
        k = start
        while k < end:
            if taken[k]:
                k += 1
                continue
            stop = k
            while stop < end and not taken[stop]:
                stop += 1
            piece = text[k:stop]
            words = piece.split()
            while words and (
                words[-1].strip(".,;:!?") in _TRAILING or not words[-1].strip(" .,;:!?'\"")
            ):
                words.pop()
            while words and (k != start and words[0].lower() in _TRAILING | _ARTICLES):
                words.pop(0)
            if words:
                a = text.index(words[0], k)
                b = text.rindex(words[-1], a, stop) + len(words[-1])
                value = text[a:b].strip(" .,;:!?'\"")
                if value and any(c.isalnum() for c in value):
                    a = text.index(value, a)
                    b = a + len(value)
                    for j in range(a, b):
                        taken[j] = True
                    found.append((a, b, value, kind))
            k = stop

    for m in _QUOTED.finditer(text):
        claim(m.start(1), m.end(1), "name")
    for m in _INTRO.finditer(text):  # "I'm mark", "my name is alexis"
        if m.group(1).lower() not in _NOT_NAMES and not m.group(1).endswith(("ing", "ed")):
            claim(m.start(1), m.end(1), "name")
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
        cut_at = _SPAN_END.search(span)
        if cut_at is not None:  # a sentence ends inside the span: "Main. And I"
            span = span[: cut_at.start() + 1]
            words = span.split()
        while len(words) > 1 and words[-1].strip(".,") in _TRAILING:
            span = span[: span.rstrip().rfind(" ")].rstrip()
            words = words[:-1]
        title = first in _ARTICLES and len(words) > 1 and words[1].lower() not in _NOT_NAMES
        if title or (not at_start and _titled(words)):
            # "The Man Who Knew Too Much"; mid-sentence "How about Just Kiss Her?"
            pass
        elif first in _NOT_NAMES and (at_start or len(words) == 1 or first in FILLER):
            # drop a sentence-initial common word: "Search in Palo Alto"
            rest = span[len(words[0]) :].lstrip()
            while rest and rest.split()[0].lower() in _NOT_NAMES:
                head = rest.split()[0]
                if head[0].isupper() and head.lower() not in _ARTICLES:
                    break  # "Search in Palo Alto" keeps going; "Yes I" does not
                rest = rest[len(head) :].lstrip()
            if not rest or rest.split()[0].lower() in _NOT_NAMES or not rest[0].isupper():
                continue
            start += len(span) - len(rest)
            span = rest
        end = start + len(span.rstrip(" ."))
        before = len(found)
        claim(start, end, "name")
        if len(found) != before + 1:
            continue
        a, b = found[-1][0], found[-1][1]
        pieces = _JOINER.split(text[a:b])
        if len(pieces) > 1:
            # "Los Angeles to Las Vegas" is also "Los Angeles" and "Las Vegas"
            pos = a
            for piece in pieces:
                at = text.find(piece, pos, b)
                said = piece.split()
                if at >= 0 and said and (said[0].lower() not in _NOT_NAMES or _titled(said)):
                    found.append((at, at + len(piece), piece.strip(" .,"), "name"))
                    pos = at + len(piece)
    for m in _NUMBER.finditer(text):
        span = m.group(0)
        parts = span.split()
        if len(parts) > 1 and parts[1].lower() in FILLER:
            span = parts[0]
        claim(m.start(), m.start() + len(span), "number")
    run: list[re.Match[str]] = []

    def close() -> None:
        if run:
            before = len(found)
            claim(run[0].start(), run[-1].end(), "choice")
            if len(run) > 1 and len(found) == before + 1:
                # "economy flight" also holds "economy" and "flight"
                found.extend((m.start(), m.end(), m.group(0), "word") for m in run)
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
    found.extend(_phrases(text, found))
    found.sort()
    return [(t, kind) for _, _, t, kind in found if t]


def _phrases(text: str, found: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    """
    The facts that follow each other, as one phrase: side by side ("Living room"),
    joined by a conjunction, an article or "of" ("place of worship"), or also by a
    preposition, a possessive or a comma ("two beds in the room").
    """
    spans = [f for f in found if f[3] not in ("phrase", "word")]
    out: list[tuple[int, int, str, str]] = []
    seen = {(a, b) for a, b, _, _ in found}
    for level in (0, 1, 2):
        groups: list[list[tuple[int, int, str, str]]] = [[]]
        for span in spans:
            group = groups[-1]
            if group and span[0] < group[-1][1]:
                continue  # a piece inside the span before it
            if group and not _joins(text[group[-1][1] : span[0]], level):
                groups.append([])
            groups[-1].append(span)
        for group in groups:
            if len(group) < 2:
                continue
            a, b = group[0][0], group[-1][1]
            if (a, b) not in seen and len(text[a:b].split()) <= PHRASE_WORDS:
                seen.add((a, b))
                out.append((a, b, text[a:b], "phrase"))
    return out


def _titled(words: list[str]) -> bool:
    """
    Whether ``words`` run in title case past the first ("Just Kiss Her").
    """
    return len(words) > 1 and words[1][:1].isupper()


def _joins(gap: str, level: int) -> bool:
    """
    Whether two facts with ``gap`` between them form a phrase at ``level`` (0 side by
    side, 1 through small joining words, 2 also prepositions and commas).
    """
    words = _WORD.findall(gap)
    marks = _WORD.sub("", gap).split()
    if level == 0:
        return not words and not marks
    allowed = _BRIDGE if level == 1 else _BRIDGE_LOOSE
    if any(m not in _BRIDGE_MARKS and not (level == 2 and m == ",") for m in marks):
        return False
    return len(words) <= level + 1 and all(
        w.lower() in allowed or (len(w) <= 2 and w.lower() not in FILLER) for w in words
    )


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
    user: str = ""  # the user's words verbatim, without the reply
    user_tokens: int = 0
    norm_user: str = ""
    keys_full: set[str] = field(default_factory=set)  # fact keys each level holds
    keys_compact: set[str] = field(default_factory=set)
    keys_user: set[str] = field(default_factory=set)

    def keys(self, level: int) -> set[str]:
        return (self.keys_compact, self.keys_user, self.keys_full)[level - 1]

    def cost(self, level: int) -> int:
        return (0, self.compact_tokens, self.user_tokens, self.full_tokens)[level] + (level > 0)

    def text(self, level: int) -> str:
        return ("", self.compact, self.user, self.full)[level]


@dataclass(slots=True)
class _Ledger:
    facts: dict[str, Fact] = field(default_factory=dict)  # by normalized text
    tokens: dict[str, int] = field(default_factory=dict)  # tokens of each fact
    covers: dict[str, set[str]] = field(default_factory=dict)  # keys inside each key


class CompressedConversation:
    """
    A conversation's history within a token budget.

    Args:
        max_tokens: The most tokens :meth:`get_context` ever returns (a cap on
            ``available_tokens``).
        counter: Counts tokens (the real tokenizer).
        raw_turns: Exchanges worth showing verbatim first (the most recent ones).
        exact_items: Kept for compatibility; the choice is a coverage greedy.

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
        self._full: tuple[str, int] = ("", 0)  # the whole history verbatim, its tokens
        self._worth: dict[str, float] = {}  # of each standing fact, by _score_facts
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
        norm_full, norm_compact = f" {_norm(full)} ", f" {_norm(compact)} "
        said = f"User: {user}"
        norm_user = f" {_norm(said)} "
        ledger = self._ledger
        exchange = _Exchange(
            index=index,
            full=full,
            compact=compact,
            full_tokens=self.counter.count(full),
            compact_tokens=self.counter.count(compact),
            norm_full=norm_full,
            norm_compact=norm_compact,
            keys_full={k for k in ledger.facts if f" {k} " in norm_full},
            keys_compact={k for k in ledger.facts if f" {k} " in norm_compact},
            user=said,
            user_tokens=self.counter.count(said),
            norm_user=norm_user,
            keys_user={k for k in ledger.facts if f" {k} " in norm_user},
        )
        question = self._exchanges[-1].full if self._exchanges else ""
        asked = "?" in question.rpartition("\nAssistant: ")[2]
        self._exchanges.append(exchange)
        correcting = bool(_CORRECTION.search(user))
        if _YES_NO.match(user) and not user.lower().lstrip(" \t\"'").startswith("n"):
            # the user took what the agent offered in the last reply
            for old_key, old in ledger.facts.items():
                if old.turn == index - 1 and old.role == "agent" and not old.accepted:
                    ledger.facts[old_key] = replace(old, accepted=True)
        stated = [("user", v, k) for v, k in extract_facts(user)]
        stated += [("user", v, k) for v, k in _answers(user, question)]
        stated += [("user", v, "sentence") for v in _sentences(user)]
        stated += [("agent", v, k) for v, k in extract_facts(agent)]
        said_in = {"user": len(_WORD.findall(user)), "agent": len(_WORD.findall(agent))}
        for role, value, kind in stated:
            key = _norm(value)
            if not key:
                continue
            facts = ledger.facts
            if correcting and role == "user" and kind in _VALUES and key not in facts:
                for old_key, old in sorted(facts.items(), key=lambda kv: kv[1].turn, reverse=True):
                    if index - old.turn > CORRECTS:
                        break
                    if old.kind == kind and old.superseded_by is None:
                        facts[old_key] = replace(old, superseded_by=value)
                        break
            prior = facts.pop(key, None)
            who, what, mentions = role, kind, 1
            echoed, answered, accepted = False, role == "user" and asked, False
            if prior is not None and prior.superseded_by is None:
                # a fact said again: keep who stated it first and how, count it
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
                said_in=said_in[role],
            )
            if prior is None:
                self._index(key, value)
        # Scored and counted here, where the history changes (the engine records
        # exchanges in the background), not in get_context on the request path.
        self._worth = self._score_facts()
        text = "\n".join(ex.full for ex in self._exchanges)
        self._full = (text, self.counter.count(text))

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
        counter = self.counter
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
        head = counter.count(header) if header else 0
        worth = self._worth
        chosen, levels, decisions = self._cover(worth, budget - head, terse=terse)
        order = {k: i for i, k in enumerate(self._ledger.facts)}  # as said, in each turn
        facts = sorted(chosen, key=lambda k: (self._ledger.facts[k].turn, order[k]))
        shown = sorted(levels.items())
        parts: list[str] = []
        if facts:
            parts.append(header + sep.join(self._ledger.facts[k].text for k in facts))
        for i, level in shown:
            ex = self._exchanges[i]
            parts.append(ex.text(level))
        text = "\n".join(parts)
        # The counts above are per part; the joined text is checked and trimmed, the
        # facts worth least first, then the oldest exchanges.
        by_worth = sorted(facts, key=lambda k: worth.get(k, 0.0))
        while facts and counter.count(text) > budget and len(facts) > 1:
            facts.remove(by_worth.pop(0))
            parts[0] = header + sep.join(self._ledger.facts[k].text for k in facts)
            text = "\n".join(parts)
        while counter.count(text) > budget and len(parts) > 1:
            parts.pop(1 if facts and len(parts) > 2 else 0)
            text = "\n".join(parts)
        if counter.count(text) > budget:
            text = cut_at_word(text, budget, counter)
        else:
            text = self._top_up(text, parts, facts, levels, worth, budget, header, sep)
        if facts:
            decisions.append(
                HistoryDecision(
                    part="facts",
                    level="facts",
                    tokens=counter.count(parts[0]),
                    reason=f"{len(facts)} stated facts the shown exchanges do not hold",
                )
            )
        self.decisions = tuple(decisions)
        return text

    def _top_up(
        self,
        text: str,
        parts: list[str],
        facts: list[str],
        levels: dict[int, int],
        worth: dict[str, float],
        budget: int,
        header: str,
        sep: str,
    ) -> str:
        """
        Fill what the per-part counts left of the budget with the facts worth most per
        token that nothing shown holds, each checked on the joined text.
        """
        ledger = self._ledger
        counter = self.counter
        covered: set[str] = set()
        for key in facts:
            covered |= ledger.covers[key]
        for i, lv in levels.items():
            covered |= self._exchanges[i].keys(lv)
        room = budget - counter.count(text)
        if room < 1:
            return text
        order = {k: i for i, k in enumerate(ledger.facts)}
        rest = sorted(
            (k for k in worth if k not in covered and ledger.tokens[k] - 1 <= room),
            key=lambda k: -worth[k] / ledger.tokens[k],
        )
        tries = 0
        for key in rest:
            if key in covered or tries >= TOP_UP or ledger.tokens[key] - 1 > room:
                continue
            tries += 1
            trial = sorted([*facts, key], key=lambda k: (ledger.facts[k].turn, order[k]))
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

    def _score_facts(self) -> dict[str, float]:
        """
        How likely each standing fact is to be needed next: a logistic model of its
        features (:data:`FEATURES`, weights :data:`WEIGHTS`).
        """
        worth: dict[str, float] = {}
        for key, row in self._features().items():
            z = BIAS + sum(w * x for w, x in zip(WEIGHTS, row, strict=True))
            worth[key] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return worth

    def _features(self) -> dict[str, list[float]]:
        """
        The :data:`FEATURES` of each standing fact.
        """
        ledger = self._ledger
        last = len(self._exchanges) - 1
        standing = list(ledger.facts)
        inside: dict[str, int] = {}
        for key in standing:
            for sub in ledger.covers[key]:
                if sub != key:
                    inside[sub] = inside.get(sub, 0) + 1
        rows: dict[str, list[float]] = {}
        for key in standing:
            fact = ledger.facts[key]
            age = last - fact.turn
            words = key.count(" ") + 1
            row = [0.0] * len(FEATURES)
            row[_SLOT.get(f"{fact.role}:{fact.kind}", 0)] = 1.0
            row[_NUMERIC:] = [
                float(age == 0),
                float(age <= 2),
                float(age <= 5),
                math.log1p(age),
                float(min(fact.mentions - 1, 3)),
                float(fact.echoed),
                float(fact.answered),
                math.log(words),
                float(words == 1),
                float(fact.text[:1].isupper()),
                float(any(c.isdigit() for c in key)),
                math.log1p(inside.get(key, 0)),
                math.log(len(ledger.covers[key])),
                float(fact.superseded_by is not None),
                float(fact.accepted),
                math.log1p(fact.said_in),
                min(1.0, words / max(1, fact.said_in)),
                float(fact.answered) * min(1.0, words / max(1, fact.said_in)),
            ]
            rows[key] = row
        return rows

    def _cover(
        self, worth: dict[str, float], budget: int, *, terse: bool
    ) -> tuple[list[str], dict[int, int], list[HistoryDecision]]:
        """
        Greedy maximum coverage by value per token (lazy evaluation): the facts to
        list, and each exchange's level (1 condensed, 2 verbatim).
        """
        ledger = self._ledger
        exchanges = self._exchanges
        last = len(exchanges) - 1
        keys = sorted(worth, key=lambda k: -worth[k] / ledger.tokens[k])[:MAX_FACTS]
        covered: set[str] = set()
        level: dict[int, int] = {}
        chosen: list[str] = []
        used = 0

        def base(i: int, lv: int) -> float:
            age = last - i
            boost = 2.0 if age < self.raw_turns and lv == 3 else 1.0
            return EXCHANGE_VALUE[lv] * boost / (1 << min(age, 60))

        def move(cand: tuple[int, int, int]) -> tuple[float, int]:
            # (gain, tokens) of a candidate: (-1, fact position, 0) or (exchange, from, to)
            i, frm, to = cand
            if i < 0:
                key = keys[frm]
                gain = sum(worth.get(k, 0.0) for k in ledger.covers[key] if k not in covered)
                return gain, ledger.tokens[key] - terse
            ex = exchanges[i]
            gain = sum(worth.get(k, 0.0) for k in ex.keys(to) if k not in covered)
            gain += base(i, to) - base(i, frm)
            return gain, ex.cost(to) - ex.cost(frm)

        heap: list[tuple[float, int, tuple[int, int, int]]] = []
        serial = 0
        cands: list[tuple[int, int, int]] = [(-1, pos, 0) for pos in range(len(keys))]
        for ex in exchanges:
            cands.extend((ex.index, 0, lv) for lv in (1, 2, 3))
        for cand in cands:
            gain, tokens = move(cand)
            if gain > 0 and tokens <= budget:
                heap.append((-gain / max(1, tokens), serial, cand))
                serial += 1
        heapq.heapify(heap)
        while heap:
            _, _, cand = heapq.heappop(heap)
            i, frm, to = cand
            if i >= 0 and level.get(i, 0) != frm:
                if level.get(i, 0) in (1, 2) and to == 3:
                    cand = (i, level[i], 3)
                else:
                    continue
            gain, tokens = move(cand)
            if gain <= 0 or used + tokens > budget:
                continue
            ratio = gain / max(1, tokens)
            if heap and ratio < -heap[0][0] - 1e-12:
                heapq.heappush(heap, (-ratio, serial, cand))
                serial += 1
                continue
            used += tokens
            if i < 0:
                key = keys[frm]
                chosen.append(key)
                covered |= ledger.covers[key]
            else:
                level[i] = to
                covered |= exchanges[i].keys(to)
                if to < 3:
                    heapq.heappush(heap, (-ratio, serial, (i, to, 3)))
                    serial += 1
        decisions: list[HistoryDecision] = []
        for ex in exchanges:
            lv = level.get(ex.index, 0)
            if lv == 0:
                reason = "left out: older and no room; its facts stay in the facts line"
            elif lv == 3:
                reason = "recent, kept verbatim" if ex.index == last else "kept verbatim"
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
            for key in keys
            if key not in covered
        )
        return chosen, level, decisions

    def explain(self) -> str:
        """
        The last :meth:`get_context`'s decisions, one a line.
        """
        return "\n".join(
            f"{d.part}: {d.level} ({d.tokens} tok) - {d.reason}" for d in self.decisions
        )


def _answers(user: str, question: str) -> list[tuple[str, str]]:
    """
    A short user turn kept whole (kind ``answer``), and a bare yes or no tied to the
    question it answers (kind ``reply``: "extra towels? no").
    """
    words = _WORD.findall(user)
    if not words:
        return []
    yes_no = _YES_NO.match(user)
    if yes_no is not None:
        asked = [q for q in re.split(r"(?<=[?])\s*", question) if q.endswith("?")]
        topic = _compact(asked[-1]).split()[-3:] if asked else []
        if not topic:
            return []
        return [(" ".join(topic) + "? " + yes_no.group(1).lower(), "reply")]
    if len(words) > ANSWER_WORDS or _is_question(user):
        return []
    content = [w for w in words if w.lower() not in _NOT_NAMES]
    if not content or (len(content) < 2 and len(words) > 1):
        return []
    return [(user.strip().strip(".!?,;:").strip(), "answer")]


def _is_question(text: str) -> bool:
    """
    Whether ``text`` asks rather than answers: it ends with a question mark or starts
    with a question word or an auxiliary ("what station...", "is this a direct bus").
    """
    words = _WORD.findall(text)
    return text.rstrip().endswith("?") or bool(words) and words[0].lower() in _ASKING


def _sentences(user: str) -> list[str]:
    """
    The user's statements of a few words, each whole ("my head is killing me"):
    what they describe in their own words, as a tool call may take it.
    """
    out: list[str] = []
    for sentence in _SENTENCE.split(user):
        n = len(_WORD.findall(sentence))
        if SENTENCE_WORDS[0] <= n <= SENTENCE_WORDS[1] and not _is_question(sentence):
            out.append(sentence.strip().strip(".!;,").strip())
    return out

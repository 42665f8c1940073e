"""
Fact extraction: the values a text states (names and places, times, dates, numbers,
the content words a user picks) and the phrases they form.

:func:`extract_facts` claims spans of the text kind by kind, the surest first (quoted
text, introductions, addresses, times, dates, capitalized names, numbers, then the
remaining content words); a span no earlier fact holds is trimmed of the small words
and punctuation it starts or ends with. The facts that follow each other, or are joined
by a few small words, also form one phrase ("place of worship", "5th and main").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._words import FILLER, NOT_NAMES, WORD

__all__ = ["Fact", "extract_facts"]

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
_BRIDGE_MARKS = frozenset(("&", "+", "-", "/", "*", "#"))
_TRAILING = frozenset(("for", "on", "of", "to", "by", "at", "from", "in", "with", "and", "&", "I"))
_ARTICLES = frozenset(("the", "a", "an"))
_LEADING = _TRAILING | _ARTICLES

#: The most words of a phrase fact.
PHRASE_WORDS = 12

#: A fact found in a text: its span ``[start, end)``, its text and its kind.
_Found = tuple[int, int, str, str]


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
    claims = _Claims(text)
    _claim_marked(claims)
    _claim_names(claims)
    _claim_numbers(claims)
    _claim_choices(claims)
    found = claims.found
    found.sort()
    found.extend(_phrases(text, found))
    found.sort()
    return [(t, kind) for _, _, t, kind in found if t]


class _Claims:
    """
    The facts found in a text so far, and which of its characters they hold.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: list[_Found] = []
        self.taken = [False] * (len(text) + 1)

    def claim(self, start: int, end: int, kind: str) -> None:
        """
        The parts of ``[start, end)`` no earlier fact holds become facts of ``kind``,
        each without the small words and punctuation it starts or ends with.
        """
        text, taken = self.text, self.taken
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
            first = 0
            if k != start:
                while first < len(words) and words[first].lower() in _LEADING:
                    first += 1
                del words[:first]
            if words:
                a = text.index(words[0], k)
                b = text.rindex(words[-1], a, stop) + len(words[-1])
                value = text[a:b].strip(" .,;:!?'\"")
                if value and any(c.isalnum() for c in value):
                    a = text.index(value, a)
                    b = a + len(value)
                    for j in range(a, b):
                        taken[j] = True
                    self.found.append((a, b, value, kind))
            k = stop


def _claim_marked(claims: _Claims) -> None:
    """
    The facts their form marks: quoted text, introduced names ("I'm mark", "my name is
    alexis"), street addresses, times and dates.
    """
    text = claims.text
    for m in _QUOTED.finditer(text):
        claims.claim(m.start(1), m.end(1), "name")
    for m in _INTRO.finditer(text):
        if m.group(1).lower() not in NOT_NAMES and not m.group(1).endswith(("ing", "ed")):
            claims.claim(m.start(1), m.end(1), "name")
    for m in _ADDRESS.finditer(text):
        claims.claim(m.start(), m.end(), "name")
    for m in _TIME.finditer(text):
        claims.claim(m.start(), m.end(), "time")
    for m in _DATE.finditer(text):
        claims.claim(m.start(), m.end(), "date")


def _claim_names(claims: _Claims) -> None:
    """
    Capitalized spans that name something, and the places a name joins ("Los Angeles
    to Las Vegas" is also "Los Angeles" and "Las Vegas").
    """
    text, found = claims.text, claims.found
    for m in _PROPER.finditer(text):
        name = _name_span(text, m)
        if name is None:
            continue
        start, end = name
        before = len(found)
        claims.claim(start, end, "name")
        if len(found) != before + 1:
            continue
        a, b = found[-1][0], found[-1][1]
        pieces = _JOINER.split(text[a:b])
        if len(pieces) > 1:
            pos = a
            for piece in pieces:
                at = text.find(piece, pos, b)
                said = piece.split()
                if at >= 0 and said and (said[0].lower() not in NOT_NAMES or _titled(said)):
                    found.append((at, at + len(piece), piece.strip(" .,"), "name"))
                    pos = at + len(piece)


def _name_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """
    Where the capitalized span ``m`` names something: cut where a sentence ends inside
    it, without the small words it ends with and the common words that merely start a
    sentence; None when nothing is left.
    """
    span = m.group(0)
    start = m.start()
    words = span.split()
    first = words[0].lower().strip(".,'")
    at_start = _starts_sentence(text, start)
    cut_at = _SPAN_END.search(span)
    if cut_at is not None:  # a sentence ends inside the span: "Main. And I"
        span = span[: cut_at.start() + 1]
        words = span.split()
    while len(words) > 1 and words[-1].strip(".,") in _TRAILING:
        span = span[: span.rstrip().rfind(" ")].rstrip()
        words = words[:-1]
    title = first in _ARTICLES and len(words) > 1 and words[1].lower() not in NOT_NAMES
    if title or (not at_start and _titled(words)):
        # "The Man Who Knew Too Much"; mid-sentence "How about Just Kiss Her?"
        pass
    elif first in NOT_NAMES and (at_start or len(words) == 1 or first in FILLER):
        # drop a sentence-initial common word: "Search in Palo Alto"
        after = span[len(words[0]) :].lstrip()
        heads = after.split()
        skip = 0
        while skip < len(heads) and heads[skip].lower() in NOT_NAMES:
            head = heads[skip]
            if head[0].isupper() and head.lower() not in _ARTICLES:
                break  # "Search in Palo Alto" keeps going; "Yes I" does not
            skip += 1
        if skip == len(heads) or heads[skip].lower() in NOT_NAMES or not heads[skip][0].isupper():
            return None
        at = 0  # where the first kept word starts, after the dropped ones
        for head in heads[:skip]:
            at = after.index(head, at) + len(head)
        rest = after[at:].lstrip()
        start += len(span) - len(rest)
        span = rest
    return start, start + len(span.rstrip(" ."))


def _starts_sentence(text: str, start: int) -> bool:
    """
    Whether ``text[start:]`` starts a sentence: what ``_SENTENCE_START`` finds at the end
    of ``text[:start]``, looking back only over the last mark and the spaces after it
    (searching the whole prefix for every capitalized span made extraction quadratic).
    """
    back = start
    while back > 0 and text[back - 1].isspace():
        back -= 1
    return _SENTENCE_START.search(text, max(0, back - 1), start) is not None


def _claim_numbers(claims: _Claims) -> None:
    """
    Numbers, with the word that counts them ("4 tickets") unless it is filler.
    """
    for m in _NUMBER.finditer(claims.text):
        span = m.group(0)
        parts = span.split()
        if len(parts) > 1 and parts[1].lower() in FILLER:
            span = parts[0]
        claims.claim(m.start(), m.start() + len(span), "number")


def _claim_choices(claims: _Claims) -> None:
    """
    Runs of the other content words (kind ``choice``), and, in a run of several, each
    word (kind ``word``): "economy flight" also holds "economy" and "flight".
    """
    text, found, taken = claims.text, claims.found, claims.taken
    run: list[re.Match[str]] = []

    def close() -> None:
        if run:
            before = len(found)
            claims.claim(run[0].start(), run[-1].end(), "choice")
            if len(run) > 1 and len(found) == before + 1:
                found.extend((m.start(), m.end(), m.group(0), "word") for m in run)
            run.clear()

    for m in WORD.finditer(text):
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


def _phrases(text: str, found: list[_Found]) -> list[_Found]:
    """
    The facts that follow each other, as one phrase: side by side ("Living room"),
    joined by a conjunction, an article or "of" ("place of worship"), or also by a
    preposition, a possessive or a comma ("two beds in the room").
    """
    spans = [f for f in found if f[3] not in ("phrase", "word")]
    out: list[_Found] = []
    seen = {(a, b) for a, b, _, _ in found}
    for level in (0, 1, 2):
        groups: list[list[_Found]] = [[]]
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
    words = WORD.findall(gap)
    marks = WORD.sub("", gap).split()
    if level == 0:
        return not words and not marks
    allowed = _BRIDGE if level == 1 else _BRIDGE_LOOSE
    if any(m not in _BRIDGE_MARKS and not (level == 2 and m == ",") for m in marks):
        return False
    return len(words) <= level + 1 and all(
        w.lower() in allowed or (len(w) <= 2 and w.lower() not in FILLER) for w in words
    )

"""
What the call forecast reads in a text: its tokens, the known argument values it
mentions (a token trie of phrases), and the values that need normalizing (numbers in
words, times of day, dates relative to an anchor day).

Everything here is linear in the text's length: a text is cut to :data:`MAX_TEXT`
characters and a phrase is at most :data:`MAX_PHRASE` tokens long.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "ASKED",
    "MAX_PHRASE",
    "MAX_TEXT",
    "PhraseIndex",
    "asked_words",
    "code_shapes",
    "code_tokens",
    "name_spans",
    "normalized_mentions",
    "rare_runs",
    "recased",
    "token_ends",
    "tokenize",
    "value_format",
]

#: Characters of one text that are scanned (a longer text is cut to its last ones: the
#: end of a request is where its latest values are).
MAX_TEXT: Final = 2000
#: Tokens of the longest argument value looked for in a text.
MAX_PHRASE: Final = 8

_TOKEN = re.compile(r"\d+(?:\.\d+)+|[a-z0-9]+(?:[:'][a-z0-9]+)*")
_END = ""  # the trie's key of a node's phrase id: no token is empty

_NUMBERS: Final = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "single": 1,
    "couple": 2,
}
_ORDINALS: Final = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
_MONTHS: Final = {
    name: i + 1
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        )
    )
    for name in names
}
_WEEKDAYS: Final = {
    name: i
    for i, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_HOUR_WORDS: Final = {w: n for w, n in _NUMBERS.items() if 1 <= n <= 12 and w not in ("single",)}

_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_WEEKDAY = "(" + "|".join(_WEEKDAYS) + r")\b"
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_RULES: Final = (
    ("month_day", re.compile(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}\b")),
    ("day_month", re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}")),
    ("day_of_month", re.compile(rf"\b{_DAY}\s+(?:of\s+)?(?:this|the)\s+month\b")),
    ("next_month_day", re.compile(rf"\b{_DAY}\s+(?:of\s+)?next\s+month\b")),
    ("the_day", re.compile(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b")),
    ("relative", re.compile(r"\b(day\s+after\s+tomorrow|today|tonight|tomorrow)\b")),
    ("weekday_next_week", re.compile(rf"\b{_WEEKDAY}\s+(?:of\s+)?next\s+week\b")),
    ("next_week_weekday", re.compile(rf"\bnext\s+week(?:'s)?\s+(?:on\s+)?{_WEEKDAY}")),
    ("weekday", re.compile(rf"\b(?:(next|this|on)\s+)?{_WEEKDAY}")),
)
_ORDINAL_WORDS = re.compile(r"\b(" + "|".join(_ORDINALS) + r")\b")
_TIME_RULES: Final = (
    re.compile(r"\b(\d{1,2})(?::(\d\d))?\s*(a\.?m\.?|p\.?m\.?)"),
    re.compile(r"\b(\d{1,2}):(\d\d)\b()"),
    re.compile(r"\b(\d{1,2}|" + "|".join(_HOUR_WORDS) + r")\s+o'?\s?clock\b()()"),
    re.compile(r"\b(half|quarter)\s+(past|to)\s+(\d{1,2}|" + "|".join(_HOUR_WORDS) + r")\b"),
    re.compile(
        r"\b(\d{1,2}|" + "|".join(_HOUR_WORDS) + r")(?::(\d\d))?()"
        r"(?=\s+(?:in\s+the\s+(?:evening|afternoon|morning)|at\s+night|tonight))"
    ),
)
#: Distinct values an argument needs before capitalized words in a request are taken
#: for values it never had (:func:`name_spans`); or at least ``NAME_FEW_VALUES`` of
#: which values given once make up ``NAME_NEW_SHARE`` of its calls (little training).
NAME_MIN_VALUES: Final = 30
NAME_FEW_VALUES: Final = 3
NAME_NEW_SHARE: Final = 0.1
#: A word in at least this share of the training requests is a common word: in a text
#: written without capitals, names are the runs of the other words (:func:`rare_runs`).
COMMON_SHARE: Final = 0.002
#: Words of the longest such run.
_MAX_RUN: Final = 4
_NAME = re.compile(r"[A-Z0-9][\w'&.-]*(?:[ -](?:of|the|de|la|and|&|[A-Z0-9][\w'&.-]*))*")
#: A name as a corpus written without capitals gives it ("walnut creek").
_LOWER_NAME = re.compile(r"[a-z][\w'&.-]*(?:[ -][\w'&.-]+)*")
_SPAN = re.compile(
    r"(?<![\w'])[A-Z][\w'&-]*(?:[ ]+(?:(?:of|the|de|la|and|&)[ ]+)?[A-Z0-9][\w'&-]*)*"
)
_SPAN_JOINERS: Final = frozenset({"of", "the", "de", "la", "and", "&"})
_SPAN_SKIP: Final = frozenset(
    {"i", "i'm", "i'd", "i'll", "i've", "ok", "okay", *_MONTHS, *_WEEKDAYS}
)
_WORD = re.compile(r"\S+")
#: Characters of the longest code (:func:`code_shapes`).
MAX_CODE: Final = 64
#: A code: signs, letters and digits, with a digit or one of ``#@_`` among them.
_CODE = re.compile(r"[\w#@+./:-]*[\d#@_][\w#@+./:-]*")
_DATE_OR_TIME = re.compile(r"\d{4}-\d\d-\d\d|\d{1,2}:\d\d")
#: What is stripped around a code in a text ("(order #W4817420)." "$47").
_CODE_LEAD: Final = "([{<\"'$€£"
_CODE_TRAIL: Final = ")]}>\"'.,;:!?"
_DIGIT = re.compile(r"\d")
_LETTERS = re.compile(r"[A-Z]+|[^\W\d_A-Z]+")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s*|\n\s*)$")
_NOON = re.compile(r"\b(?:noon|midday)\b")
_PM_AFTER = re.compile(r"^\W*(?:in\s+the\s+)?(evening|night|afternoon|tonight|pm|p\.m)")
_AM_AFTER = re.compile(r"^\W*(?:in\s+the\s+)?(morning|am|a\.m)")


#: The last words of the reply a request answers that tell what it answers (the
#: question: "Where are you going?", "Shall I book it?").
ASKED = 8


def asked_words(reply: list[str]) -> list[str]:
    """
    The last :data:`ASKED` words of a reply's tokens, marked ``?`` as cues of what the
    request after it answers.
    """
    return [f"?{t}" for t in reply[-ASKED:]]


def tokenize(text: str) -> list[str]:
    """
    Return the lower-cased word tokens of ``text`` (its last :data:`MAX_TEXT` characters).
    """
    return _TOKEN.findall(text[-MAX_TEXT:].lower())


def token_ends(low: str) -> tuple[list[str], list[int]]:
    """
    Return the tokens of an already cut and lower-cased text, and where each ends.
    """
    toks: list[str] = []
    ends: list[int] = []
    for m in _TOKEN.finditer(low):
        toks.append(m.group())
        ends.append(m.end())
    return toks, ends


class PhraseIndex:
    """
    A trie of token phrases: each known argument value (tokenized) gets an id, and
    :meth:`scan` finds every phrase a token list contains in one pass.
    """

    __slots__ = ("_root", "phrases")

    def __init__(self) -> None:
        self._root: dict[str, Any] = {}
        self.phrases: list[str] = []

    def add(self, toks: list[str]) -> int:
        """
        Return the id of a phrase, adding it if new; -1 if it is empty or too long.
        """
        if not toks or len(toks) > MAX_PHRASE:
            return -1
        node = self._root
        for tok in toks:
            node = node.setdefault(tok, {})
        pid = node.get(_END)
        if pid is None:
            pid = len(self.phrases)
            node[_END] = pid
            self.phrases.append(" ".join(toks))
        return int(pid)

    def starts(self, tok: str) -> bool:
        """
        Whether some phrase begins with the token.
        """
        return tok in self._root

    def scan(self, toks: list[str]) -> list[tuple[int, int, int]]:
        """
        Return ``(phrase id, its first token, the token after it)`` for every phrase in
        ``toks``.
        """
        root = self._root
        out: list[tuple[int, int, int]] = []
        n = len(toks)
        for i in range(n):
            node = root.get(toks[i])
            j = i + 1
            while node is not None:
                pid = node.get(_END)
                if pid is not None:
                    out.append((pid, i, j))
                if j >= n or j - i >= MAX_PHRASE:
                    break
                node = node.get(toks[j])
                j += 1
        return out


def code_shapes(values: Mapping[str, float]) -> tuple[frozenset[str], frozenset[str]] | None:
    """
    Return the shapes of an argument's values when they are an open class of codes
    (order numbers, user ids, e-mail addresses, zip codes: one token each that holds
    a digit or one of ``#@_``, in at least 80 % of the calls, and an open class as
    names are): a token of a text in one of those shapes may be a value never seen.
    A fine shape keeps each digit and sign and one letter for a run of letters of one
    case (``#W4817420``: ``#A9999999``; ``mia_garcia_4516``: ``a_a_9999``); a coarse
    one, the length and the kinds of characters (for codes of random letters and
    digits). None for any other argument.
    """
    total = coded = 0.0
    fine: set[str] = set()
    coarse: set[str] = set()
    for value, n in values.items():
        total += n
        if _code_like(value):
            coded += n
            fine.add(_fine_shape(value))
            coarse.add(_coarse_shape(value))
    if not total or coded < 0.8 * total or not _open_class(values, total):
        return None
    return frozenset(fine), frozenset(coarse)


def code_tokens(raw: str) -> list[tuple[str, str, str, int, int]]:
    """
    Return the tokens of a text as written that look like codes (see
    :func:`code_shapes`), stripped of the punctuation around them: ``(value, fine
    shape, coarse shape, start offset, end offset)`` in the order of the text (its last
    :data:`MAX_TEXT` characters are read).
    """
    raw = raw[-MAX_TEXT:]
    out: list[tuple[str, str, str, int, int]] = []
    for m in _WORD.finditer(raw):
        word = m.group()
        start = len(word) - len(word.lstrip(_CODE_LEAD))
        end = len(word.rstrip(_CODE_TRAIL))
        value = word[start:end]
        if _code_like(value):
            out.append(
                (
                    value,
                    _fine_shape(value),
                    _coarse_shape(value),
                    m.start() + start,
                    m.start() + end,
                )
            )
    return out


def _code_like(value: str) -> bool:
    return (
        2 <= len(value) <= MAX_CODE
        and _CODE.fullmatch(value) is not None
        and _DATE_OR_TIME.fullmatch(value) is None
    )


def _fine_shape(value: str) -> str:
    return _LETTERS.sub(lambda m: "A" if m.group()[0].isupper() else "a", _DIGIT.sub("9", value))


def _coarse_shape(value: str) -> str:
    kinds = {
        "9" if c.isdigit() else "A" if c.isupper() else "a" if c.isalpha() else "." for c in value
    }
    return f"{len(value)}:{''.join(sorted(kinds))}"


def value_format(values: Mapping[str, float]) -> str | None:
    """
    Return the format most of ``values`` (value -> calls that gave it) share:
    ``"date"`` (``YYYY-MM-DD``), ``"time"`` (``HH:MM``), ``"int"``, ``"name"`` (an
    open class of names: at least :data:`NAME_MIN_VALUES` distinct values, or fewer of
    which many were given once, most of them words), or None.
    Shares count calls, so that a value given now and then besides the format's
    ("dontcare" among a few party sizes) does not hide it.
    """
    counts = {"date": 0.0, "time": 0.0, "int": 0.0, "name": 0.0}
    total = 0.0
    for value, n in values.items():
        total += n
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            counts["date"] += n
        elif re.fullmatch(r"\d\d:\d\d", value):
            counts["time"] += n
        elif value.isdigit():
            counts["int"] += n
        elif _NAME.fullmatch(value) or _LOWER_NAME.fullmatch(value):
            counts["name"] += n
    best = max(counts, key=lambda k: counts[k])
    if best == "name" and not _open_class(values, total):
        return None
    return best if total and counts[best] >= 0.8 * total else None


def _open_class(values: Mapping[str, float], total: float) -> bool:
    """
    Whether an argument's values look like an open class, whose next value may well be
    one never seen: many distinct values, or a few of which those given once make up a
    good share of the calls (Good-Turing's estimate of the chance of a new value).
    """
    if len(values) >= NAME_MIN_VALUES:
        return True
    once = sum(1 for n in values.values() if n <= 1.0)
    return len(values) >= NAME_FEW_VALUES and once >= NAME_NEW_SHARE * total


def name_spans(raw: str, opener: Callable[[str], bool] | None = None) -> list[tuple[str, int, int]]:
    """
    Return the runs of capitalized words in a text as written (``"Likarion Wainaina"``,
    ``"Yours Truly"``): candidate values of open-class arguments the training calls
    never had. A single word that begins a sentence is left out, and "I", "I'm", month
    and weekday names end a run (a run either side of them is a name of its own): their
    capital says nothing.

    Args:
        raw: A request as written (its last :data:`MAX_TEXT` characters are read).
        opener: Whether a (lower-case) word that opens a sentence and a run is no part
            of the name: "To" in "To Sydney, please" (None: every word may be).

    Returns:
        ``(span, start offset, end offset)`` in the order of the text.
    """
    raw = raw[-MAX_TEXT:]
    out: list[tuple[str, int, int]] = []
    for m in _SPAN.finditer(raw):
        # a word whose capital says nothing ends a run ("Hi I'm Angela": "Hi", "Angela")
        runs: list[list[re.Match[str]]] = [[]]
        for w in _WORD.finditer(m.group()):
            if w.group().lower() in _SPAN_SKIP:
                runs.append([])
            else:
                runs[-1].append(w)
        for words in runs:
            while words and words[-1].group().lower() in _SPAN_JOINERS:
                words.pop()
            if not words or not words[0].group()[0].isupper():
                continue
            start = m.start() + words[0].start()
            if (
                opener is not None
                and len(words) > 1
                and opener(words[0].group().lower())
                and _SENTENCE_START.search(raw[:start])
            ):
                del words[0]
                while words and words[0].group().lower() in _SPAN_JOINERS:
                    del words[0]
                if not words:
                    continue
                start = m.start() + words[0].start()
            if len(words) == 1 and _SENTENCE_START.search(raw[:start]):
                continue
            end = m.start() + words[-1].end()
            out.append((" ".join(w.group() for w in words), start, end))
    return out


def rare_runs(
    toks: list[str], ends: list[int], text: str, common: Callable[[str], bool]
) -> list[tuple[int, int, str]]:
    """
    Return the runs of uncommon words in a text's tokens (``"walnut creek"`` in "look
    in walnut creek"): candidate values of open-class arguments where a text has no
    capitalized names to go by (written in lower case, or a user who does not
    capitalize). A run holds letters only, at most :data:`_MAX_RUN` words, may have
    "of", "the" (...) inside, and "i", month and weekday names end it, as for
    :func:`name_spans`.

    Args:
        toks: The text's tokens (:func:`token_ends`).
        ends: Where each token ends in ``text``.
        text: The text the tokens were read from (cut as they were).
        common: Whether a (lower-case) word is common: never part of a name.

    Returns:
        ``(first token, token after, the run as written)`` in the order of the text.
    """
    out: list[tuple[int, int, str]] = []
    run: list[int] = []

    def close() -> None:
        while run and toks[run[-1]] in _SPAN_JOINERS:
            run.pop()
        if run and len(run) <= _MAX_RUN:
            first, last = run[0], run[-1]
            out.append((first, last + 1, text[ends[first] - len(toks[first]) : ends[last]]))
        run.clear()

    for i, tok in enumerate(toks):
        if run and tok in _SPAN_JOINERS:
            run.append(i)
        elif tok.isalpha() and tok not in _SPAN_SKIP and not common(tok):
            if run and ends[i] - len(tok) - ends[run[-1]] > 1:  # not the next word
                close()
            run.append(i)
        else:
            close()
    close()
    return out


def recased(value: str) -> str:
    """
    Return a name found in lower case with each word capitalized, but "of", "the" (...)
    inside it (``"bank of america"``: ``"Bank of America"``).
    """
    return " ".join(
        w if i and w in _SPAN_JOINERS else w[:1].upper() + w[1:]
        for i, w in enumerate(value.split(" "))
    )


def normalized_mentions(
    text: str, fmt: str, anchor: dt.date | None, pm_hours: frozenset[int] = frozenset()
) -> list[tuple[str, str, int, int]]:
    """
    Return the values of format ``fmt`` that ``text`` states in words or in another
    format.

    Args:
        text: A request or reply.
        fmt: ``"date"``, ``"time"`` or ``"int"`` (see :func:`value_format`).
        anchor: The day "today" means; relative dates are skipped without one.
        pm_hours: Hours 1 to 11 that mean the afternoon when said without am or pm.

    Returns:
        ``(value, rule, start offset, end offset)`` in the order of the text.
    """
    low = text[-MAX_TEXT:].lower()
    if fmt == "int":
        return [
            (str(_NUMBERS[m.group()]), "number", m.start(), m.end())
            for m in re.finditer(r"[a-z]+", low)
            if m.group() in _NUMBERS
        ]
    if fmt == "time":
        return _times(low, pm_hours)
    if fmt == "date":
        return _dates(low, anchor)
    return []


def _hour(word: str) -> int:
    return int(word) if word.isdigit() else _HOUR_WORDS[word]


def _times(low: str, pm_hours: frozenset[int]) -> list[tuple[str, str, int, int]]:
    out: list[tuple[str, str, int, int]] = []
    out.extend(("12:00", "time", m.start(), m.end()) for m in _NOON.finditer(low))
    for rule in _TIME_RULES:
        for m in rule.finditer(low):
            a, b, c = m.group(1), m.group(2), m.group(3)
            if a in ("half", "quarter"):
                h = _hour(c) % 12
                minutes = 30 if a == "half" else 15
                if b == "to":
                    h, minutes = (h - 1) % 12, 60 - minutes
                meridian = ""
            else:
                h, minutes, meridian = _hour(a), int(b or 0), (c or "")
            if h > 23 or minutes > 59:
                continue
            tail = low[m.end() : m.end() + 24]
            if meridian.startswith("p") or (not meridian and _PM_AFTER.match(tail)):
                h = h % 12 + 12
            elif meridian.startswith("a") or _AM_AFTER.match(tail):
                h = h % 12
            elif h in pm_hours:
                h += 12
            out.append((f"{h:02d}:{minutes:02d}", "time", m.start(), m.end()))
    return _outermost(out)


def _outermost(found: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    """
    Keep the mentions no other contains (two rules read "6:30 pm"), in text order.
    """
    found.sort(key=lambda it: (it[2], -it[3]))
    out: list[tuple[str, str, int, int]] = []
    for item in found:
        if not out or item[3] > out[-1][3]:
            out.append(item)
    return out


def _day(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _dates(low: str, anchor: dt.date | None) -> list[tuple[str, str, int, int]]:
    if anchor is None:
        return []
    # ordinals in words become digits of the same length, so offsets stay the text's
    low = _ORDINAL_WORDS.sub(lambda m: f"{_ORDINALS[m.group()]}th".rjust(len(m.group())), low)
    out: list[tuple[str, str, int, int]] = []
    for rule, pattern in _DATE_RULES:
        for m in pattern.finditer(low):
            found = _date_of(rule, m.groups(), anchor)
            if found is not None:
                out.append((found.isoformat(), "date", m.start(), m.end()))
    return _outermost(out)


def _date_of(rule: str, groups: tuple[str | Any, ...], anchor: dt.date) -> dt.date | None:
    if rule == "month_day":
        return _day(anchor.year, _MONTHS[groups[0]], int(groups[1]))
    if rule == "day_month":
        return _day(anchor.year, _MONTHS[groups[1]], int(groups[0]))
    if rule in ("day_of_month", "the_day"):
        return _day(anchor.year, anchor.month, int(groups[0]))
    if rule == "next_month_day":
        year, month = (
            (anchor.year + 1, 1) if anchor.month == 12 else (anchor.year, anchor.month + 1)
        )
        return _day(year, month, int(groups[0]))
    if rule == "relative":
        word = groups[0]
        shift = 2 if word.startswith("day") else 1 if word == "tomorrow" else 0
        return anchor + dt.timedelta(days=shift)
    if rule in ("weekday_next_week", "next_week_weekday"):
        # that day of the week after the anchor's (weeks start on Monday)
        return anchor + dt.timedelta(days=7 - anchor.weekday() + _WEEKDAYS[groups[0]])
    # weekday: the first such day after the anchor ("this"/bare may be the anchor itself)
    ahead = (_WEEKDAYS[groups[1]] - anchor.weekday()) % 7
    if ahead == 0 and groups[0] == "next":
        ahead = 7
    return anchor + dt.timedelta(days=ahead)

"""
How the call forecast reads one session: :class:`SessionView` is its turns as the
forecast reads them (each text scanned once for known values, the latest value of
every earlier call's argument, the latest results); the functions below find, in a
scanned text, the mentions that may fill an argument and rank them by the words around
them.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from bisect import bisect_left, bisect_right
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._bounded import remember
from ._calls_counts import START, CallCounts
from ._calls_text import (
    MAX_TEXT,
    code_tokens,
    name_spans,
    normalized_mentions,
    rare_runs,
    token_ends,
)
from ._calls_turns import Key, Mention, calls_of, results_of, turn_text

if TYPE_CHECKING:
    from ._calls_cues import CueWeights

__all__ = [
    "ALIAS_HOWS",
    "SessionView",
    "TextScan",
    "arg_words",
    "as_written",
    "code_mentions",
    "known_tokens",
    "later_key",
    "mention",
    "mention_options",
    "open_class_mentions",
    "open_mentions",
    "overlaps",
    "rank_mentions",
    "span_mentions",
]

#: Words before and after a mention that tell which argument it fills.
_CUE_BEFORE = 3
_CUE_AFTER = 2
#: How a mention said a value in place of it: as a sure alias, as a hint, or as an alias
#: pooled over the arguments that have the value.
ALIAS_HOWS = ("alias", "hint", "pooled")
#: The words of an argument's name: lowercase runs, capitalized words, acronyms, digits.
_ARG_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
#: Results of the latest calls a session view keeps scanned, and the characters read
#: of each (its beginning, where a lookup's ids and names are).
_MAX_RESULTS = 8
_RESULT_CHARS = MAX_TEXT


@dataclass(slots=True)
class TextScan:
    """
    One text, scanned: the last mention of each known argument value, by key id.
    """

    low: str
    toks: list[str]
    ends: list[int]
    #: key id -> every mention ``(first token, token after, value, how)``
    found: dict[int, list[Mention]]
    #: value format -> its normalized mentions, worked out when first asked
    norm: dict[str, list[Mention]] = field(default_factory=dict)
    #: key id -> its last mention
    last: dict[int, Mention] = field(default_factory=dict)
    #: the text as written (cut as ``low``), where capitalized names are looked for
    raw: str = ""
    #: its codes (:func:`code_mentions`): first token, token after, value, shapes
    codes: list[tuple[int, int, str, str, str]] | None = None
    #: tool name -> the tokens inside its arguments' known values (:func:`known_tokens`)
    known: dict[str, set[int]] = field(default_factory=dict)

    def context(self, start: int, stop: int) -> list[str]:
        """
        Return the words around a mention, marked as before (``<``) or after (``>``).
        """
        toks = self.toks
        return [f"<{t}" for t in toks[max(0, start - _CUE_BEFORE) : start]] + [
            f">{t}" for t in toks[stop : stop + _CUE_AFTER]
        ]


class SessionView:
    """
    One session as the call forecast reads it, extended turn by turn.

    Each text is scanned once. The latest known value said of every argument is kept
    for the user's earlier requests and the agent's earlier replies, the last reply is
    kept apart, and so is the latest value of every earlier call's argument.

    Args:
        counts: The counts whose phrase index scans the texts.
        max_turns: Texts of at most this many latest turns are searched for
            normalized values (known values are kept from every turn).
    """

    def __init__(self, counts: CallCounts, max_turns: int) -> None:
        counts.aliases(now=False)
        self.counts = counts
        self.max_turns = max_turns
        self.user: list[TextScan] = []
        self.agent: list[TextScan] = []
        self.user_seen: dict[int, tuple[int, Mention]] = {}  # kid -> (turn, last mention)
        self.agent_seen: dict[int, tuple[int, Mention]] = {}  # before the last reply
        self.flow_values: dict[Key, str] = {}
        self.last_args: dict[str, dict[str, str]] = {}
        self.prev_state = START
        self.prev_calls: tuple[str, ...] = ()
        self.called: set[str] = set()  # every name an earlier turn called
        #: the names the request called so far (a fork's :meth:`add_calls`): a call of
        #: one of them again in this turn is most often the last one with one value
        #: changed (the next day, another airline), its sources trusted apart
        self.made: frozenset[str] = frozenset()
        #: the results of the latest calls that gave one, scanned, the latest last
        self.results: list[TextScan] = []
        self.n_turns = 0
        #: What the forecast worked out from the turns so far (emptied by add_turn).
        self.memo: dict[str, Any] = {}

    def scan(self, text: str) -> TextScan:
        """
        Scan one text for every known argument value and alias (cached per text while
        the counts stay the same).
        """
        cache = self.counts.scans
        hit = cache.get(text)
        if hit is not None:
            return hit
        low = text[-MAX_TEXT:].lower()
        toks, ends = token_ends(low)
        found: dict[int, list[Mention]] = {}
        if toks:
            counts = self.counts
            for pid, start, after in counts.index.scan(toks):
                for kid, value in counts.phrase_keys[pid].items():
                    found.setdefault(kid, []).append((start, after, value, ""))
                # a value of their class, for the arguments never given it
                for kid, value in counts.class_takers(pid):
                    found.setdefault(kid, []).append((start, after, value, "class"))
            for pid, start, after in counts.alias_index.scan(toks):
                for kid, (value, how) in counts.alias_keys[pid].items():
                    found.setdefault(kid, []).append((start, after, value, how))
        raw = text[-MAX_TEXT:]
        scan = TextScan(low, toks, ends, found, raw=raw if len(raw) == len(low) else "")
        scan.last = {kid: max(got, key=later_key) for kid, got in found.items()}
        return remember(cache, text, scan)

    def add_turn(self, turn: Mapping[str, Any]) -> None:
        """
        Read a completed turn: its request, reply, state and calls.
        """
        n = self.n_turns
        self.memo.clear()
        if self.agent:
            seen = self.agent_seen
            for kid, found in self.agent[-1].last.items():
                seen[kid] = (n - 1, found)
        user = self.scan(turn_text(turn, "text"))
        seen = self.user_seen
        for kid, found in user.last.items():
            seen[kid] = (n, found)
        self.user.append(user)
        self.agent.append(self.scan(turn_text(turn, "system")))
        if len(self.user) > self.max_turns:
            del self.user[0], self.agent[0]
        calls = self.add_calls(turn)
        self.made = frozenset()
        state = turn.get("state")
        self.prev_state = state if isinstance(state, str) else START
        self.prev_calls = tuple(sorted({name for name, _, _ in calls}))
        self.called.update(self.prev_calls)
        self.n_turns += 1

    def add_calls(self, turn: Mapping[str, Any]) -> list[tuple[str, dict[str, str], bool]]:
        """
        Read a turn's calls (their arguments and results), and return them: of a
        completed turn (:meth:`add_turn`), or the calls a request made so far (a
        fork's, :meth:`fork`), which the next call of the turn may copy or follow.
        """
        self.memo.clear()
        calls = calls_of(turn)
        for name, args, _ in calls:
            self.last_args[name] = args
            for arg, value in args.items():
                self.flow_values[(name, arg)] = value
        self.made = self.made.union(name for name, _, _ in calls)
        for result in results_of(turn):
            self.results.append(self.scan(result[:_RESULT_CHARS]))
        del self.results[:-_MAX_RESULTS]
        return calls

    def fork(self) -> SessionView:
        """
        A view of the same turns whose later calls (:meth:`add_calls`) leave this one
        as it is: the texts and what was said are shared, the calls' values and
        results copied (a few dozen at most).
        """
        other = copy.copy(self)
        other.flow_values = dict(self.flow_values)
        other.last_args = dict(self.last_args)
        other.results = list(self.results)
        other.memo = {}
        return other

    def said_options(
        self, kid: int, fmt: str | None, anchor: dt.date | None, *, agent: bool, turns: int = 1
    ) -> list[tuple[int, TextScan | None, list[Mention]]]:
        """
        Return the latest ``turns`` earlier turns whose requests (or replies before the
        last one) mention an argument, latest first: each turn's number, its scan (None
        once it left the window of texts kept) and every mention of the argument in it.
        """
        seen = (self.agent_seen if agent else self.user_seen).get(kid)
        scans = self.agent[:-1] if agent else self.user
        first = self.n_turns - len(self.user)
        out: list[tuple[int, TextScan | None, list[Mention]]] = []
        for back in range(len(scans) - 1, -1, -1):
            if len(out) >= turns:
                return out
            if fmt is None and (seen is None or seen[0] < first + back):
                if seen is None or seen[0] < first:
                    break
                continue  # known values only: skip to the turn that said one
            options = mention_options(scans[back], kid, fmt, self.counts, anchor)
            if options:
                out.append((first + back, scans[back], options))
        if not out and seen is not None and seen[0] < first:
            out.append((seen[0], None, [seen[1]]))
        return out


def later_key(found: Mention) -> tuple[int, int]:
    """
    Order mentions by where they end, then known values before normalized before aliases.
    """
    how = found[3]
    return found[1], 2 if not how else 0 if how in ALIAS_HOWS else 1


def mention_options(
    scan: TextScan, kid: int, fmt: str | None, counts: CallCounts, anchor: dt.date | None
) -> list[Mention]:
    """
    Return what a text says of an argument: its known values and aliases, and, for an
    argument of a format, the values said in words or another format.
    """
    options = scan.found.get(kid, [])
    if fmt is not None and scan.toks:
        norm = scan.norm.get(fmt)
        if norm is None:
            norm = scan.norm[fmt] = [
                (bisect_right(scan.ends, start), bisect_left(scan.ends, end) + 1, value, rule)
                for value, rule, start, end in normalized_mentions(
                    scan.low, fmt, anchor, counts.pm_hours()
                )
            ]
        if norm:
            options = [*options, *norm]
    return options


def known_tokens(scan: TextScan, kids: Iterable[int]) -> set[int]:
    """
    Return the tokens of a text inside the known values it says of the arguments
    ``kids`` (key ids), verbatim: no name or code there is new.
    """
    return {
        t for kid in kids for m in scan.found.get(kid, ()) if not m[3] for t in range(m[0], m[1])
    }


def overlaps(found: Mention, tokens: Container[int]) -> bool:
    """
    Whether a mention holds one of ``tokens`` (token indexes): its work grows with the
    mention's words, not with what else the text says.
    """
    return any(t in tokens for t in range(found[0], found[1]))


def code_mentions(scan: TextScan, counts: CallCounts, key: Key) -> list[Mention]:
    """
    Return the codes a text says in one of the shapes of an argument's values (an open
    class of codes, :meth:`CallCounts.shapes`), as mentions (``how`` ``"code"``): an
    order number, a user id or an e-mail address never seen. The text's codes are
    worked out once per scan.
    """
    shapes = counts.shapes(key)
    if shapes is None or not scan.toks:
        return []
    got = scan.codes
    if got is None:
        got = scan.codes = [
            (bisect_right(scan.ends, start), bisect_left(scan.ends, end) + 1, value, fine, coarse)
            for value, fine, coarse, start, end in code_tokens(scan.raw)
        ]
    fine, coarse = shapes
    return [
        (first, after, value, "code")
        for first, after, value, fine_shape, coarse_shape in got
        if fine_shape in fine or coarse_shape in coarse
    ]


def open_mentions(
    scan: TextScan, counts: CallCounts, key: Key, known: Container[int]
) -> list[Mention]:
    """
    Return what a text may give an argument whose next value may be one no training
    call had (:func:`open_class_mentions`) that holds none of the ``known`` values'
    tokens (:func:`known_tokens`).
    """
    return [m for m in open_class_mentions(scan, counts, key) if not overlaps(m, known)]


def open_class_mentions(scan: TextScan, counts: CallCounts, key: Key) -> list[Mention]:
    """
    Return every value never seen a text may give an argument of an open class (its
    codes in the argument's shapes, or else its names), known values or not: what the
    words around them are learned from.
    """
    if counts.shapes(key) is not None:
        return code_mentions(scan, counts, key)
    return span_mentions(scan, counts) if counts.key_info(key)[2] == "name" else []


def as_written(counts: CallCounts, key: Key, found: Mention) -> Mention:
    """
    Return a name mention with its value as the argument's values are written: a run
    of uncommon words (``how`` ``"words"``) capitalized where they are
    (:meth:`CallCounts.cased`); any other mention as it is.
    """
    if found[3] != "words":
        return found
    return (found[0], found[1], counts.cased(key, found[2]), found[3])


def span_mentions(scan: TextScan, counts: CallCounts) -> list[Mention]:
    """
    Return the names a text may give values it never had, as mentions, worked out once
    per scan: its runs of capitalized words (see :func:`~graph._calls_text.name_spans`,
    ``how`` ``"span"``), or in a text written without capitals, its runs of words
    uncommon in the requests counted (:func:`~graph._calls_text.rare_runs`, ``how``
    ``"words"``: :meth:`CallCounts.cased` writes one as an argument's values are).
    """
    got = scan.norm.get("\0span")
    if got is None:
        got = [
            (bisect_right(scan.ends, start), bisect_left(scan.ends, end) + 1, value, "span")
            for value, start, end in (name_spans(scan.raw, counts.opener) if scan.toks else ())
        ]
        if not got and scan.toks and scan.raw == scan.low:  # written without capitals
            got = [
                (first, after, value, "words")
                for first, after, value in rare_runs(scan.toks, scan.ends, scan.low, counts.common)
            ]
        scan.norm["\0span"] = got
    return got


def arg_words(arg: str) -> list[str]:
    """
    Return the words of an argument's name, lowercased (``origin_city``,
    ``OriginCity`` and ``filters.origin_city`` all have ``origin`` and ``city``).
    """
    return sorted({w.lower() for w in _ARG_WORD.findall(arg)})


def rank_mentions(
    scan: TextScan,
    options: list[Mention],
    cues: CueWeights | None,
    extra: Iterable[str] = (),
) -> list[tuple[float, Mention]]:
    """
    Return ``options`` with how well their surrounding words (and the ``extra`` words,
    the same for all: the question the request answers) fit ``cues``, best first; on a
    tie the later one, a known value before a normalized one before an alias.
    """
    if not cues:
        return sorted(((0.0, m) for m in options), key=lambda it: later_key(it[1]), reverse=True)
    base = sum(cues.get(w, 0.0) for w in extra)
    scored = [(base + sum(cues.get(w, 0.0) for w in scan.context(m[0], m[1])), m) for m in options]
    scored.sort(key=lambda it: (it[0], *later_key(it[1])), reverse=True)
    return scored


def mention(
    scan: TextScan,
    kid: int,
    fmt: str | None,
    counts: CallCounts,
    anchor: dt.date | None,
    cues: CueWeights | None = None,
) -> Mention | None:
    """
    Return what a text says of an argument: of its known values, aliases and
    normalized values (for arguments of a format), the one whose surrounding words
    best fit ``cues`` (word -> weight), the last one on a tie.
    """
    options = mention_options(scan, kid, fmt, counts, anchor)
    if not options:
        return None
    if len(options) == 1:
        return options[0]
    if not cues:
        return max(options, key=later_key)

    def fit(found: Mention) -> tuple[float, int, int]:
        return sum(cues.get(w, 0.0) for w in scan.context(found[0], found[1])), *later_key(found)

    return max(options, key=fit)

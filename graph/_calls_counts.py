"""
What the call forecast counts in session logs. :class:`CallCounts` holds the counts
learned from every training session: which calls follow which contexts, the argument
sets of each call, the values of each argument (and the phrase index that finds them
in text), which earlier call's argument an argument copies, which value the next call
of a name gives an argument in place of the last one's, the anchor day relative dates
count from, and the arguments that take a request whole.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._aging import drop_below, halve
from ._calls_names import NameWords, name_tokens
from ._calls_text import (
    COMMON_SHARE,
    PhraseIndex,
    asked_words,
    code_shapes,
    recased,
    tokenize,
    value_format,
)
from ._calls_turns import (
    Call,
    Key,
    calls_of,
    raw_calls,
    surface,
    turn_text,
    turns_of,
    value_kind,
    value_shape,
)
from ._persistence import number

if TYPE_CHECKING:
    from ._calls_view import TextScan

__all__ = ["BOUND_EVERY", "PRUNE_EVERY", "START", "CallCounts", "whole_forms"]

#: An alias is a word or two said in place of a value at least this often ...
_ALIAS_MIN = 3.0
#: ... in at least this share of the calls whose requests said it, and this many times
#: as often as the value is given without them (which keeps out the words said before
#: any call, "I", "is", however often they are said).
_ALIAS_SHARE = 0.5
_ALIAS_LIFT = 2.0
#: An alias followed by its value in fewer than this share of the calls whose requests
#: said it is a mere hint ("salon" for a unisex salon, "one" of "one way" for one
#: traveller), a source of its own (``how`` is ``"hint"``): its precision and its rate
#: of being given are learned apart from those of sure aliases ("wifi" for ``True``).
_ALIAS_SURE = 0.8
#: An alias pooled over arguments is said in place of its value in this many calls: the
#: calls of one session, each with the value, would make a chance pair of words ("her
#: name" for the name the user gave earlier) an alias of every argument with the value.
_POOLED_MIN = 10.0
#: The formats of arguments whose aliases are their own, never pooled (see
#: :meth:`CallCounts._pooled_aliases`).
_UNPOOLED_FORMATS = frozenset({"date", "time", "int"})
#: An argument takes values of another's class (cities, cuisines) when at least this
#: many distinct values of its calls ...
_CLASS_MIN_SHARED = 2
#: ... given in at least this share of its calls, are values of the other's: a value
#: known for the other is then a candidate of it, said "as a value of its class"
#: (``how`` ``"class"``, a source of its own). Never for arguments of a format, and only
#: values in words, as aliases are pooled (:func:`_pooled_value`): numbers, truth
#: values and "dontcare" arguments of every kind share.
_CLASS_COVER = 0.5
#: ... and the other's calls give values this one knows in at least this share (a
#: field of free text that holds a few names of every kind lends none).
_CLASS_LENT = 0.1
#: A value more arguments than this have tells no class apart from another, and is
#: passed over in finding them: the work stays within this squared for each value.
_CLASS_MAX_HOLDERS = 64
#: A value is offered as the one that follows another once seen following it this often
#: (as an alias must be said: a pair seen once or twice is as likely chance).
_SUCCESSOR_MIN = 3.0
#: The context of the first turn (no previous turn).
START = ""
#: Every this many sessions counted, the alias counts drop the words said in place of
#: a value that cannot be near an alias: said once, or in fewer than this share of the
#: calls whose requests said them (an alias's is ``_ALIAS_SHARE``), so that they grow
#: with the words said rather than with the words times every value ever given (a
#: date, a name: nearly all said in place of a value once or twice). What is dropped
#: is counted again from nothing; how often each word was said is kept.
PRUNE_EVERY = 1000
_PRUNE_SHARE = 0.25
#: Every this many sessions counted, a model learning online that holds more word
#: counts than its bound prunes (as at ``PRUNE_EVERY``) and ages at once, rather than
#: at the next ``PRUNE_EVERY``: it holds at most what this many sessions add above its
#: bound (looking costs a sum over its few hundred dicts by argument and tool, about
#: 0.04 ms at 260,000 word counts; the name model keeps its own count of pairs).
BOUND_EVERY = 50
#: How many earlier calls an argument's value is compared with, when learning which
#: earlier argument it copies.
_MAX_FLOW_CALLS = 12
#: The punctuation a request's whole text may lose as an argument's value ...
_WHOLE_PUNCTUATION = " .,;:!?\"'"
#: ... and how many characters it may lose so, with the spaces around it.
_WHOLE_SLACK = 8
#: The fewest words of a request taken whole as a query ...
_WHOLE_WORDS = 4
#: ... and the share of an argument's calls that took it so, for its next call to.
_WHOLE_SHARE = 0.3


def whole_forms(text: str) -> dict[str, str]:
    """
    The forms in which a request's whole text may be handed on as an argument's value
    (a search query): as written (stripped of spaces around it), lower-cased, without
    the punctuation around it, or both.
    """
    written = text.strip()
    bare = written.strip(_WHOLE_PUNCTUATION)
    return {"written": written, "lower": written.lower(), "bare": bare, "bare_lower": bare.lower()}


class CallCounts:
    """
    The counts the call forecast learns from sessions, added to session by session.
    They are counted in ints while whole (until :meth:`age` halves them): CPython
    shares the ints up to 256, where each float would be an object of 24 bytes, and a
    model that learns online holds hundreds of thousands of counts.
    """

    def __init__(self) -> None:
        self.n_sessions = 0
        self.names: dict[str, list[float]] = {}  # name -> [calls, read-only calls]
        self.patterns: dict[str, dict[tuple[str, ...], float]] = {}
        self.values: dict[Key, dict[str, float]] = {}
        #: (name, arg) -> [calls that gave it, those whose value began with a capital]
        self.casing: dict[Key, list[float]] = {}
        #: (name, arg) -> surface -> JSON type (``int``, ``bool``, ...) -> n, for the
        #: values that are not strings or are strings shaped like another type ("2")
        self.kinds: dict[Key, dict[str, dict[str, float]]] = {}
        self.flow: dict[Key, dict[Key, float]] = {}
        #: (name, arg) -> form (see :func:`whole_forms`) -> calls whose value was their
        #: request's whole text in that form (a search query handed on as written)
        self.whole: dict[Key, dict[str, float]] = {}
        #: (name, arg) -> value -> the value the next call of that name gave instead -> n
        self.succ: dict[Key, dict[str, dict[str, float]]] = {}
        self.contexts: dict[tuple[str, ...], list[Any]] = {}  # ctx -> [turns, {name: n}]
        #: the names each turn called by its words, for requests without a state
        self.name_words = NameWords()
        self.dates: dict[str, float] = {}  # anchor votes
        self.hours: dict[int, float] = {}  # hour of day of time values
        self.index = PhraseIndex()
        self.key_ids: dict[Key, int] = {}
        self.keys: list[Key] = []
        self.phrase_keys: list[dict[int, str]] = []
        # aliases: (name, arg) -> value -> words -> calls; name -> words -> calls (by
        # value, not by phrase: an argument has a few values said in other words, each
        # beside many phrases, where a dict a phrase would hold a value or two, and a
        # tuple of both a key would cost an object a count)
        self.said: dict[Key, dict[str, dict[str, float]]] = {}
        self.words: dict[str, dict[str, float]] = {}
        self.alias_index = PhraseIndex()
        self.alias_keys: list[dict[int, tuple[str, str]]] = []  # argument -> (value, how)
        #: key id -> the key ids of the arguments that take its values as of their class
        self.lends_to: dict[int, tuple[int, ...]] = {}
        self._taken: dict[int, tuple[tuple[int, str], ...]] = {}  # phrase -> class_takers
        self._aliases_stale = False
        self._aliases_built = 0
        self._derived: dict[Any, Any] = {}
        #: What the forecast worked out from these counts (emptied when they change).
        self.memo: dict[Any, Any] = {}
        #: Texts scanned with these counts (emptied when they change).
        self.scans: dict[str, TextScan] = {}

    # -- learning -------------------------------------------------------------------

    def add(self, session: Any, start: int = 0) -> None:
        """
        Count one session: its turns from ``start`` on, those before it read as their
        context only (a session that goes on, counted before up to there; it is not
        counted as another session then).
        """
        self.n_sessions += not start
        self._changed()
        prev_state: str = START
        prev_calls: tuple[str, ...] = ()
        seen: list[Call] = []
        last: dict[str, dict[str, str]] = {}
        before: list[str] = []
        reply: list[str] = []
        called: set[str] = set()
        for i, turn in enumerate(turns_of(session)):
            calls = calls_of(turn)
            counted = i >= start  # the turns before are the context of those counted
            text = turn_text(turn, "text")
            now = tokenize(text)
            state = turn.get("state")
            names = tuple(sorted({name for name, _, _ in calls}))
            if counted:
                if calls:
                    self._count_words(calls, before + now)
                self.name_words.add(name_tokens(now, asked_words(reply), prev_calls, called), names)
                self._count_contexts(prev_state, prev_calls, state, names)
                self._count_follows([name for name, _, _ in calls])
                self._count_kinds(turn)
            for name, args, read_only in calls:
                if counted:
                    self._add_call(name, args, read_only, seen, text)
                    self._add_successors(name, args, last.get(name))
                last[name] = args
            before, reply = now, tokenize(turn_text(turn, "system"))
            called.update(names)
            seen.extend((name, args) for name, args, _ in calls)
            del seen[:-_MAX_FLOW_CALLS]
            prev_state = state if isinstance(state, str) else START
            prev_calls = names
        if not start and self.n_sessions % PRUNE_EVERY == 0:
            self.prune_said()

    def _count_contexts(
        self, prev_state: str, prev_calls: tuple[str, ...], state: Any, names: tuple[str, ...]
    ) -> None:
        """
        Count a turn and the names it called in each context it was in: after the
        previous turn's state and calls, after its state, anywhere, and in its own state.
        """
        ctxs = [("p", prev_state, *prev_calls), ("p", prev_state), ("*",)]
        if isinstance(state, str):
            ctxs.append(("s", state))
        for ctx in ctxs:
            self._count_context(ctx, names)

    def _count_follows(self, names: list[str]) -> None:
        """
        Count, after each call of a turn (context ``("c", name)``), the name of the
        call the turn made next, or none after its last.
        """
        for i, name in enumerate(names):
            self._count_context(("c", name), names[i + 1 : i + 2])

    def _count_context(self, ctx: tuple[str, ...], names: Sequence[str]) -> None:
        """
        Count one more turn (or call) in ``ctx``, and the names called there.
        """
        entry = self.contexts.setdefault(ctx, [0, {}])
        entry[0] += 1
        named = entry[1]
        for name in names:
            named[name] = named.get(name, 0) + 1

    def _count_kinds(self, turn: Mapping[str, Any]) -> None:
        """
        Count the JSON types a turn's calls gave their values that are not strings, or
        are strings shaped like another type.
        """
        for name, args, _ in raw_calls(turn):
            for arg, value in args.items():
                text = surface(value) if isinstance(arg, str) else None
                kind = value_kind(value)
                if text is not None and (kind != "str" or value_shape(text) is not None):
                    per = self.kinds.setdefault((name, arg), {}).setdefault(text, {})
                    per[kind] = per.get(kind, 0) + 1

    def prune_said(self) -> None:
        """
        Drop the alias counts of words said in place of a value that cannot be near an
        alias (see :data:`PRUNE_EVERY`; :data:`BOUND_EVERY` too, over the bound).
        """
        for key, per_key in list(self.said.items()):
            per_name = self.words.get(key[0], {})
            for value, per_value in list(per_key.items()):
                kept = {
                    gram: n
                    for gram, n in per_value.items()
                    if n >= max(2.0, _PRUNE_SHARE * per_name.get(gram, 0.0))
                }
                if kept:
                    per_key[value] = kept
                else:
                    del per_key[value]
            if not per_key:
                del self.said[key]

    def vocabulary(self) -> int:
        """
        How many word counts these counts hold: the words said before each tool's calls,
        those said in place of each argument's values (by value), and the features
        names are read from (by name). They grow with what is said; the rest grows with
        the tools, their arguments and the values given.
        """
        words = sum(len(per) for per in self.words.values())
        return words + self.alias_counts() + self.name_words.pairs()

    def alias_counts(self) -> int:
        """
        How many counts of words said in place of a value these counts hold.
        """
        return sum(len(per) for per_key in self.said.values() for per in per_key.values())

    def age(self) -> None:
        """
        Halve every count, and drop the word counts that fall below one (those counted
        once since the last aging, or long ago): a ratio of counts stays as it was, an
        alias or a successor must be seen again to count as often as it must. The values
        given are kept, with their counts halved.
        """
        for counts in (
            self.names,
            self.patterns,
            self.values,
            self.casing,
            self.kinds,
            self.flow,
            self.whole,
            self.succ,
            self.contexts,
            self.dates,
            self.hours,
            self.words,
            self.said,
        ):
            halve(counts)
        drop_below(self.words, 1.0)
        drop_below(self.said, 1.0)
        self.name_words.age()
        self._changed()

    def _changed(self) -> None:
        self._derived.clear()
        self._taken.clear()
        self.memo.clear()
        self.scans.clear()
        self._aliases_stale = True

    def _add_call(
        self, name: str, args: dict[str, str], read_only: bool, seen: list[Call], text: str
    ) -> None:
        entry = self.names.setdefault(name, [0, 0])
        entry[0] += 1
        entry[1] += read_only
        pats = self.patterns.setdefault(name, {})
        pattern = tuple(sorted(args))
        pats[pattern] = pats.get(pattern, 0) + 1
        given: dict[str, list[tuple[str, str]]] = {}  # value -> the earlier calls' arguments
        for earlier, earlier_args in seen:
            for other, other_value in earlier_args.items():
                given.setdefault(other_value, []).append((earlier, other))
        for arg, value in args.items():
            key = (name, arg)
            vals = self.values.setdefault(key, {})
            vals[value] = vals.get(value, 0) + 1
            casing = self.casing.setdefault(key, [0, 0])
            casing[0] += 1
            casing[1] += value[:1].isupper()
            self._index_value(key, value)
            flows = self.flow.setdefault(key, {})
            for src in given.get(value, ()):
                flows[src] = flows.get(src, 0) + 1
            self._vote_anchor(value, text)
            # a query: a request of a few words handed on whole (a value said alone is
            # no query: "Sacramento.", "5th and Main")
            if abs(len(value) - len(text)) <= _WHOLE_SLACK and len(value.split()) >= _WHOLE_WORDS:
                form = next((f for f, v in whole_forms(text).items() if v == value), None)
                if form is not None:
                    per_form = self.whole.setdefault(key, {})
                    per_form[form] = per_form.get(form, 0) + 1

    def _add_successors(
        self, name: str, args: dict[str, str], before: dict[str, str] | None
    ) -> None:
        """
        Count, for each argument the previous call of ``name`` (in this session, this
        turn or an earlier one) gave another value, the value it gave then and now:
        the next day, the next airline, one more guest.
        """
        if before is None:
            return
        for arg, value in args.items():
            old = before.get(arg)
            if old is not None and old != value:
                per_old = self.succ.setdefault((name, arg), {}).setdefault(old, {})
                per_old[value] = per_old.get(value, 0) + 1

    def successors(self, key: Key, value: str, top: int = 2) -> list[str]:
        """
        Return the values the next call of the name most often gave ``key`` instead of
        ``value`` (each seen at least ``_SUCCESSOR_MIN`` times), most frequent first.
        """
        per_old = self.succ.get(key, {}).get(value)
        if not per_old:
            return []
        got = (v for v, n in per_old.items() if n >= _SUCCESSOR_MIN)
        return sorted(got, key=lambda v: -per_old[v])[:top]

    def _count_words(self, calls: list[tuple[str, dict[str, str], bool]], toks: list[str]) -> None:
        """
        Count the words and word pairs of the last two requests against the values of
        the calls that followed, where a value was not said verbatim.
        """
        intern = sys.intern  # one object for each word and value, in every count of it
        grams = {intern(t) for t in toks}
        grams.update(intern(f"{a} {b}") for a, b in itertools.pairwise(toks))
        said = f" {' '.join(toks)} "
        for name, args, _ in {c[0]: c for c in calls}.values():
            per_name = self.words.setdefault(name, {})
            for gram in grams:
                per_name[gram] = per_name.get(gram, 0) + 1
            for arg, given in args.items():
                phrase = " ".join(tokenize(given))
                if not phrase or f" {phrase} " in said:
                    continue
                per_value = self.said.setdefault((name, arg), {}).setdefault(intern(given), {})
                for gram in grams:
                    per_value[gram] = per_value.get(gram, 0) + 1

    def aliases(self, *, now: bool = True) -> None:
        """
        Rebuild the index of aliases (words said in place of a value: "SFO" for "San
        Francisco", "pets" for ``True``) if sessions were added since it was built.

        Args:
            now: Rebuild whatever was added; if False, only once the sessions added
                make up a twentieth of all (sessions judged one by one meanwhile are
                judged with the aliases of a little earlier).
        """
        if not self._aliases_stale:
            return
        if not now and self.n_sessions - self._aliases_built < max(1, self.n_sessions // 20):
            return
        self._aliases_stale = False
        self._aliases_built = self.n_sessions
        self.scans.clear()
        self.alias_index = PhraseIndex()
        self.alias_keys = []
        own: set[tuple[str, str, str]] = set()  # (tool, words, value) of its own aliases
        for key, per_key in self.said.items():
            per_name = self.words.get(key[0], {})
            kid = self.key_ids.get(key)
            if kid is None:
                continue
            if self.key_info(key)[2] == "date":
                continue  # relative dates are the rules' business, whatever day today is
            calls = self.names[key[0]][0]
            values = self.values.get(key, {})
            for gram, per_value in by_words(per_key).items():
                value, n = max(per_value.items(), key=lambda it: (it[1], it[0]))
                share = _alias_share(n, per_name.get(gram, n), calls, values[value])
                if n < _ALIAS_MIN or share < _ALIAS_SHARE:
                    continue  # too rare, or the value is no likelier after the words
                self._add_alias(gram, kid, value, "alias" if share >= _ALIAS_SURE else "hint")
                own.add((key[0], gram, value))
        self._pooled_aliases(own)
        self._value_classes()

    def _value_classes(self) -> None:
        """
        Find the arguments whose values are of another's class (see
        :data:`_CLASS_COVER`): "Oslo", known as a hotel's city, is then a candidate of a
        doctor's city, which the training calls never gave it. Direct links only: a
        chain of arguments sharing a value or two does not make one class of all.
        """
        values: dict[int, dict[str, float]] = {}
        for key, vals in self.values.items():
            kid = self.key_ids.get(key)
            if kid is None or self.key_info(key)[2] in _UNPOOLED_FORMATS:
                continue
            own: dict[str, float] = {}
            for value, n in vals.items():
                if _pooled_value(value):
                    low = value.lower()
                    own[low] = own.get(low, 0.0) + n
            if own:
                values[kid] = own
        holders: dict[str, list[int]] = {}
        for kid, own in values.items():
            for value in own:
                holders.setdefault(value, []).append(kid)
        covered: dict[tuple[int, int], list[float]] = {}  # (taker, lender) -> [values, calls]
        for kid, own in values.items():
            for value, n in own.items():
                lenders = holders[value]
                if len(lenders) > _CLASS_MAX_HOLDERS:
                    continue
                for other in lenders:
                    if other != kid:
                        got = covered.setdefault((kid, other), [0.0, 0.0])
                        got[0] += 1
                        got[1] += n
        totals = {kid: sum(own.values()) for kid, own in values.items()}
        takers: dict[int, list[int]] = {}
        for (kid, other), (shared, calls) in covered.items():
            lent = covered[(other, kid)][1]  # the other's calls with values this one knows
            if (
                shared >= _CLASS_MIN_SHARED
                and calls >= _CLASS_COVER * totals[kid]
                and lent >= _CLASS_LENT * totals[other]
            ):
                takers.setdefault(other, []).append(kid)
        self.lends_to = {kid: tuple(sorted(kids)) for kid, kids in takers.items()}
        self._taken.clear()

    def class_takers(self, pid: int) -> tuple[tuple[int, str], ...]:
        """
        Return the arguments that take a known value (phrase ``pid``) as a value of
        their class, never having had it (see :meth:`_value_classes`), each with the
        value as the argument that had it writes it (worked out once per phrase).
        """
        got = self._taken.get(pid)
        if got is None:
            holders = self.phrase_keys[pid]
            pooled: dict[int, str] = {}
            for kid, value in holders.items():
                for other in self.lends_to.get(kid, ()):
                    if other not in holders:
                        pooled.setdefault(other, value)
            got = self._taken[pid] = tuple(pooled.items())
        return got

    def _add_alias(self, gram: str, kid: int, value: str, how: str) -> None:
        pid = self.alias_index.add(gram.split(" "))
        while len(self.alias_keys) <= pid:
            self.alias_keys.append({})
        self.alias_keys[pid].setdefault(kid, (value, how))

    def _pooled_aliases(self, own: set[tuple[str, str, str]]) -> None:
        """
        Add the aliases of a value said in place of it for any argument, to every
        argument that has the value ("SF" for "San Francisco", learned of flights'
        origins and destinations together, and given to hotels' too; "tacos" for
        "Mexican", of a tool the training calls never made): the words go with the
        value in the calls of every tool one of whose arguments has it (in at least
        ``_POOLED_MIN`` of them), as an argument's own aliases go with its value. Only
        values in words: a number, a date, a time or a truth value is said in place of
        another for one argument ("one" of "one way", "wifi" for ``True``), not for them
        all. A tool with an argument that has the words as its own alias of the value
        (``own``) takes them for that argument alone: its calls told which one they fill.
        """
        pooled: dict[str, dict[str, float]] = {}  # value -> words -> calls
        holders: dict[str, list[tuple[Key, int]]] = {}  # value -> (argument, key id)
        for key, vals in self.values.items():
            kid = self.key_ids.get(key)
            if kid is None or self.key_info(key)[2] in _UNPOOLED_FORMATS:
                continue
            words = {value for value in vals if _pooled_value(value)}
            if not words:
                continue
            for value in words:
                holders.setdefault(value, []).append((key, kid))
            for gram, per_value in by_words(self.said.get(key, {})).items():
                for value, n in per_value.items():
                    if value in words:
                        per_gram = pooled.setdefault(value, {})
                        per_gram[gram] = per_gram.get(gram, 0.0) + n
        for value, per_gram in pooled.items():
            held = holders[value]
            names = {key[0] for key, _ in held}
            calls = sum(self.names[name][0] for name in names)
            given = sum(self.values[key][value] for key, _ in held)
            sure = [
                gram
                for gram, n in per_gram.items()
                if n >= _POOLED_MIN
                and _alias_share(
                    n,
                    sum(self.words.get(name, {}).get(gram, 0.0) for name in names) or n,
                    calls,
                    given,
                )
                >= _ALIAS_SURE
            ]
            # a pair of words one of which is an alias alone ("sf to") would take the
            # word beside it from the argument it fills ("to vegas")
            alone = {gram for gram in sure if " " not in gram}
            for gram in sure:
                if " " in gram and alone.intersection(gram.split(" ")):
                    continue
                for key, kid in held:
                    if (key[0], gram, value) not in own:
                        self._add_alias(gram, kid, value, "pooled")

    def _index_value(self, key: Key, value: str) -> None:
        kid = self.key_ids.get(key)
        if kid is None:
            kid = self.key_ids[key] = len(self.keys)
            self.keys.append(key)
        pid = self.index.add(tokenize(value))
        if pid < 0:
            return
        while len(self.phrase_keys) <= pid:
            self.phrase_keys.append({})
        # values that differ only in case or punctuation: the most frequent spelling
        spelled = self.phrase_keys[pid]
        current = spelled.get(kid)
        vals = self.values[key]
        if current is None or vals[value] > vals.get(current, 0.0):
            spelled[kid] = value

    def _vote_anchor(self, value: str, text: str) -> None:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            low = text.lower()
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                return
            if "day after tomorrow" in low:
                day -= dt.timedelta(days=2)
            elif "tomorrow" in low:
                day -= dt.timedelta(days=1)
            elif "today" not in low and "tonight" not in low:
                return
            iso = day.isoformat()
            self.dates[iso] = self.dates.get(iso, 0) + 1
        elif len(value) == 5 and value[2] == ":" and value[:2].isdigit():
            hour = int(value[:2])
            self.hours[hour] = self.hours.get(hour, 0) + 1

    # -- what the counts say --------------------------------------------------------

    def anchor(self) -> dt.date | None:
        """
        Return the day "today" meant in most training calls, or None if none said.
        """
        if not self.dates:
            return None
        return dt.date.fromisoformat(max(self.dates, key=lambda d: (self.dates[d], d)))

    def pm_hours(self) -> frozenset[int]:
        """
        Return the hours 1 to 11 that time values more often meant in the afternoon.
        """
        got: frozenset[int] | None = self._derived.get("pm")
        if got is None:
            hours = self.hours
            got = frozenset(h for h in range(1, 12) if hours.get(h + 12, 0) > hours.get(h, 0))
            self._derived["pm"] = got
        return got

    def common(self, word: str) -> bool:
        """
        Whether a word is in at least :data:`~graph._calls_text.COMMON_SHARE` of the
        requests counted, and two at least (a word said once is never common: the
        saved counts leave such words out).
        """
        words = self.name_words
        return words.df.get(word, 0.0) >= max(2.0, COMMON_SHARE * words.total)

    def opener(self, word: str) -> bool:
        """
        Whether a word that opens a sentence is no part of a name after it: a common
        word (:meth:`common`) that begins no known value ("To" in "To Sydney").
        """
        return self.common(word) and not self.index.starts(word)

    def cased(self, key: Key, value: str) -> str:
        """
        Return a name found in lower case as the argument's values are written: each
        word capitalized (:func:`~graph._calls_text.recased`) when most of its calls
        gave a value that begins with a capital, as it is otherwise.
        """
        calls, capital = self.casing.get(key, (0.0, 0.0))
        return recased(value) if value.islower() and 2 * capital > calls else value

    def whole_form(self, key: Key) -> str | None:
        """
        The form (see :func:`whole_forms`) in which the argument takes a request's
        whole text, when at least ``_WHOLE_SHARE`` of its calls took one (a search
        query handed on as the user wrote it); None for any other argument.
        """
        forms = self.whole.get(key)
        given = self.casing.get(key, [0.0])[0]
        if not forms or sum(forms.values()) < _WHOLE_SHARE * given:
            return None
        return max(forms, key=lambda f: (forms[f], f))

    def key_info(self, key: Key) -> tuple[float, str, str | None, int]:
        """
        Return an argument's presence rate in its call, its most frequent value, its
        value format (see :func:`value_format`) and its key id (-1 if never valued).
        """
        info = self._derived.get(key)
        if info is None:
            vals = self.values.get(key, {})
            pats = self.patterns.get(key[0], {})
            total = sum(pats.values())
            present = sum(n for pat, n in pats.items() if key[1] in pat)
            top = max(vals, key=lambda v: (vals[v], v)) if vals else ""
            info = (
                present / total if total else 0.0,
                top,
                value_format(vals),
                self.key_ids.get(key, -1),
            )
            self._derived[key] = info
        return info

    def typed(self, key: Key, text: str) -> Any:
        """
        Return an argument's value from its :func:`surface`: typed as the argument's
        training calls most often typed that value, or for a value they never gave,
        the values of its shape (numbers, booleans, lists); a string otherwise.
        """
        shape = value_shape(text)
        per = self.kinds.get(key) if shape is not None else None
        if not per:
            return text
        seen = per.get(text)
        if seen is None:
            seen = self._derived.get(("shape", key, shape))
            if seen is None:
                seen = {}
                for other, kinds in per.items():
                    if value_shape(other) == shape:
                        for kind, n in kinds.items():
                            seen[kind] = seen.get(kind, 0.0) + n
                self._derived["shape", key, shape] = seen
        kind = max(seen, key=lambda k: (seen[k], k)) if seen else "str"
        if kind == "str":
            return text
        try:
            value = json.loads({"True": "true", "False": "false"}.get(text, text))
        except ValueError:  # "[draft" in the shape of a list
            return text
        if kind == "float":
            return float(value)
        if kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def read_only(self, name: str) -> bool:
        """
        Whether most of the calls of ``name`` counted were read-only.
        """
        entry = self.names.get(name)
        return entry is not None and entry[1] * 2 > entry[0]

    def shapes(self, key: Key) -> tuple[frozenset[str], frozenset[str]] | None:
        """
        Return the shapes of an argument's values if they are an open class of codes
        (see :func:`~graph._calls_text.code_shapes`), else None.
        """
        derived = ("codes", key)
        if derived not in self._derived:
            self._derived[derived] = code_shapes(self.values.get(key, {}))
        got: tuple[frozenset[str], frozenset[str]] | None = self._derived[derived]
        return got

    def arg_names(self, name: str) -> list[str]:
        """
        Return every argument a call was seen with, most frequent first.
        """
        got = self._derived.get(("args", name))
        if got is None:
            counts: dict[str, float] = {}
            for pat, n in self.patterns.get(name, {}).items():
                for arg in pat:
                    counts[arg] = counts.get(arg, 0.0) + n
            got = sorted(counts, key=lambda a: (-counts[a], a))
            self._derived[("args", name)] = got
        return list(got)

    def flows(self, key: Key, top: int = 4) -> list[Key]:
        """
        Return the earlier call arguments this argument most often copied.
        """
        got = self._derived.get(("flow", key))
        if got is None:
            counts = self.flow.get(key, {})
            got = sorted((s for s, n in counts.items() if n >= 2), key=lambda s: -counts[s])
            got = got[:top]
            self._derived[("flow", key)] = got
        return list(got)

    # -- saving ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """
        Return the counts as JSON-ready data (alias counts said once are left out).
        """
        said = self._said_twice()
        return {
            "n_sessions": self.n_sessions,
            "names": self.names,
            "patterns": {
                n: [[list(p), c] for p, c in ps.items()] for n, ps in self.patterns.items()
            },
            "values": [[list(k), v] for k, v in self.values.items()],
            "kinds": [[list(k), v] for k, v in self.kinds.items()],
            "flow": [[list(k), [[list(s), c] for s, c in f.items()]] for k, f in self.flow.items()],
            "succ": [[list(k), per] for k, per in self.succ.items()],
            "whole": [[list(k), per] for k, per in self.whole.items()],
            "contexts": [[list(c), e] for c, e in self.contexts.items()],
            "name_words": self.name_words.to_json(),
            "dates": self.dates,
            "hours": {str(h): n for h, n in self.hours.items()},
            "said": [[list(k), v] for k, v in said.items()],
            "words": {
                name: {g: per[g] for g in grams if g in per}
                for name, per in self.words.items()
                for grams in [{g for (n, _), kept in said.items() if n == name for g in kept}]
            },
        }

    def _said_twice(self) -> dict[Key, dict[str, dict[str, float]]]:
        """
        The alias counts worth saving: words said at least twice in place of a value
        (the rest is most of the counts and could make an alias only with more data).
        """
        out: dict[Key, dict[str, dict[str, float]]] = {}
        for key, per_key in self.said.items():
            kept = by_words(
                {value: {g: n for g, n in per.items() if n >= 2} for value, per in per_key.items()}
            )
            if kept:
                out[key] = kept
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallCounts:
        """
        Rebuild counts from :meth:`to_json` output (errors: KeyError, TypeError, ValueError).
        """
        counts = cls()
        counts.n_sessions = int(data["n_sessions"])
        counts.names = {str(n): [number(x) for x in e] for n, e in data["names"].items()}
        counts.patterns = {
            str(n): {tuple(map(str, p)): number(c) for p, c in ps}
            for n, ps in data["patterns"].items()
        }
        for (name, arg), vals in data["values"]:
            key = (str(name), str(arg))
            counts.values[key] = {str(v): number(c) for v, c in vals.items()}
            for value, n in counts.values[key].items():
                counts._index_value(key, value)
                casing = counts.casing.setdefault(key, [0.0, 0.0])
                casing[0] += n
                casing[1] += n * float(value[:1].isupper())
        counts.kinds = {  # absent from models saved before 0.7: strings, then
            (str(k[0]), str(k[1])): {
                str(v): {str(t): number(n) for t, n in kinds.items()} for v, kinds in per.items()
            }
            for k, per in data.get("kinds", ())
        }
        counts.flow = {
            (str(k[0]), str(k[1])): {(str(s[0]), str(s[1])): number(c) for s, c in f}
            for k, f in data["flow"]
        }
        counts.succ = {
            (str(k[0]), str(k[1])): {
                str(old): {str(v): number(n) for v, n in per.items()} for old, per in olds.items()
            }
            for k, olds in data.get("succ", ())  # absent from models saved before 0.3
        }
        counts.whole = {  # absent from models saved before 0.10
            (str(k[0]), str(k[1])): {str(f): number(n) for f, n in per.items()}
            for k, per in data.get("whole", ())
        }
        counts.contexts = {
            tuple(map(str, c)): [number(e[0]), {str(n): number(x) for n, x in e[1].items()}]
            for c, e in data["contexts"]
        }
        if "name_words" in data:  # absent from models saved before 0.7
            counts.name_words = NameWords.from_json(data["name_words"])
        counts.dates = {str(d): number(n) for d, n in data["dates"].items()}
        counts.hours = {int(h): number(n) for h, n in data["hours"].items()}
        for k, grams in data["said"]:
            per_key = counts.said.setdefault((str(k[0]), str(k[1])), {})
            for g, per in grams.items():
                for v, n in per.items():
                    per_key.setdefault(str(v), {})[str(g)] = number(n)
        counts.words = {
            str(name): {str(g): number(n) for g, n in per.items()}
            for name, per in data["words"].items()
        }
        counts._aliases_stale = True
        return counts


def by_words(said: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """
    One argument's alias counts (``CallCounts.said``: value -> words -> calls) by the
    words said: words -> value -> calls.
    """
    out: dict[str, dict[str, float]] = {}
    for value, per_value in said.items():
        for gram, n in per_value.items():
            out.setdefault(gram, {})[value] = n
    return out


def _alias_share(n: float, said: float, calls: float, given: float) -> float:
    """
    The share of the ``said`` calls whose requests said some words that gave a value
    (``n`` of them), or 0 when the value is not ``_ALIAS_LIFT`` times likelier after the
    words than without them (``given``: the calls that gave it, of ``calls``).
    """
    share = n / said
    unsaid = calls - said  # the value's share where the words were not said
    other = (given - n) / unsaid if unsaid > 0 else given / calls
    return share if share >= _ALIAS_LIFT * other else 0.0


def _pooled_value(value: str) -> bool:
    """
    Whether a value is in words, whose aliases are pooled over the arguments that have
    it: not a number, a code, a time such as "6 pm" (none begins with a letter), a truth
    value or null (see :func:`value_shape`), or "dontcare".
    """
    return value[:1].isalpha() and value_shape(value) is None and value != "dontcare"

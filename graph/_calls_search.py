"""
Where the call forecast looks for an argument's value: :class:`ArgumentSearch` gives
every argument of a tool its candidate values from each source (said in the request,
in the agent's last reply, in earlier requests or replies, an earlier call's argument
it was seen to copy, the value the next call of the name was seen to give instead of
the last one's, an earlier result, its most frequent value), one stretch of a text
filling one argument; and, on a held-out turn, counts which of them were right
(:class:`~graph._calls_evidence.Evidence`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ._calls_counts import CallCounts, whole_forms
from ._calls_evidence import AGAIN, Cand, Evidence, said_kind
from ._calls_text import MAX_TEXT, asked_words
from ._calls_turns import Key, Mention, calls_of
from ._calls_view import (
    SessionView,
    TextScan,
    as_written,
    known_tokens,
    later_key,
    mention,
    mention_options,
    open_class_mentions,
    open_mentions,
    overlaps,
    rank_mentions,
)

__all__ = ["ArgumentSearch", "asked", "scan_of"]

#: Earlier turns whose mentions of an argument are candidates (the latest first: a
#: mention another argument took gives way to an earlier one).
_PAST_TURNS = 3


class ArgumentSearch:
    """
    The candidate values of the arguments of a session's calls, as the session stands
    in ``view`` (which grows turn by turn), from what ``counts`` know and ``evidence``
    trusts.
    """

    __slots__ = ("anchor", "counts", "evidence", "view")

    def __init__(
        self, view: SessionView, counts: CallCounts, anchor: dt.date | None, evidence: Evidence
    ) -> None:
        self.view = view
        self.counts = counts
        self.anchor = anchor
        self.evidence = evidence

    def candidates(self, name: str, scan: TextScan | None) -> dict[str, list[Cand]]:
        """
        Return each argument's candidate values: said in the request (when ``scan`` is
        given), then what the history offers (worked out once per turn of the view).
        """
        view, counts, anchor = self.view, self.counts, self.anchor
        past = view.memo.get(name)
        if past is None:
            past = view.memo[name] = self._past(name)
        if scan is None:
            return self._again(name, past)
        # one stretch of the request fills one argument: the best fits first
        question = asked(view)
        ranked: dict[str, list[tuple[float, Mention]]] = {}
        ties: dict[str, float] = {}
        for arg in past:
            _, _, fmt, kid = counts.key_info((name, arg))
            said = mention_options(scan, kid, fmt, counts, anchor)
            if said:
                key = (name, arg)
                cues = self.evidence.cues_of(key)
                presence = counts.key_info(key)[0]
                # the words' fit, plus how often such a mention is the argument's value
                ranked[arg] = sorted(
                    (
                        (fit + self.evidence.said_logit(key, "user:now", found[3], presence), found)
                        for fit, found in rank_mentions(scan, said, cues)
                    ),
                    key=lambda it: (it[0], *later_key(it[1])),
                    reverse=True,
                )
                ties[arg] = sum(cues.get(w, 0.0) for w in question) if cues else 0.0
        chosen = exclusive(ranked, ties)
        # an open class of names: capitalized words (in a text without capitals,
        # uncommon words) that are no known value of this name's arguments (another
        # tool's may be), for a value the training calls never had. A span after words
        # that went with the argument's values is a source of its own ("directed by
        # Gavin Hood"), trusted as a value said; its rates are learned apart from those
        # of any capitalized words ("Hi, Gavin Hood here"), and those of uncommon words
        # apart again. The best fits are taken first, whichever arguments they fill.
        spans: dict[str, tuple[str, Mention]] = {}
        known = self._known(scan, name)
        taken = set(known)
        fits = [
            (fit, arg, found)
            for arg in past
            for fit, found in rank_mentions(
                scan,
                open_mentions(scan, counts, (name, arg), known),
                self.evidence.cues_of((name, arg)),
            )
        ]
        fits.sort(key=lambda it: it[0], reverse=True)  # the best fit first, of any argument
        for fit, arg, best in fits:
            if arg in spans or overlaps(best, taken):
                continue
            kind = "user:cued" if fit > 0 else "user:span"
            if best[3] != "span":  # its own rates: uncommon words and codes are not names
                kind = said_kind(kind, best[3])
            spans[arg] = (kind, as_written(counts, (name, arg), best))
            taken.update(range(best[0], best[1]))
        out: dict[str, list[Cand]] = {}
        for arg, options in past.items():
            front: list[Cand] = []
            got = chosen.get(arg)
            if got is not None:
                front.append((said_kind("user:now", got[3]), got[2], _how(got[3], "user")))
            kind_span = spans.get(arg)
            if kind_span is not None and (got is None or kind_span[1][2] != got[2]):
                front.append((kind_span[0], kind_span[1][2], f"normalized:{kind_span[1][3]}"))
            whole = _whole(counts, (name, arg), scan)
            if whole is not None:
                front.append(("user:whole", whole, "request"))
            out[arg] = [*front, *options] if front else options
        return self._again(name, out)

    def _again(self, name: str, cands: dict[str, list[Cand]]) -> dict[str, list[Cand]]:
        """
        For a tool the request already called, its call again (the next day, another
        airline): every source's kind marked ``@again``, to be trusted apart from the
        same source at a turn's first call, and the value the last call gave the
        argument as a source of its own (``same@again``); the default as it is.
        Otherwise the candidates unchanged.
        """
        if name not in self.view.made:
            return cands
        last = self.view.last_args.get(name, {})
        out: dict[str, list[Cand]] = {}
        for arg, options in cands.items():
            marked: list[Cand] = [
                (kind if kind == "default" else f"{kind}{AGAIN}", value, how)
                for kind, value, how in options
            ]
            before = last.get(arg)
            if before is not None:
                marked.append((f"same{AGAIN}", before, f"same:{name}.{arg}"))
            out[arg] = marked
        return out

    def _past(self, name: str) -> dict[str, list[Cand]]:
        """
        Return each argument's candidate values from the history: the agent's last
        reply, earlier requests and replies, the latest results, the calls it copies,
        the value that follows the last call's, the default.
        """
        view, counts, anchor = self.view, self.counts, self.anchor
        out: dict[str, list[Cand]] = {}
        last_agent = view.agent[-1] if view.agent else None
        names = counts.arg_names(name)
        earlier = {
            kind: self._said_earlier(name, names, agent=agent)
            for kind, agent in (("user:past", False), ("agent:past", True))
        }
        for arg in names:
            key = (name, arg)
            _, top, fmt, kid = counts.key_info(key)
            options: list[Cand] = []
            if last_agent is not None:
                got = mention(last_agent, kid, fmt, counts, anchor, self.evidence.cues_of(key))
                if got is not None:
                    options.append((said_kind("agent:last", got[3]), got[2], _how(got[3], "agent")))
            for kind in ("user:past", "agent:past"):
                said = earlier[kind].get(arg)
                if said is not None:
                    how = _how(said[3], kind[:-5])
                    options.append((said_kind(kind, said[3]), said[2], how))
            given = self._from_results(key) if view.results else None
            if given is not None:
                options.append((said_kind("result", given[3]), given[2], "result"))
            for src in counts.flows(key):
                value = view.flow_values.get(src)
                if value is not None:
                    label = f"call:{src[0]}.{src[1]}"
                    options.append((label, value, label))
            before = view.last_args.get(name, {}).get(arg)
            if before is not None:
                # what the next call of the name most often gave instead (the next day)
                options.extend(
                    ("next", value, f"next:{name}.{arg}")
                    for value in counts.successors(key, before, top=1)
                )
            if top:
                options.append(("default", top, "default"))
            out[arg] = options
        return out

    def _said_earlier(self, name: str, names: list[str], *, agent: bool) -> dict[str, Mention]:
        """
        Return what the latest earlier request (or reply) that mentions each argument
        says of it: the mention whose words best fit the argument's cues, one argument
        per stretch of that text.
        """
        view, counts = self.view, self.counts
        ranked: dict[str, list[tuple[tuple[float, ...], int, Mention]]] = {}
        side = "agent:past" if agent else "user:past"
        for arg in names:
            key = (name, arg)
            presence, _, fmt, kid = counts.key_info(key)
            cues = self.evidence.cues_of(key)
            options: list[tuple[tuple[float, ...], int, Mention]] = []
            said_before = view.said_options(kid, fmt, self.anchor, agent=agent, turns=_PAST_TURNS)
            if not said_before and not agent:  # an open class: names or codes new to it
                options = self._past_spans(key, presence)
            for turn_no, scan, said in said_before:
                fits = (
                    rank_mentions(scan, said, cues)
                    if scan is not None
                    else [(0.0, found) for found in said]
                )
                options.extend(
                    (
                        (turn_no, fit + self.evidence.said_logit(key, side, found[3], presence)),
                        turn_no,
                        found,
                    )
                    for fit, found in fits
                )
            if options:
                ranked[arg] = sorted(
                    options, key=lambda it: (*it[0], *later_key(it[2])), reverse=True
                )
        return exclusive_turns(ranked)

    def _past_spans(
        self, key: Key, presence: float
    ) -> list[tuple[tuple[float, ...], int, Mention]]:
        """
        Return the names the latest earlier requests give (:func:`span_mentions`) that
        are no known value of the tool's arguments, as options of an argument of an open
        class of names that none of those requests mentions ("I need a counselor in
        Gilroy", then "A family counselor"): a source of its own, with its own rates.
        """
        view, counts = self.view, self.counts
        cues = self.evidence.cues_of(key)
        out: list[tuple[tuple[float, ...], int, Mention]] = []
        first = view.n_turns - len(view.user)
        for back in range(len(view.user) - 1, max(-1, len(view.user) - 1 - _PAST_TURNS), -1):
            scan = view.user[back]
            free = open_mentions(scan, counts, key, self._known(scan, key[0]))
            for fit, found in rank_mentions(scan, free, cues):
                found = as_written(counts, key, found)
                logit = self.evidence.said_logit(key, "user:past", found[3], presence)
                out.append(((first + back, fit + logit), first + back, found))
        return out

    def _from_results(self, key: Key) -> Mention | None:
        """
        Return what the latest calls' results give an argument (a lookup's user id, a
        search's first restaurant): of their known values, values said another way,
        and, for an open class, names and codes no call had, the one whose surrounding
        words and place in its result's list best fit the argument's cues.
        """
        cues = self.evidence.cues_of(key)
        best: tuple[float, int, int, Mention] | None = None
        for i, scan in enumerate(self.view.results):
            options = self._result_options(key, scan, self._known(scan, key[0]))
            ends = _ends(options)
            for m in options:
                # on a tie, the latest result, and in it the first (a result lists its
                # best first)
                fit = sum(cues.get(w, 0.0) for w in _result_words(scan, m, ends))
                score = (fit, i, -m[0], m)
                if best is None or score[:3] > best[:3]:
                    best = score
        return None if best is None else as_written(self.counts, key, best[3])

    def _known(self, scan: TextScan, name: str) -> set[int]:
        """
        The tokens of a text inside the known values of the tool's arguments, worked
        out once a text and tool (kept in the scan), not once an argument: the work
        grows with the arguments, not with their square.
        """
        got = scan.known.get(name)
        if got is None:
            kids = [self.counts.key_info((name, arg))[3] for arg in self.counts.arg_names(name)]
            got = scan.known[name] = known_tokens(scan, kids)
        return got

    def _result_options(self, key: Key, scan: TextScan, known: set[int]) -> list[Mention]:
        """
        Return what a call's result gives an argument: its known values, values said
        another way, and for an open class, names and codes new to it that hold none of
        the ``known`` values' tokens; not its runs of uncommon words (a result written in lower
        case is data, not a user who does not capitalize: ``"status": "shipped"``).
        """
        counts = self.counts
        _, _, fmt, kid = counts.key_info(key)
        new = [m for m in open_mentions(scan, counts, key, known) if m[3] != "words"]
        return [*mention_options(scan, kid, fmt, counts, self.anchor), *new]

    # -- learning which sources and words to trust ------------------------------------

    def judge(self, turn: Mapping[str, Any], cands: dict[str, dict[str, list[Cand]]]) -> None:
        """
        Count, for each argument of the turn's calls, which sources had a value, whether
        the argument was given and whether the source was right; and which words around
        each value said in the request or the last reply went with the right one.
        ``cands`` holds the candidates already worked out for the turn, by name.
        """
        view, counts = self.view, self.counts
        done: set[str] = set()
        question = asked(view)
        scans = [scan_of(view, turn)]
        if view.agent:
            scans.append(view.agent[-1])
        for name, args, _ in calls_of(turn):
            if name in done:
                continue
            done.add(name)
            per_arg = cands.get(name)
            if per_arg is None:
                per_arg = self.candidates(name, scans[0])
            for arg, options in per_arg.items():
                self.evidence.count((name, arg), options, args.get(arg))
                if arg in args:
                    _, _, fmt, kid = counts.key_info((name, arg))
                    got = view.said_options(kid, fmt, self.anchor, agent=False)
                    more = [got[0][1]] if got and got[0][1] is not None else []
                    self._learn_cues((name, arg), args[arg], [*scans, *more], question)
                    if view.results:
                        self._learn_result_cues((name, arg), args[arg])

    def _learn_cues(self, key: Key, truth: str, scans: list[TextScan], question: list[str]) -> None:
        """
        Count the words around each value a text says of an argument (in the request,
        names and codes never seen too, for an argument of an open class, and the last
        words of the reply it answers) as going with the right value or a wrong one;
        for the argument, and for every word of its name (:class:`CueWeights`). A text
        that says only the right value counts too: which argument takes a value is a
        choice between arguments, and words counted only where they went wrong would
        weigh against every argument.
        """
        counts = self.counts
        _, _, fmt, kid = counts.key_info(key)
        cues = self.evidence.cues_of(key)
        for i, scan in enumerate(scans):
            found = mention_options(scan, kid, fmt, counts, self.anchor)
            if i == 0:
                found = [*found, *open_class_mentions(scan, counts, key)]
            for start, after, value, _ in (as_written(counts, key, m) for m in found):
                right = value == truth
                words = scan.context(start, after)
                for word in [*words, *question] if i == 0 else words:
                    cues.add(word, int(right), int(not right))

    def _learn_result_cues(self, key: Key, truth: str) -> None:
        """
        Where one of the latest calls' results had an argument's right value, count the
        cue words (:func:`_result_words`) of every value they give it as going with the
        right value or a wrong one: which of their values the call took.
        """
        counts = self.counts
        given = [(scan, self._result_options(key, scan, set())) for scan in self.view.results]
        if not any(as_written(counts, key, m)[2] == truth for _, found in given for m in found):
            return
        cues = self.evidence.cues_of(key)
        for scan, found in given:
            ends = _ends(found)
            for m in found:
                right = as_written(counts, key, m)[2] == truth
                for word in _result_words(scan, m, ends):
                    cues.add(word, int(right), int(not right))


def asked(view: SessionView) -> list[str]:
    """
    The last words of the agent's last reply (the question a request answers), as cue
    words marked ``?``.
    """
    return asked_words(view.agent[-1].toks) if view.agent else []


def scan_of(view: SessionView, turn: Mapping[str, Any]) -> TextScan:
    """
    The turn's text, scanned by the view.
    """
    text = turn.get("text")
    return view.scan(text if isinstance(text, str) else "")


def _whole(counts: CallCounts, key: Key, scan: TextScan) -> str | None:
    """
    The request's whole text, in the form the argument's training calls took it
    most often, for an argument that takes a request whole (a search query handed
    on as the user wrote it: :meth:`CallCounts.whole_form`); None for any other
    argument, or a request longer than a scan reads.
    """
    form = counts.whole_form(key)
    if form is None or not scan.raw or len(scan.raw) >= MAX_TEXT:
        return None
    return whole_forms(scan.raw).get(form) or None


def exclusive(
    ranked: Mapping[str, list[tuple[float, Mention]]], ties: Mapping[str, float] | None = None
) -> dict[str, Mention]:
    """
    Give each argument its best-fitting mention that no argument chosen before it took
    (the best fit of all first, on a tie the argument that best fits ``ties``, e.g. the
    question the text answers): one stretch of a text fills one argument. The mentions
    of one text: :func:`exclusive_turns` with every mention in turn 0.
    """
    ties = ties or {}
    return exclusive_turns(
        {
            arg: [((score, ties.get(arg, 0.0)), 0, found) for score, found in options]
            for arg, options in ranked.items()
        }
    )


def exclusive_turns(
    ranked: Mapping[str, list[tuple[tuple[float, ...], int, Mention]]],
) -> dict[str, Mention]:
    """
    Give each argument its best option that no argument chosen before it took, the
    best of all first, over the mentions of several texts: each option is ``(order,
    turn, mention)``, best first; one stretch of one turn's text fills one argument.
    """
    pending = {arg: list(options) for arg, options in ranked.items()}
    taken: list[tuple[int, int, int]] = []
    out: dict[str, Mention] = {}

    def free(option: tuple[tuple[float, ...], int, Mention]) -> bool:
        _, turn, found = option
        return not any(t == turn and found[0] < b and a < found[1] for t, a, b in taken)

    while pending:
        best: tuple[tuple[float, ...], str] | None = None
        for arg, options in list(pending.items()):
            while options and not free(options[0]):
                options.pop(0)
            if not options:
                del pending[arg]
                continue
            order = (*options[0][0], *later_key(options[0][2]))
            if best is None or order > best[0]:
                best = (order, arg)
        if best is None:
            break
        arg = best[1]
        _, turn, found = pending.pop(arg)[0]
        out[arg] = found
        taken.append((turn, found[0], found[1]))
    return out


def _how(how: str, side: str) -> str:
    return f"normalized:{how}" if how else side


def _ends(options: Sequence[Mention]) -> tuple[int, int]:
    """
    Return where the first and the last of a text's mentions start (token indexes).
    """
    starts = [m[0] for m in options]
    return (min(starts), max(starts)) if starts else (0, 0)


def _result_words(scan: TextScan, found: Mention, ends: tuple[int, int]) -> list[str]:
    """
    Return the cue words of a value in a call's result: the words around it, marked
    as a result's (``r<city``: the words of results and of requests are weighed
    apart), and where it stands among the result's values of the argument (``ends``:
    where the first and the last start): ``^first``, ``^last`` (both for the only
    one), or neither.
    """
    words = [f"r{w}" for w in scan.context(found[0], found[1])]
    if found[0] == ends[0]:
        words.append("^first")
    if found[0] == ends[1]:
        words.append("^last")
    return words

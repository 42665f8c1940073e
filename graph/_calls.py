"""
CallForecaster: which backend calls a turn will make, with their complete arguments,
and the probability of each exact call.

A call is forecast in three steps. Which names: P(name called | the request's state),
or, without one, P(name | the previous turn's state and calls), from counts
(:class:`~graph._calls_counts.CallCounts`). Which arguments: every argument the name
was seen with gets candidate values from each source (said in the request, in the
agent's last reply, in earlier requests or replies, an earlier call's argument it was
seen to copy, the value the next call of the name was seen to give instead of the last
one's, its most frequent value); a stretch of text fills one argument, the one
whose cue words and way of saying values fit it best; the source most often right for
that argument (told apart by how the value was said: verbatim, as an alias, normalized)
wins, and an optional argument is kept when its source usually means it is given. How
likely: the product of the name's probability and the sources' precisions, recalibrated
on sessions the counts did not see, per whether the call is new, repeats the last call
of that name or changes it, whether its required arguments were all found, whether
the request itself supplied one, and whether it is the likeliest call of its name or a
variant of it (an optional argument left out, one put in, or a runner-up value: each
kind apart, for they are right at very different rates).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._calls_counts import CallCounts, whole_forms
from ._calls_names import NameTemperature, name_tokens
from ._calls_text import MAX_TEXT, asked_words
from ._calls_turns import PATH, Key, Mention, calls_of, nested, turns_of
from ._calls_view import (
    CueWeights,
    SessionView,
    TextScan,
    arg_words,
    as_written,
    known_stretches,
    later_key,
    mention,
    mention_options,
    open_class_mentions,
    open_mentions,
    overlaps,
    rank_mentions,
)
from ._persistence import atomic_write_json, check_document, map_corrupt_data, read_json

__all__ = ["CallForecaster", "CallGuess"]

_FORMAT = "graph.CallForecaster"
_VERSION = 1

#: A candidate value of one argument: ``(source kind, value, evidence)``.
_Cand: TypeAlias = "tuple[str, str, str]"
#: What each source is taken to be worth before held-out sessions say: precision when
#: the argument is given, and how often the argument is given when the source has a value.
_PRIOR: dict[str, tuple[float, float]] = {
    "user:now": (0.6, 0.6),
    "user:span": (0.3, 0.3),
    "user:cued": (0.6, 0.6),
    "user:whole": (0.5, 0.5),
    "agent:last": (0.5, 0.4),
    "user:past": (0.4, 0.4),
    "agent:past": (0.2, 0.2),
    "call": (0.5, 0.4),
    "next": (0.3, 0.3),
    "result": (0.2, 0.2),
    "default": (0.3, 0.3),
}
#: The sources whose values the request itself said: a call built on one is "fresh".
_FROM_REQUEST = frozenset({"user:now", "user:span", "user:cued", "user:whole"})
#: predict reads the calls of this many times ``max_turns`` latest turns of a history.
_HISTORY_TURNS = 4
#: The last words of the agent's reply that are cues of the argument a request fills.
#: Earlier turns whose mentions of an argument are candidates (the latest first: a
#: mention another argument took gives way to an earlier one).
_PAST_TURNS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class CallGuess:
    """
    One forecast call.

    Attributes:
        name: The call's name, as the logs name it.
        args: Its complete arguments, JSON values typed as most of each argument's
            training calls typed it (a string where they gave no other type). The
            values inside an object argument are forecast one by one, as arguments of
            their own.
        p: The estimated probability that the turn makes exactly this call.
        evidence: For each argument, where its value came from: ``"user"``, ``"agent"``,
            ``"call:<name>.<arg>"`` (an earlier call's argument, copied),
            ``"next:<name>.<arg>"`` (the value that most often followed the one the last
            call of the name gave: the next day, another airline), ``"result"`` (given
            by an earlier call's result: the user id a lookup returned), ``"request"``
            (the request's whole text: a search query handed on as the user wrote
            it), ``"default"`` or ``"normalized:<rule>"``. An argument inside an
            object argument is named by its path, dotted (``filters.city``).

    .. versionadded:: 0.1
    """

    name: str
    args: Mapping[str, Any]
    p: float
    evidence: Mapping[str, str]


@dataclass(slots=True)
class _Draft:
    name: str
    args: dict[str, str]
    evidence: dict[str, str]
    p0: float
    cell: tuple[str, ...]


def _kind(kind: str) -> str:
    """
    The source a candidate's kind belongs to (its prior): ``call:<name>.<arg>`` is a
    ``call``, ``user:now/alias`` (said as an alias, or normalized) is ``user:now``.
    """
    return "call" if kind.startswith("call:") else kind.partition("/")[0]


def _said_kind(kind: str, how: str) -> str:
    """
    A text source's kind, told apart by how the value was said (verbatim, as an alias,
    normalized by a rule): each has its own precision and rate of being given.
    """
    return f"{kind}/{how}" if how else kind


def _bin(p: float) -> str:
    return str(max(-12, math.floor(math.log2(max(p, 1e-9)))))


class CallForecaster(BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """
    Forecast the backend calls of a turn: names, complete arguments, probabilities.

    It learns from session logs whose turns carry ``tool_calls``
    (``[{"name", "args", "read_only"}]``). Counts come from every training session;
    which source to trust for each argument, which words around a value tell which
    argument it fills, and how likely a forecast call is come from sessions the counts
    had not seen when they were forecast (in :meth:`fit`, a held-out share, counted
    afterwards; in :meth:`partial_fit`, each new session before it is counted).

    Args:
        holdout: Share of the sessions of :meth:`fit` forecast before they are counted
            (``0``: none; probabilities are then the uncalibrated products).
        max_judged: At most this many held-out sessions are forecast (bounds the fit's
            time; None for all of them).
        alpha: Smoothing of P(name | context) towards the coarser context.
        max_names: Candidate names considered per turn.
        alternatives: Variants of each name's call (another value for one argument, an
            optional argument left out or put in) forecast besides it.
        min_p: Names less likely than this to be called in a turn are not considered.
        max_turns: Latest turns whose texts are searched for normalized values.
        prior_weight: Pseudo-counts of the priors behind each source's precision and of
            the uncalibrated probability behind each calibration cell.
        anchor: The day "today" means, ISO ``YYYY-MM-DD``; None learns it from the
            training calls whose dates the request says as today or tomorrow.

    Attributes:
        counts_: The :class:`~graph._calls_counts.CallCounts`.
        sources_: ``{(name, arg): {source: [available, given, right]}}`` on held-out turns.
        calib_: ``{cell: [guesses, hits, sum of uncalibrated p]}`` on held-out turns.
        name_temperature_: How much the posterior of the names read from a request's
            words is softened (:class:`~graph._calls_names.NameTemperature`), chosen on
            held-out turns.
        n_sessions_: Sessions learned from.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        holdout: float = 0.2,
        max_judged: int | None = 5000,
        alpha: float = 1.0,
        max_names: int = 6,
        alternatives: int = 2,
        min_p: float = 0.01,
        max_turns: int = 20,
        prior_weight: float = 4.0,
        anchor: str | None = None,
    ) -> None:
        self.holdout = holdout
        self.max_judged = max_judged
        self.alpha = alpha
        self.max_names = max_names
        self.alternatives = alternatives
        self.min_p = min_p
        self.max_turns = max_turns
        self.prior_weight = prior_weight
        self.anchor = anchor

    # -- fitting --------------------------------------------------------------------

    def _reset(self) -> None:
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout!r}")
        if self.max_judged is not None and self.max_judged < 0:
            raise ValueError(f"max_judged must be >= 0 or None, got {self.max_judged!r}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if self.max_names < 1 or self.max_turns < 1:
            raise ValueError("max_names and max_turns must be >= 1")
        if self.prior_weight <= 0:
            raise ValueError(f"prior_weight must be > 0, got {self.prior_weight!r}")
        if self.anchor is not None:
            dt.date.fromisoformat(self.anchor)
        self.counts_ = CallCounts()
        self.sources_: dict[Key, dict[str, list[float]]] = {}
        self.calib_: dict[tuple[str, ...], list[float]] = {}
        self.name_temperature_ = NameTemperature()
        self.cues_: dict[Key, dict[str, list[float]]] = {}
        # the cue counts of every argument whose name has a word, and each key's weights
        self._word_cues: dict[str, dict[str, list[float]]] = {}
        self._cue_w: dict[Key, CueWeights] = {}
        self.n_sessions_ = 0

    def fit(self, sessions: Iterable[Any], y: object = None) -> CallForecaster:
        """
        Forget everything, then learn from ``sessions``.

        Args:
            sessions: Session mappings ``{"turns": [...]}`` (or sequences of turns);
                turns that are not mappings and malformed calls are skipped.
            y: Ignored.

        Returns:
            ``self``.
        """
        self._reset()
        sessions = list(sessions)
        every = round(1.0 / self.holdout) if self.holdout > 0 and len(sessions) > 1 else 0
        held = [i for i in range(len(sessions)) if every and i % every == every // 2]
        held = held[: self.max_judged]
        counted = set(held)
        for i, session in enumerate(sessions):
            if i not in counted:
                self.counts_.add(session)
        if self.counts_.n_sessions:
            # first which sources and words to trust, then how likely the calls built
            # with them are: calibrated on the forecasts predict will make
            for i in held:
                self._judge(sessions[i], self.counts_, calibrate=False)
            for i in held:
                self._judge(sessions[i], self.counts_, learn=False)
        for i in held:
            self.counts_.add(sessions[i])
        self.counts_.aliases()
        self.n_sessions_ = len(sessions)
        return self

    def partial_fit(self, sessions: Iterable[Any], y: object = None) -> CallForecaster:
        """
        Add sessions: each is first judged by what was learned so far, then counted.

        New values are known at once; aliases are rebuilt once the sessions added since
        the last rebuild make up a twentieth of all.

        Args:
            sessions: As for :meth:`fit`.
            y: Ignored.

        Returns:
            ``self``.
        """
        if not hasattr(self, "counts_"):
            self._reset()
        for session in sessions:
            if self.counts_.n_sessions:
                self._judge(session, self.counts_)
            self.counts_.add(session)
            self.n_sessions_ += 1
        self.counts_.aliases(now=False)  # in steps: a rebuild costs all alias counts
        return self

    def _judge(
        self, session: Any, counts: CallCounts, *, learn: bool = True, calibrate: bool = True
    ) -> None:
        """
        Forecast every turn of a held-out session with ``counts`` (after the previous
        reply, and once the request arrived), and count what was right: for each
        source and the words around values (``learn``), for each calibration cell
        (``calibrate``).
        """
        view = SessionView(counts, self.max_turns)
        anchor = self._anchor(counts)
        for turn in turns_of(session):
            cands: dict[str, dict[str, list[_Cand]]] = {}
            # learning alone needs the candidates of the names called, worked out
            # where they are judged: forecasting every likely name is calibration's
            for request in (None, turn) if calibrate else ():
                truth = {(n, frozenset(a.items())) for n, a, _ in calls_of(turn)}
                drafts, cands = self._drafts(view, request, counts, anchor)
                for draft in drafts:
                    hit = float((draft.name, frozenset(draft.args.items())) in truth)
                    for key in (draft.cell, draft.cell[:2]):  # the cell, and its band
                        cell = self.calib_.setdefault(key, [0.0, 0.0, 0.0])
                        cell[0] += 1.0
                        cell[1] += hit
                        cell[2] += draft.p0
            if learn:
                self._judge_sources(turn, cands, view, counts, anchor)
                self._judge_names(turn, view, counts)
            view.add_turn(turn)

    def _judge_names(self, turn: Mapping[str, Any], view: SessionView, counts: CallCounts) -> None:
        """
        Count how likely the names read from the request's words made those it called,
        at each temperature.
        """
        if counts.name_words.turns and not self.name_temperature_.settled:
            scores = counts.name_words.scores(_name_features(_scan_of(view, turn), view))
            self.name_temperature_.observe(scores, [name for name, _, _ in calls_of(turn)])

    def _judge_sources(
        self,
        turn: Mapping[str, Any],
        cands: dict[str, dict[str, list[_Cand]]],
        view: SessionView,
        counts: CallCounts,
        anchor: dt.date | None,
    ) -> None:
        """
        Count, for each argument of the turn's calls, which sources had a value, whether
        the argument was given and whether the source was right; and which words around
        each value said in the request or the last reply went with the right one.
        """
        done: set[str] = set()
        asked = _asked(view)
        scans = [_scan_of(view, turn)]
        if view.agent:
            scans.append(view.agent[-1])
        for name, args, _ in calls_of(turn):
            if name in done:
                continue
            done.add(name)
            per_arg = cands.get(name)
            if per_arg is None:
                per_arg = self._candidates(name, view, scans[0], counts, anchor)
            for arg, options in per_arg.items():
                stats = self.sources_.setdefault((name, arg), {})
                for kind, value, _ in options:
                    if kind == "default" and len(options) > 1:
                        continue  # the default counts where it is the only source
                    entry = stats.setdefault(kind, [0.0, 0.0, 0.0])
                    entry[0] += 1.0
                    if arg in args:
                        entry[1] += 1.0
                        entry[2] += float(args[arg] == value)
                if arg in args:
                    _, _, fmt, kid = counts.key_info((name, arg))
                    got = view.said_options(kid, fmt, anchor, agent=False)
                    more = [got[0][1]] if got and got[0][1] is not None else []
                    self._learn_cues((name, arg), args[arg], [*scans, *more], counts, anchor, asked)
                    if view.results:
                        self._learn_result_cues(
                            (name, arg), args[arg], view.results, counts, anchor
                        )

    def _learn_cues(
        self,
        key: Key,
        truth: str,
        scans: list[TextScan],
        counts: CallCounts,
        anchor: dt.date | None,
        asked: list[str],
    ) -> None:
        """
        Count the words around each value a text says of an argument (in the request,
        names and codes never seen too, for an argument of an open class, and the last
        words of the reply it answers) as going with the right value or a wrong one;
        for the argument, and for every word of its name (:class:`CueWeights`). A text
        that says only the right value counts too: which argument takes a value is a
        choice between arguments, and words counted only where they went wrong would
        weigh against every argument.
        """
        _, _, fmt, kid = counts.key_info(key)
        cues = self._cues_of(key)
        for i, scan in enumerate(scans):
            found = mention_options(scan, kid, fmt, counts, anchor)
            if i == 0:
                found = [*found, *open_class_mentions(scan, counts, key)]
            for start, after, value, _ in (as_written(counts, key, m) for m in found):
                right = value == truth
                words = scan.context(start, after)
                for word in [*words, *asked] if i == 0 else words:
                    cues.add(word, float(right), float(not right))

    def _learn_result_cues(
        self,
        key: Key,
        truth: str,
        results: Sequence[TextScan],
        counts: CallCounts,
        anchor: dt.date | None,
    ) -> None:
        """
        Where one of the latest calls' results had an argument's right value, count the
        cue words (:func:`_result_words`) of every value they give it as going with the
        right value or a wrong one: which of their values the call took.
        """
        given = [(scan, self._result_options(key, scan, counts, anchor, [])) for scan in results]
        if not any(as_written(counts, key, m)[2] == truth for _, found in given for m in found):
            return
        cues = self._cues_of(key)
        for scan, found in given:
            ends = _ends(found)
            for m in found:
                right = as_written(counts, key, m)[2] == truth
                for word in _result_words(scan, m, ends):
                    cues.add(word, float(right), float(not right))

    def _result_options(
        self,
        key: Key,
        scan: TextScan,
        counts: CallCounts,
        anchor: dt.date | None,
        known: list[tuple[int, int]],
    ) -> list[Mention]:
        """
        Return what a call's result gives an argument: its known values, values said
        another way, and for an open class, names and codes new to it that overlap no
        ``known`` stretch; not its runs of uncommon words (a result written in lower
        case is data, not a user who does not capitalize: ``"status": "shipped"``).
        """
        _, _, fmt, kid = counts.key_info(key)
        new = [m for m in open_mentions(scan, counts, key, known) if m[3] != "words"]
        return [*mention_options(scan, kid, fmt, counts, anchor), *new]

    # -- forecasting ----------------------------------------------------------------

    def predict(
        self,
        history: Sequence[Mapping[str, Any]],
        request: Mapping[str, Any] | None = None,
        *,
        k: int = 3,
        read_only: bool = True,
        names: Callable[[str], bool] | None = None,
    ) -> list[CallGuess]:
        """
        Forecast the calls of a turn.

        Args:
            history: The session's completed turns (``text``, ``state``, ``system``,
                ``tool_calls``; any may be missing). Items that are not mappings are
                skipped. Only the latest ``4 * max_turns`` turns are read (their texts
                scanned for known values and aliases, their calls for the values later
                calls copy), and normalized values only in the latest ``max_turns``; each
                text is cut to its last 2,000 characters. So the work is bounded
                whatever the history's length.
            request: The current turn's mapping once its text arrived (``text``, maybe
                ``state``), or None to forecast the next turn's calls from the history.
            k: At most this many guesses.
            read_only: Only names that were read-only in most of their training calls.
            names: Only names it holds true for (the tools a tenant has, say); None for
                every name. Either filter leaves room among the ``max_names`` a turn
                considers for the names it keeps.

        Returns:
            Up to ``k`` guesses, most probable first.

        Raises:
            TypeError: If ``history`` is not a sequence or ``request`` not a mapping.
        """
        if "counts_" not in self.__dict__:  # the fast path of check_is_fitted
            check_is_fitted(self, "counts_")
        if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
            raise TypeError(f"history must be a sequence of turn mappings, got {history!r:.80}")
        if request is not None and not isinstance(request, Mapping):
            raise TypeError(f"request must be a turn mapping or None, got {request!r:.80}")
        counts = self.counts_
        view = SessionView(counts, self.max_turns)
        for turn in history[-_HISTORY_TURNS * self.max_turns :]:
            if isinstance(turn, Mapping):
                view.add_turn(turn)

        def keep(name: str) -> bool:
            if names is not None and not names(name):
                return False
            return not read_only or counts.read_only(name)

        drafts, _ = self._drafts(view, request, counts, self._anchor(counts), keep)
        out = [
            CallGuess(
                name=draft.name,
                args=nested({a: counts.typed((draft.name, a), v) for a, v in draft.args.items()}),
                p=self._calibrated(draft),
                evidence={
                    a.replace(PATH, "."): e.replace(PATH, ".") for a, e in draft.evidence.items()
                },
            )
            for draft in drafts
        ]
        out.sort(key=lambda g: -g.p)
        return out[: max(k, 0)]

    def _anchor(self, counts: CallCounts) -> dt.date | None:
        return dt.date.fromisoformat(self.anchor) if self.anchor else counts.anchor()

    def _calibrated(self, draft: _Draft) -> float:
        """
        Return P(the exact call is made): the share of held-out forecasts in the
        draft's band of uncalibrated p that were right, then in its cell, each shrunk
        towards the one before by ``prior_weight`` pseudo-counts.
        """
        m = self.prior_weight
        coarse = self.calib_.get(draft.cell[:2])
        p = draft.p0
        if coarse is not None:
            p = (coarse[1] + m * p) / (coarse[0] + m)
        cell = self.calib_.get(draft.cell)
        if cell is not None:
            p = (cell[1] + m * p) / (cell[0] + m)
        return min(max(p, 0.0), 1.0)

    def _name_probs(
        self,
        view: SessionView,
        request: Mapping[str, Any] | None,
        scan: TextScan | None,
        counts: CallCounts,
    ) -> list[tuple[str, float]]:
        """
        Return the names of the turn's calls and P(name called | context), likeliest
        first, smoothed from the request's state to the previous turn's state and calls,
        to the previous state, to every turn; for a request without a state, read from
        its words (``scan``), the reply's last words and the previous turn's calls. Names
        below ``min_p`` are left out.
        """
        state = request.get("state") if request is not None else None
        if not isinstance(state, str):
            state = None
            if scan is not None and counts.name_words.turns:
                said = counts.name_words.posterior(
                    _name_features(scan, view), self.name_temperature_.best
                )
                return sorted(
                    ((name, p) for name, p in said.items() if name and p >= self.min_p),
                    key=lambda it: (-it[1], it[0]),
                )
        ctxs: list[tuple[str, ...]] = [
            ("*",),
            ("p", view.prev_state),
            ("p", view.prev_state, *view.prev_calls),
        ]
        if state is not None:
            ctxs.append(("s", state))
        memo = counts.memo
        memo_key = (self.alpha, self.min_p, state, *ctxs[2])
        hit = memo.get(memo_key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        probs: dict[str, float] = {}
        for ctx in ctxs:
            entry = counts.contexts.get(ctx)
            if entry is None:
                continue
            n, named = entry
            for name in named:
                probs.setdefault(name, 0.0)
            for name, below in probs.items():
                probs[name] = (named.get(name, 0.0) + self.alpha * below) / (n + self.alpha)
        ranked = sorted(
            ((name, p) for name, p in probs.items() if p >= self.min_p),
            key=lambda it: (-it[1], it[0]),
        )
        if len(memo) < 100_000:
            memo[memo_key] = ranked
        return ranked

    def _drafts(
        self,
        view: SessionView,
        request: Mapping[str, Any] | None,
        counts: CallCounts,
        anchor: dt.date | None,
        keep: Callable[[str], bool] | None = None,
    ) -> tuple[list[_Draft], dict[str, dict[str, list[_Cand]]]]:
        """
        Return the calls of the ``max_names`` likeliest names (of those ``keep`` holds
        true for), each with its variants, and every argument's candidates.
        """
        scan = _scan_of(view, request) if request is not None else None
        moment = "r" if request is not None else "a"
        drafts: list[_Draft] = []
        all_cands: dict[str, dict[str, list[_Cand]]] = {}
        ranked = self._name_probs(view, request, scan, counts)
        if keep is not None:
            ranked = [(name, q) for name, q in ranked if keep(name)]
        for name, q in ranked[: self.max_names]:
            cands = self._candidates(name, view, scan, counts, anchor)
            all_cands[name] = cands
            drafts.extend(self._assemble(name, q, cands, view, counts, moment))
        return drafts, all_cands

    def _candidates(
        self,
        name: str,
        view: SessionView,
        scan: TextScan | None,
        counts: CallCounts,
        anchor: dt.date | None,
    ) -> dict[str, list[_Cand]]:
        """
        Return each argument's candidate values: said in the request (when ``scan`` is
        given), then what the history offers (worked out once per turn of the view).
        """
        past = view.memo.get(name)
        if past is None:
            past = view.memo[name] = self._past_candidates(name, view, counts, anchor)
        if scan is None:
            return past
        # one stretch of the request fills one argument: the best fits first
        asked = _asked(view)
        ranked: dict[str, list[tuple[float, Mention]]] = {}
        ties: dict[str, float] = {}
        for arg in past:
            _, _, fmt, kid = counts.key_info((name, arg))
            said = mention_options(scan, kid, fmt, counts, anchor)
            if said:
                key = (name, arg)
                cues = self._cues_of(key)
                presence = counts.key_info(key)[0]
                # the words' fit, plus how often such a mention is the argument's value
                ranked[arg] = sorted(
                    (
                        (fit + self._said_logit(key, "user:now", found[3], presence), found)
                        for fit, found in rank_mentions(scan, said, cues)
                    ),
                    key=lambda it: (it[0], *later_key(it[1])),
                    reverse=True,
                )
                ties[arg] = sum(cues.get(w, 0.0) for w in asked) if cues else 0.0
        chosen = _exclusive(ranked, ties)
        # an open class of names: capitalized words (in a text without capitals,
        # uncommon words) that are no known value of this name's arguments (another
        # tool's may be), for a value the training calls never had. A span after words
        # that went with the argument's values is a source of its own ("directed by
        # Gavin Hood"), trusted as a value said; its rates are learned apart from those
        # of any capitalized words ("Hi, Gavin Hood here"), and those of uncommon words
        # apart again. The best fits are taken first, whichever arguments they fill.
        spans: dict[str, tuple[str, Mention]] = {}
        known = known_stretches(scan, [counts.key_info((name, a))[3] for a in past])
        taken = list(known)
        fits = [
            (fit, arg, found)
            for arg in past
            for fit, found in rank_mentions(
                scan, open_mentions(scan, counts, (name, arg), known), self._cues_of((name, arg))
            )
        ]
        fits.sort(key=lambda it: it[0], reverse=True)  # the best fit first, of any argument
        for fit, arg, best in fits:
            if arg in spans or overlaps(best, taken):
                continue
            kind = "user:cued" if fit > 0 else "user:span"
            if best[3] != "span":  # its own rates: uncommon words and codes are not names
                kind = _said_kind(kind, best[3])
            spans[arg] = (kind, as_written(counts, (name, arg), best))
            taken.append((best[0], best[1]))
        out: dict[str, list[_Cand]] = {}
        for arg, options in past.items():
            front: list[_Cand] = []
            got = chosen.get(arg)
            if got is not None:
                front.append((_said_kind("user:now", got[3]), got[2], _how(got[3], "user")))
            kind_span = spans.get(arg)
            if kind_span is not None and (got is None or kind_span[1][2] != got[2]):
                front.append((kind_span[0], kind_span[1][2], f"normalized:{kind_span[1][3]}"))
            whole = self._whole(counts, (name, arg), scan)
            if whole is not None:
                front.append(("user:whole", whole, "request"))
            out[arg] = [*front, *options] if front else options
        return out

    @staticmethod
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

    def _past_candidates(
        self, name: str, view: SessionView, counts: CallCounts, anchor: dt.date | None
    ) -> dict[str, list[_Cand]]:
        out: dict[str, list[_Cand]] = {}
        last_agent = view.agent[-1] if view.agent else None
        names = counts.arg_names(name)
        kids = [counts.key_info((name, arg))[3] for arg in names]
        earlier = {
            kind: self._said_earlier(name, names, view, counts, anchor, agent=agent)
            for kind, agent in (("user:past", False), ("agent:past", True))
        }
        for arg in names:
            key = (name, arg)
            _, top, fmt, kid = counts.key_info(key)
            options: list[_Cand] = []
            if last_agent is not None:
                got = mention(last_agent, kid, fmt, counts, anchor, self._cues_of(key))
                if got is not None:
                    options.append(
                        (_said_kind("agent:last", got[3]), got[2], _how(got[3], "agent"))
                    )
            for kind in ("user:past", "agent:past"):
                said = earlier[kind].get(arg)
                if said is not None:
                    how = _how(said[3], kind[:-5])
                    options.append((_said_kind(kind, said[3]), said[2], how))
            given = self._from_results(key, kids, view, counts, anchor) if view.results else None
            if given is not None:
                options.append((_said_kind("result", given[3]), given[2], "result"))
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

    def _said_earlier(
        self,
        name: str,
        names: list[str],
        view: SessionView,
        counts: CallCounts,
        anchor: dt.date | None,
        *,
        agent: bool,
    ) -> dict[str, Mention]:
        """
        Return what the latest earlier request (or reply) that mentions each argument
        says of it: the mention whose words best fit the argument's cues, one argument
        per stretch of that text.
        """
        ranked: dict[str, list[tuple[tuple[float, ...], int, Mention]]] = {}
        side = "agent:past" if agent else "user:past"
        kids = [counts.key_info((name, arg))[3] for arg in names]
        for arg in names:
            key = (name, arg)
            presence, _, fmt, kid = counts.key_info(key)
            cues = self._cues_of(key)
            options: list[tuple[tuple[float, ...], int, Mention]] = []
            said_before = view.said_options(kid, fmt, anchor, agent=agent, turns=_PAST_TURNS)
            if not said_before and not agent:  # an open class: names or codes new to it
                options = self._past_spans(key, kids, view, counts, presence, cues)
            for turn_no, scan, said in said_before:
                fits = (
                    rank_mentions(scan, said, cues)
                    if scan is not None
                    else [(0.0, found) for found in said]
                )
                options.extend(
                    (
                        (turn_no, fit + self._said_logit(key, side, found[3], presence)),
                        turn_no,
                        found,
                    )
                    for fit, found in fits
                )
            if options:
                ranked[arg] = sorted(
                    options, key=lambda it: (*it[0], *later_key(it[2])), reverse=True
                )
        return _exclusive_turns(ranked)

    def _past_spans(
        self,
        key: Key,
        kids: list[int],
        view: SessionView,
        counts: CallCounts,
        presence: float,
        cues: CueWeights,
    ) -> list[tuple[tuple[float, ...], int, Mention]]:
        """
        Return the names the latest earlier requests give (:func:`span_mentions`) that
        are no known value of the tool's arguments, as options of an argument of an open
        class of names that none of those requests mentions ("I need a counselor in
        Gilroy", then "A family counselor"): a source of its own, with its own rates.
        """
        out: list[tuple[tuple[float, ...], int, Mention]] = []
        first = view.n_turns - len(view.user)
        for back in range(len(view.user) - 1, max(-1, len(view.user) - 1 - _PAST_TURNS), -1):
            scan = view.user[back]
            free = open_mentions(scan, counts, key, known_stretches(scan, kids))
            for fit, found in rank_mentions(scan, free, cues):
                found = as_written(counts, key, found)
                logit = self._said_logit(key, "user:past", found[3], presence)
                out.append(((first + back, fit + logit), first + back, found))
        return out

    def _from_results(
        self,
        key: Key,
        kids: list[int],
        view: SessionView,
        counts: CallCounts,
        anchor: dt.date | None,
    ) -> Mention | None:
        """
        Return what the latest calls' results give an argument (a lookup's user id, a
        search's first restaurant): of their known values, values said another way,
        and, for an open class, names and codes no call had, the one whose surrounding
        words and place in its result's list best fit the argument's cues.
        """
        cues = self._cues_of(key)
        best: tuple[float, int, int, Mention] | None = None
        for i, scan in enumerate(view.results):
            options = self._result_options(key, scan, counts, anchor, known_stretches(scan, kids))
            ends = _ends(options)
            for m in options:
                # on a tie, the latest result, and in it the first (a result lists its
                # best first)
                fit = sum(cues.get(w, 0.0) for w in _result_words(scan, m, ends))
                score = (fit, i, -m[0], m)
                if best is None or score[:3] > best[:3]:
                    best = score
        return None if best is None else as_written(counts, key, best[3])

    def _cues_of(self, key: Key) -> CueWeights:
        """
        Return the argument's cue weights (kept: they read the counts as they grow).
        """
        got = self._cue_w.get(key)
        if got is None:
            pooled = [self._word_cues.setdefault(w, {}) for w in arg_words(key[1])]
            got = self._cue_w[key] = CueWeights(self.cues_.setdefault(key, {}), pooled)
        return got

    def _said_logit(self, key: Key, side: str, how: str, presence: float) -> float:
        """
        Return the log-odds that a value a text (``side``: the request, earlier requests
        or replies) says this way (verbatim, as an alias, normalized) is the argument's
        value in the call.
        """
        right, given = self._source(key, _said_kind(side, how), presence)
        p = min(max(right * given, 0.01), 0.99)
        return math.log(p / (1.0 - p))

    def _source(self, key: Key, kind: str, presence: float) -> tuple[float, float]:
        """
        Return a source's precision for an argument and how often the argument is given
        when the source has a value, smoothed towards the priors (for the default, the
        argument's presence rate; for the others, at least that).
        """
        m = self.prior_weight
        prior_right, prior_given = _PRIOR[_kind(kind)]
        prior_given = presence if kind == "default" else max(presence, prior_given)
        entry = self.sources_.get(key, {}).get(kind)
        if entry is None:
            return prior_right, prior_given
        avail, given, right = entry
        return (right + m * prior_right) / (given + m), (given + m * prior_given) / (avail + m)

    def _assemble(
        self,
        name: str,
        q: float,
        cands: dict[str, list[_Cand]],
        view: SessionView,
        counts: CallCounts,
        moment: str,
    ) -> list[_Draft]:
        """
        Choose each argument's value (the most precise source that has one), keep the
        arguments that source usually means are given, and describe the call; then up
        to ``alternatives`` variants: one argument's runner-up value, or an optional
        argument left out or put in.
        """
        args: dict[str, str] = {}
        evidence: dict[str, str] = {}
        p0 = q
        complete = True
        fresh = False
        # (factor on p0, argument, value or None to leave it out, evidence, kind: "1d"
        # an optional argument dropped, "1a" one added, "1v" a runner-up value)
        variants: list[tuple[float, str, str | None, str, str]] = []
        for arg, options in cands.items():
            key = (name, arg)
            presence = counts.key_info(key)[0]
            ranked = sorted(
                ((*self._source(key, option[0], presence), option) for option in options),
                key=lambda it: -it[0],
            )
            if not ranked:
                complete = complete and presence < 0.5
                continue
            right, given, (kind, value, how) = ranked[0]
            runner = next((r for r in ranked[1:] if r[2][1] != value), None)
            if given >= 0.5:
                args[arg] = value
                evidence[arg] = how
                p0 *= right
                fresh = fresh or _kind(kind) in _FROM_REQUEST
                if runner is not None:
                    variants.append((runner[0] / right, arg, runner[2][1], runner[2][2], "1v"))
                if presence < 0.5:
                    variants.append(((1.0 - given) / (given * right), arg, None, "", "1d"))
            else:
                p0 *= 1.0 - given
                if kind != "default":
                    variants.append((given * right / (1.0 - given), arg, value, how, "1a"))
            if presence >= 0.5 and (kind == "default" and right < 0.5 or given < 0.5):
                complete = False
        last = view.last_args.get(name)
        # read-only calls apart: after the reply, a transactional call ("Shall I book
        # it?") is far likelier to come than a search, and pooled they looked alike
        head = (
            moment,
            str(int(complete)),
            str(int(fresh)),
            "ro" if counts.read_only(name) else "tx",
        )
        drafts = [_draft(name, args, evidence, p0, last, head, "0")]
        variants.sort(key=lambda it: -it[0])
        for factor, arg, alt, alt_how, rank in variants[: self.alternatives]:
            alt_args, alt_evidence = dict(args), dict(evidence)
            if alt is None:
                del alt_args[arg], alt_evidence[arg]
            else:
                alt_args[arg], alt_evidence[arg] = alt, alt_how
            drafts.append(_draft(name, alt_args, alt_evidence, p0 * factor, last, head, rank))
        return drafts

    # -- saving ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """
        Return the fitted model as a JSON-ready dict.
        """
        check_is_fitted(self, "counts_")
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": self.get_params(),
            "n_sessions": self.n_sessions_,
            "counts": self.counts_.to_json(),
            "sources": [[list(k), v] for k, v in self.sources_.items()],
            "calib": [[list(c), e] for c, e in self.calib_.items()],
            "cues": [[list(k), v] for k, v in self.cues_.items()],
            "name_temperature": self.name_temperature_.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str | Path = "<json>") -> CallForecaster:
        """
        Rebuild a model from :meth:`to_json` output.

        Args:
            data: The decoded JSON.
            source: Names the origin in error messages.

        Returns:
            The fitted model.

        Raises:
            ModelFileError: If the data is corrupt or of an unknown version.
        """
        check_document(data, _FORMAT, _VERSION, source)
        with map_corrupt_data(source, "call forecaster data"):
            model = cls(**data["params"])
            model._reset()
            model.n_sessions_ = int(data["n_sessions"])
            model.counts_ = CallCounts.from_json(data["counts"])
            model.counts_.aliases()
            model.sources_ = {
                (str(k[0]), str(k[1])): {str(s): [float(x) for x in e] for s, e in v.items()}
                for k, v in data["sources"]
            }
            model.calib_ = {tuple(map(str, c)): [float(x) for x in e] for c, e in data["calib"]}
            if "name_temperature" in data:  # absent from models saved before it was learned
                model.name_temperature_ = NameTemperature.from_json(data["name_temperature"])
            for k, words in data["cues"]:
                key = (str(k[0]), str(k[1]))
                cues = model._cues_of(key)
                for w, e in words.items():
                    cues.add(str(w), float(e[0]), float(e[1]))
        return model

    def save(self, path: str | Path) -> None:
        """
        Write the fitted model as versioned JSON, atomically.

        Args:
            path: Where to write.
        """
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> CallForecaster:
        """
        Read a model written by :meth:`save`.

        Args:
            path: The file.

        Returns:
            The fitted model.

        Raises:
            ModelFileError: If the file is corrupt or of an unknown version.
        """
        return cls.from_json(read_json(path), source=path)


def _draft(
    name: str,
    args: dict[str, str],
    evidence: dict[str, str],
    p0: float,
    last: dict[str, str] | None,
    head: tuple[str, ...],
    rank: str,
) -> _Draft:
    status = "new" if last is None else "same" if last == args else "changed"
    cell = (head[0], _bin(p0), status, *head[1:], rank)
    return _Draft(name, args, evidence, min(p0, 1.0), cell)


def _name_features(scan: TextScan, view: SessionView) -> set[str]:
    """
    What the names a request calls are read from (:func:`~graph._calls_names.name_tokens`).
    """
    return name_tokens(scan.toks, _asked(view), view.prev_calls, view.called)


def _asked(view: SessionView) -> list[str]:
    """
    The last words of the agent's last reply (the question a request answers), as cue
    words marked ``?``.
    """
    return asked_words(view.agent[-1].toks) if view.agent else []


def _exclusive(
    ranked: Mapping[str, list[tuple[float, Mention]]], ties: Mapping[str, float] | None = None
) -> dict[str, Mention]:
    """
    Give each argument its best-fitting mention that no argument chosen before it took
    (the best fit of all first, on a tie the argument that best fits ``ties``, e.g. the
    question the text answers): one stretch of a text fills one argument. The mentions
    of one text: :func:`_exclusive_turns` with every mention in turn 0.
    """
    ties = ties or {}
    return _exclusive_turns(
        {
            arg: [((score, ties.get(arg, 0.0)), 0, found) for score, found in options]
            for arg, options in ranked.items()
        }
    )


def _exclusive_turns(
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


def _scan_of(view: SessionView, turn: Mapping[str, Any]) -> TextScan:
    text = turn.get("text")
    return view.scan(text if isinstance(text, str) else "")

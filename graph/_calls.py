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

After a call the request made (``predict``'s ``made``), the calls it makes next are
forecast the same way, the calls made read as an earlier turn's (their values copied
or followed, their results searched) and the names from what followed the last call
in the turns learned from (nothing, after most turns' last call), calibrated apart.

The forecaster holds the steps together: where each argument's candidates come from
is :class:`~graph._calls_search.ArgumentSearch`'s, and what it learned to trust of
each source and of the words around values is
:class:`~graph._calls_evidence.Evidence`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._calls_counts import BOUND_EVERY, PRUNE_EVERY, CallCounts
from ._calls_drafts import BIN_FLOOR, Draft, assemble
from ._calls_evidence import Cand, Evidence
from ._calls_names import NameTemperature, name_tokens
from ._calls_search import ArgumentSearch, asked, scan_of
from ._calls_turns import PATH, ExactCall, Key, calls_of, exact_calls, made_calls, nested, turns_of
from ._calls_view import SessionView, TextScan
from ._persistence import JsonModel, check_document, map_corrupt_data, number

__all__ = ["CallForecaster", "CallGuess"]

_FORMAT = "graph.CallForecaster"
_VERSION = 1

#: predict reads the calls of this many times ``max_turns`` latest turns of a history.
_HISTORY_TURNS = 4
#: predict reads at most this many latest calls a request made so far.
MAX_MADE = 32
_NO_HITS = (0.0, 0.0, 0.0)


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
            call of the name gave: the next day, another airline),
            ``"same:<name>.<arg>"`` (for a tool the request already called, the value
            its last call gave), ``"result"`` (given by an earlier call's result: the
            user id a lookup returned), ``"request"`` (the request's whole text: a
            search query handed on as the user wrote it), ``"default"`` or
            ``"normalized:<rule>"``. An argument inside an
            object argument is named by its path, dotted (``filters.city``).

    .. versionadded:: 0.1
    """

    name: str
    args: Mapping[str, Any]
    p: float
    evidence: Mapping[str, str]


class CallForecaster(JsonModel, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
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
        max_vocabulary: Learning online (:meth:`partial_fit`), the most word counts
            (:attr:`vocabulary_`) the model may hold: past it, every count halves and
            the word counts that fall below one go, until it holds no more (None: no
            bound). The default is above what a fit on all of SGD's train sessions
            holds (about 565,000).

    Attributes:
        counts_: The :class:`~graph._calls_counts.CallCounts`.
        evidence_: Which sources of each argument's value, and which words around a
            value, held-out turns showed right (:class:`~graph._calls_evidence.Evidence`).
        sources_: ``{(name, arg): {source: [available, given, right]}}`` on held-out
            turns (``evidence_.sources``).
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
        max_vocabulary: int | None = 1_000_000,
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
        self.max_vocabulary = max_vocabulary

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
        if self.max_vocabulary is not None and self.max_vocabulary < 1:
            raise ValueError(f"max_vocabulary must be >= 1 or None, got {self.max_vocabulary!r}")
        self.counts_ = CallCounts()
        self.evidence_ = Evidence(self.prior_weight)
        self.calib_: dict[tuple[str, ...], list[float]] = {}
        self.name_temperature_ = NameTemperature()
        self.n_sessions_ = 0

    @property
    def sources_(self) -> dict[Key, dict[str, list[float]]]:
        """
        ``{(name, arg): {source: [available, given, right]}}`` on held-out turns.
        """
        return self.evidence_.sources

    @property
    def vocabulary_(self) -> int:
        """
        How many word counts the model holds: the words said before each tool's calls,
        those said in place of each argument's values (by value), the features names
        are read from (by name) and the cue words of each argument. They grow with what
        is said (see ``max_vocabulary``).

        .. versionadded:: 0.15
        """
        check_is_fitted(self, "counts_")
        return self.counts_.vocabulary() + self.evidence_.vocabulary()

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
        the last rebuild make up a twentieth of all. Every ``PRUNE_EVERY`` (1,000)
        sessions counted, the cue words seen once go, and while the model holds more
        word counts than ``max_vocabulary`` it ages: every count halves (a share, a
        precision, a probability read from them stays as it was) and the word counts
        that fall below one go, so that what it holds stays bounded however long it
        learns, and what was said long ago and not since is forgotten first. A model
        found above the bound in between (it is looked at every ``BOUND_EVERY``, 50,
        sessions) prunes and ages at once.

        A session that goes on may be learned from in parts: a session mapping whose
        ``learned_turns`` is n had its first n turns learned from before, and they are
        read as the context of the rest (the values said, the calls made), neither
        judged nor counted again, nor the session counted as another.

        Args:
            sessions: As for :meth:`fit`.
            y: Ignored.

        Returns:
            ``self``.

        .. versionchanged:: 0.20
           ``learned_turns``.
        """
        if not hasattr(self, "counts_"):
            self._reset()
        for session in sessions:
            start = _learned_turns(session)
            if self.counts_.n_sessions:
                self._judge(session, self.counts_, start=start)
            self.counts_.add(session, start)
            if start:  # a session that goes on: learned from before
                continue
            self.n_sessions_ += 1
            n = self.counts_.n_sessions
            pruned = n % PRUNE_EVERY == 0  # the alias counts, as counted (CallCounts.add)
            if pruned or (n % BOUND_EVERY == 0 and self._over_bound()):
                if not pruned:  # what a prune drops goes before the rest halves
                    self.counts_.prune_said()
                self.evidence_.prune_cues()
                self._bound_vocabulary()
        self.counts_.aliases(now=False)  # in steps: a rebuild costs all alias counts
        return self

    def _over_bound(self) -> bool:
        return self.max_vocabulary is not None and self.vocabulary_ > self.max_vocabulary

    def _bound_vocabulary(self) -> None:
        """
        Age the counts while they hold more word counts than ``max_vocabulary`` (and
        rebuild the aliases if they aged).
        """
        if not self._over_bound():
            return
        while self._over_bound():
            self.counts_.age()
            self.evidence_.age()
        self.counts_.aliases()

    def _judge(
        self,
        session: Any,
        counts: CallCounts,
        *,
        learn: bool = True,
        calibrate: bool = True,
        start: int = 0,
    ) -> None:
        """
        Forecast every turn of a held-out session from ``start`` on with ``counts``
        (after the previous reply, and once the request arrived), and count what was
        right: for each source and the words around values (``learn``), for each
        calibration cell (``calibrate``). The turns before ``start`` are read only.
        """
        view = SessionView(counts, self.max_turns)
        anchor = self._anchor(counts)
        search = ArgumentSearch(view, counts, anchor, self.evidence_)
        for i, turn in enumerate(turns_of(session)):
            if i < start:
                view.add_turn(turn)
                continue
            cands: dict[str, dict[str, list[Cand]]] = {}
            made = made_calls(turn)
            if calibrate:
                truth = set(exact_calls(made))
                self._count_drafts(self._drafts(search, None)[0], truth)
                # learning alone needs the candidates of the names called, worked out
                # where they are judged: forecasting every likely name is calibration's
                drafts, cands = self._drafts(search, turn)
                self._count_drafts(drafts, truth)
            if len(made) > 1 or (calibrate and made):
                self._judge_after(view, turn, made, search, calibrate=calibrate, learn=learn)
            if learn:
                search.judge(turn, cands)
                self._judge_names(turn, view, counts)
            view.add_turn(turn)

    def _judge_after(
        self,
        view: SessionView,
        turn: Mapping[str, Any],
        made: list[Mapping[str, Any]],
        search: ArgumentSearch,
        *,
        calibrate: bool,
        learn: bool,
    ) -> None:
        """
        After each call the request made, forecast the calls still to come (none after
        its last: most turns make one call) and count the drafts (``calibrate``); and
        for a tool called again, which sources had its arguments (``learn``).
        """
        fork = view.fork()
        after = ArgumentSearch(fork, search.counts, search.anchor, self.evidence_)
        scan = scan_of(fork, turn)
        done: list[ExactCall] = []
        for j in range(1, len(made) + 1):
            fork.add_calls({"tool_calls": made[j - 1 : j]})
            done += exact_calls(made[j - 1 : j])
            if calibrate:
                drafts = self._drafts(after, turn, made=done)[0]
                self._count_drafts(drafts, set(exact_calls(made[j:])) - set(done))
            if learn and j < len(made):
                for name, args, _ in calls_of({"tool_calls": made[j : j + 1]}):
                    if name in fork.made:
                        for arg, options in after.candidates(name, scan).items():
                            self.evidence_.count((name, arg), options, args.get(arg))

    def _count_drafts(self, drafts: list[Draft], truth: set[ExactCall]) -> None:
        """
        Count each draft in its calibration cell, and in its band: whether it was right.
        """
        for draft in drafts:
            hit = float(draft.exact() in truth)
            for key in (draft.cell, draft.cell[:2]):  # the cell, and its band
                cell = self.calib_.setdefault(key, [0.0, 0.0, 0.0])
                cell[0] += 1.0
                cell[1] += hit
                cell[2] += draft.p0

    def _judge_names(self, turn: Mapping[str, Any], view: SessionView, counts: CallCounts) -> None:
        """
        Count how likely the names read from the request's words made those it called,
        at each temperature.
        """
        if counts.name_words.turns and not self.name_temperature_.settled:
            scores = counts.name_words.scores(_name_features(scan_of(view, turn), view))
            self.name_temperature_.observe(scores, [name for name, _, _ in calls_of(turn)])

    # -- forecasting ----------------------------------------------------------------

    def predict(
        self,
        history: Sequence[Mapping[str, Any]],
        request: Mapping[str, Any] | None = None,
        *,
        k: int = 3,
        read_only: bool = True,
        names: Callable[[str], bool] | None = None,
        made: Sequence[Any] | None = None,
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
                Its ``tool_calls`` are not read (a logged turn may be given whole).
            k: At most this many guesses.
            read_only: Only names that were read-only in most of their training calls.
            names: Only names it holds true for (the tools a tenant has, say); None for
                every name. Either filter leaves room among the ``max_names`` a turn
                considers for the names it keeps.
            made: The calls the request made so far (``tool_calls`` entries, with their
                results; the latest 32 are read; entries that are not mappings are
                skipped), to forecast the calls it makes next: their values may come
                from those calls' arguments and results (the user id a lookup returned),
                and the calls made are not guessed again. A model that never saw a turn
                make a second call forecasts none then.

        Returns:
            Up to ``k`` guesses, most probable first.

        Raises:
            TypeError: If ``history`` is not a sequence or ``request`` not a mapping.

        .. versionchanged:: 0.23
           ``made``: the calls a request makes after them.
        """
        if "counts_" not in self.__dict__:  # the fast path of check_is_fitted
            check_is_fitted(self, "counts_")
        if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
            raise TypeError(f"history must be a sequence of turn mappings, got {history!r:.80}")
        if request is not None and not isinstance(request, Mapping):
            raise TypeError(f"request must be a turn mapping or None, got {request!r:.80}")
        if made and not self._follows():
            return []  # it never saw a call follow one in a turn: nothing to read
        counts = self.counts_
        view = SessionView(counts, self.max_turns)
        for turn in history[-_HISTORY_TURNS * self.max_turns :]:
            if isinstance(turn, Mapping):
                view.add_turn(turn)
        if made:  # after the request's calls so far: the turn's next ones
            made = made_calls({"tool_calls": list(made)[-MAX_MADE:]})
            view.add_calls({"tool_calls": made})

        def keep(name: str) -> bool:
            if names is not None and not names(name):
                return False
            return not read_only or counts.read_only(name)

        search = ArgumentSearch(view, counts, self._anchor(counts), self.evidence_)
        drafts, _ = self._drafts(search, request, keep, exact_calls(made or ()))
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

    def _follows(self) -> bool:
        """
        Whether a forecast after a call ever came true on the held-out turns (the
        calibration bands of that moment counted a hit).
        """
        calib = self.calib_
        return any(calib.get(("c", str(b)), _NO_HITS)[1] for b in range(BIN_FLOOR, 1))

    def _anchor(self, counts: CallCounts) -> dt.date | None:
        return dt.date.fromisoformat(self.anchor) if self.anchor else counts.anchor()

    def _calibrated(self, draft: Draft) -> float:
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
        after: str | None = None,
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
            if after is None and scan is not None and counts.name_words.turns:
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
        memo_key = (self.alpha, self.min_p, state, *ctxs[2])
        if after is not None:  # what followed that call in a turn, or nothing
            ctxs = [("*",), *ctxs[3:], ("c", after)]
            memo_key = (self.alpha, self.min_p, state, "c", after)
        memo = counts.memo
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
        search: ArgumentSearch,
        request: Mapping[str, Any] | None,
        keep: Callable[[str], bool] | None = None,
        made: Sequence[ExactCall] = (),
    ) -> tuple[list[Draft], dict[str, dict[str, list[Cand]]]]:
        """
        Return the calls of the ``max_names`` likeliest names (of those ``keep`` holds
        true for), each with its variants, and every argument's candidates; after the
        request ``made`` calls (its calls so far, in order, read into the view), the
        others, named by what followed the last of them in the training turns.
        """
        view, counts = search.view, search.counts
        scan = scan_of(view, request) if request is not None else None
        moment = "c" if made else "r" if request is not None else "a"
        after = made[-1][0] if made else None
        drafts: list[Draft] = []
        all_cands: dict[str, dict[str, list[Cand]]] = {}
        ranked = self._name_probs(view, request, scan, counts, after)
        if keep is not None:
            ranked = [(name, q) for name, q in ranked if keep(name)]
        for name, q in ranked[: self.max_names]:
            cands = search.candidates(name, scan)
            all_cands[name] = cands
            drafts.extend(
                assemble(name, q, cands, view, counts, self.evidence_, moment, self.alternatives)
            )
        if made:
            done = set(made)
            drafts = [draft for draft in drafts if draft.exact() not in done]
        return drafts, all_cands

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
            "sources": [[list(k), v] for k, v in self.evidence_.sources.items()],
            "calib": [[list(c), e] for c, e in self.calib_.items()],
            "cues": [[list(k), dict(v)] for k, v in self.evidence_.cues.items()],
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
            model.evidence_.sources = {
                (str(k[0]), str(k[1])): {str(s): [number(x) for x in e] for s, e in v.items()}
                for k, v in data["sources"]
            }
            model.calib_ = {tuple(map(str, c)): [number(x) for x in e] for c, e in data["calib"]}
            if "name_temperature" in data:  # absent from models saved before it was learned
                model.name_temperature_ = NameTemperature.from_json(data["name_temperature"])
            for k, words in data["cues"]:
                key = (str(k[0]), str(k[1]))
                cues = model.evidence_.cues_of(key)
                for w, e in words.items():
                    cues.add(str(w), number(e[0]), number(e[1]))
        return model


def _learned_turns(session: Any) -> int:
    """
    A session mapping's ``learned_turns`` (see :meth:`CallForecaster.partial_fit`):
    0 unless a whole number above 0.
    """
    n = session.get("learned_turns") if isinstance(session, Mapping) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def _name_features(scan: TextScan, view: SessionView) -> set[str]:
    """
    What the names a request calls are read from (:func:`~graph._calls_names.name_tokens`).
    """
    return name_tokens(scan.toks, asked(view), view.prev_calls, view.called)

"""
Forecasting a turn's tool calls, off the request path: the :class:`CallPredictor`
protocol the engine speculates from, the engine's own (over graph's
:class:`~graph.CallForecaster`) and the replay's oracle.

The engine asks twice a turn: after the reply, for the next turn's calls (``request``
None), and the moment a request arrives, for its own calls (``request`` its turn).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sklearn.exceptions import NotFittedError

from graph import CallForecaster, CallGuess

if TYPE_CHECKING:
    from .._sessions import Session
    from ..calls import CallSource
    from ._forecasting import TurnMapping

__all__ = ["CallPredictor", "EngineCallPredictor", "OracleCallPredictor", "read_only_tools"]


@runtime_checkable
class CallPredictor(Protocol):
    """
    Forecasts the calls of a turn, with their arguments and probabilities.

    A predictor may also have ``word_counts() -> int``, the size of what it learned
    (:meth:`EngineCallPredictor.word_counts`): the engine reads it after each part it
    learns, in the same worker thread, for ``CallStatistics.learned_word_counts``.

    .. versionadded:: 0.3
    .. versionchanged:: 0.22
       The optional ``word_counts``.
    """

    def predict_calls(
        self,
        session_id: str,
        history: Sequence[TurnMapping],
        request: TurnMapping | None,
        *,
        k: int,
    ) -> Sequence[CallGuess]:
        """
        The likeliest calls of the turn after ``history`` (``request`` when its text
        has arrived), most probable first. After a call of the request (the ``call``
        moment), ``request["tool_calls"]`` holds the calls made so far, with their
        results (and a call run ahead that returned, as if made): the calls the
        request makes next. A predictor that ignores it guesses the request's calls
        again, and those already run are not run twice.

        .. versionchanged:: 0.23
           ``request["tool_calls"]``.
        """
        ...

    def observe_session(
        self, turns: Sequence[TurnMapping], user: str | None, *, learned: int = 0
    ) -> None:
        """
        Learn from a session's turns (with their ``tool_calls``): a session that ended,
        or one that goes on, in parts. The first ``learned`` turns were learned from
        before: they are the context of the others (what was said, the calls made),
        not to be learned again.

        .. versionchanged:: 0.20
           ``learned``.
        """
        ...


class EngineCallPredictor:
    """
    The engine's call predictor: graph's :class:`~graph.CallForecaster`, fitted on
    session logs and updated online from every session as it goes (every few answered
    turns, with the turns before them as their context) and as it ends. Until it has
    seen a session with calls it forecasts none.

    Args:
        model: The forecaster (a new one with its defaults when None).
        tools: Forecast only the names it holds true for (the read-only tools of the
            engine's call sources, say: :func:`read_only_tools`); None for every name
            the model knows whose calls were read-only in most of the logs. A model
            fitted on the logs of many tenants then spends its guesses on the tools this
            one has, and what the sources declare outranks what the logs said (a call
            recorded as not read-only, because the engine did not run it, does not
            count against its tool).

    .. versionadded:: 0.3
    .. versionchanged:: 0.8
       ``tools``.
    Beside a fitted model, a tool the fit never saw is learned apart: the first session
    that calls one starts a model of the engine's own (:attr:`own`), which learns every
    session from then on, and each tool's calls are forecast by whichever of the two
    counted more of them (the fit's counts as they were before it learned online).

    .. versionchanged:: 0.13
       With ``tools``, the logs' read-only majority no longer filters the names.
    .. versionchanged:: 0.21
       A tool the fit never saw is learned apart (:attr:`own`).
    """

    def __init__(
        self, model: CallForecaster | None = None, *, tools: Callable[[str], bool] | None = None
    ) -> None:
        self.model = model if model is not None else CallForecaster()
        self.tools = tools
        self._fitted = hasattr(self.model, "counts_")
        #: A call forecaster of the engine's own, beside a fitted model, once a session
        #: called a tool the fit never saw (None before, and without a fitted model).
        self.own: EngineCallPredictor | None = None
        # each tool's calls the fit counted, before the model learned online
        self._fit_counts = counted_calls(self.model) if self._fitted else None

    def fit(self, sessions: Sequence[Session]) -> EngineCallPredictor:
        """
        Learn from recorded sessions before serving.
        """
        self.model.fit([s.as_mapping() for s in sessions])
        self._fitted = True
        self.own, self._fit_counts = None, counted_calls(self.model)
        return self

    def predict_calls(
        self,
        session_id: str,
        history: Sequence[TurnMapping],
        request: TurnMapping | None,
        *,
        k: int,
    ) -> Sequence[CallGuess]:
        """
        The model's guesses for the turn (none before it has learned anything); with a
        model of the engine's own (:attr:`own`), its guesses for the tools it counted
        more calls of than the fit did, ranked with the model's for the others.
        """
        if not self._fitted:
            return []
        owned = owned_names(self.own, self._fit_counts or {})
        guesses = guesses_of(self.model, self.tools, history, request, k=k, owned=owned, mine=False)
        return joined(guesses, self.own, self.tools, history, request, k=k, owned=owned)

    def observe_session(
        self, turns: Sequence[TurnMapping], user: str | None, *, learned: int = 0
    ) -> None:
        """
        Learn from a session's turns after the first ``learned`` (their context), when
        they made calls. Beside a fitted model, a session that calls a tool the fit
        never saw starts a model of the engine's own (:attr:`own`), which learns from
        then on too: a tool new to the fit is learned apart from the counts of the
        tools it knew, and forecast by whichever model counted more of its calls.
        """
        calls = [
            call
            for turn in turns[learned:]
            for call in turn.get("tool_calls") or ()
            if isinstance(call, Mapping)
        ]
        if not calls:
            return
        fit = self._fit_counts
        names = {c.get("name") for c in calls}
        if (
            self.own is None
            and fit is not None
            and any(isinstance(n, str) for n in names - fit.keys())
        ):
            own = CallForecaster(max_vocabulary=self.model.max_vocabulary)
            self.own = EngineCallPredictor(own, tools=self.tools)
        self.model.partial_fit([{"user": user, "turns": list(turns), "learned_turns": learned}])
        self._fitted = True
        if self.own is not None:
            self.own.observe_session(turns, user, learned=learned)

    def word_counts(self) -> int:
        """
        The word counts its models hold, the model's and its own's (what grows with what
        sessions say, and what ``max_vocabulary`` bounds; see
        :attr:`graph.CallForecaster.vocabulary_`), 0 before it learned anything.

        .. versionadded:: 0.22
        """
        words = self.model.vocabulary_ if self._fitted else 0
        return words + (self.own.word_counts() if self.own is not None else 0)

    def save(self, path: str | Path) -> None:
        """
        Write the model as versioned JSON.
        """
        self.model.save(path)

    @classmethod
    def load(
        cls, path: str | Path, *, tools: Callable[[str], bool] | None = None
    ) -> EngineCallPredictor:
        """
        Read a model :meth:`save` wrote (``tools`` as for the constructor).
        """
        return cls(CallForecaster.load(path), tools=tools)


def read_only_tools(sources: Sequence[CallSource]) -> Callable[[str], bool]:
    """
    Whether one of ``sources`` declares a tool read-only: what the engine may run ahead
    (for :class:`EngineCallPredictor`'s ``tools``).

    .. versionadded:: 0.8
    """
    sources = tuple(sources)

    def read_only(name: str) -> bool:
        return any(source.read_only(name) is True for source in sources)

    return read_only


class OracleCallPredictor:
    """
    The ceiling: knows every session's calls and forecasts exactly the read-only calls
    of the turn ahead, with certainty, as early as the engine asks.

    Args:
        sessions: The sessions it will be asked about, by id.
        said_first: Before the request arrives (after the reply), forecast only the
            calls whose every argument value was said by then (a request's, a
            reply's or an earlier call's result's whole words, in any case) or given
            to an earlier call: the
            ceiling of forecasting calls from what was said. A boolean, a date
            (``2019-03-14``) or ``dontcare`` counts as said: it needs normalizing ("the
            14th", "any") more than saying.

    .. versionadded:: 0.3
    .. versionchanged:: 0.7
       ``said_first``.
    """

    def __init__(self, sessions: Mapping[str, Session], *, said_first: bool = False) -> None:
        self.sessions = sessions
        self.said_first = said_first
        self._said: dict[str, _Said] = {}  # what each session said so far

    def predict_calls(
        self,
        session_id: str,
        history: Sequence[TurnMapping],
        request: TurnMapping | None,
        *,
        k: int,
    ) -> Sequence[CallGuess]:
        """
        The read-only calls the session's turn after ``history`` makes.
        """
        session = self.sessions.get(session_id)
        index = len(history)
        if session is None or index >= len(session.turns):
            return []
        calls = [c for c in session.turns[index].tool_calls if c.read_only]
        if self.said_first and request is None:
            said = self._said.get(session_id)
            if said is None or said.turns > index:
                said = self._said[session_id] = _Said()
            for turn in history[said.turns :]:  # each turn read once
                said.add(turn)
            if index == len(session.turns) - 1:  # no turn after this one
                del self._said[session_id]
            calls = [c for c in calls if all(said.has(v) for v in _leaves(c.args))]
        return [
            CallGuess(
                name=c.name,
                args=dict(c.args),
                p=1.0,
                evidence=dict.fromkeys(c.args, "oracle"),
            )
            for c in calls[:k]
        ]

    def observe_session(self, turns: Sequence[Any], user: str | None, *, learned: int = 0) -> None:
        """
        Nothing to learn.
        """


def guesses_of(
    model: CallForecaster,
    tools: Callable[[str], bool] | None,
    history: Sequence[TurnMapping],
    request: TurnMapping | None,
    *,
    k: int,
    owned: frozenset[str] = frozenset(),
    mine: bool = True,
) -> list[CallGuess]:
    """
    ``model``'s guesses for the turn (none when it has learned nothing): the names
    ``tools`` holds true for (None: those read-only in most of the model's calls);
    with ``owned``, only those among them (``mine``) or only the others, so that the
    model spends its ``k`` guesses on the tools it forecasts.
    """
    names, read_only = tools, tools is None
    if owned:
        if tools is None:
            counts = getattr(model, "counts_", None)
            tools = (lambda name: False) if counts is None else counts.read_only
        kept = tools
        names, read_only = (lambda name: (name in owned) == mine and kept(name)), False
    made = request.get("tool_calls") if request is not None else None
    if not isinstance(made, (list, tuple)):
        made = None
    try:
        return model.predict(history, request, k=k, names=names, read_only=read_only, made=made)
    except NotFittedError:
        return []


def joined(
    guesses: list[CallGuess],
    own: EngineCallPredictor | None,
    tools: Callable[[str], bool] | None,
    history: Sequence[TurnMapping],
    request: TurnMapping | None,
    *,
    k: int,
    owned: frozenset[str],
) -> list[CallGuess]:
    """
    ``guesses`` (a model's, for the tools not in ``owned``) with ``own``'s for those in
    it, the likeliest ``k`` of them.
    """
    if own is not None and owned:
        guesses = [*guesses, *guesses_of(own.model, tools, history, request, k=k, owned=owned)]
        guesses.sort(key=lambda g: -g.p)
    return guesses[: max(k, 0)]


def counted_calls(model: CallForecaster) -> dict[str, float]:
    """
    How many calls of each tool ``model`` counted (none before it learned anything).
    """
    counts = getattr(model, "counts_", None)
    return {} if counts is None else {name: n[0] for name, n in counts.names.items()}


def owned_names(own: EngineCallPredictor | None, theirs: Mapping[str, float]) -> frozenset[str]:
    """
    The names ``own`` counted more calls of than ``theirs`` did (a few dozen tools:
    worked out at each forecast).
    """
    if own is None:
        return frozenset()
    return frozenset(
        n for n, calls in counted_calls(own.model).items() if calls > theirs.get(n, 0.0)
    )


_WORD = re.compile(r"\w+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _leaves(value: Any) -> Iterator[Any]:
    """
    The values in an argument's value, lists and objects opened.
    """
    if isinstance(value, Mapping):
        for inner in value.values():
            yield from _leaves(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner)
    else:
        yield value


class _Said:
    """
    What a session said (its words, turn by turn, its calls' results too) and gave its
    calls, so far.
    """

    def __init__(self) -> None:
        self.turns = 0
        self._words: list[str] = []
        self._given: set[str] = set()

    def add(self, turn: TurnMapping) -> None:
        """
        Take the next turn in.
        """
        calls = [call for call in turn.get("tool_calls") or () if isinstance(call, Mapping)]
        # what the calls returned was said to the agent too
        texts = [turn.get("text"), turn.get("system"), *(call.get("result") for call in calls)]
        for text in texts:  # padded, so that a phrase is found whole
            self._words.append(f" {' '.join(_WORD.findall(str(text or '').lower()))} ")
        for call in calls:
            self._given.update(str(v).lower() for v in _leaves(call.get("args") or {}))
        self.turns += 1

    def has(self, value: Any) -> bool:
        """
        Whether ``value`` was said or given (or needs normalizing, not saying).
        """
        if value is None or isinstance(value, bool):
            return True
        low = str(value).lower()
        if low in self._given or low in ("true", "false", "dontcare") or _DATE.fullmatch(low):
            return True
        phrase = " ".join(_WORD.findall(low))
        return bool(phrase) and any(f" {phrase} " in words for words in self._words)

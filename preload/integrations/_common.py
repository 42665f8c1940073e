"""
What every adapter shares: the engine reached through a guard that degrades instead of
raising (and says so once in the log), the context rendered for a framework's prompt,
and tools whose calls go through ``engine.call``.

No module here imports an agent framework.
"""

from __future__ import annotations

import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import EngineStateError
from ..calls import (
    as_text,
    call_key,
    calling,
    context_parameters,
    current_session,
    in_session,
    split_arguments,
    take_call_id,
    with_context,
)
from ..engine._inputs import MAX_ID_CHARS

if TYPE_CHECKING:
    from ..engine import PreloadEngine
    from ..window import Context

__all__ = [
    "CONTEXT_HEADER",
    "HISTORY_HEADER",
    "EngineLink",
    "StoredTurns",
    "as_text",
    "render",
    "stored_call",
    "tool",
]

logger = logging.getLogger("preload.integrations")

#: The first line of the message that carries the engine's context to the model.
CONTEXT_HEADER = "Context for this request (preloaded by the application):"

#: The first line of the message that carries a compressed history to the model.
HISTORY_HEADER = "The conversation so far (compressed):"

#: The engines whose failure an adapter has logged: each is said once, whichever adapter
#: or tool meets it first.
_told: weakref.WeakSet[PreloadEngine] = weakref.WeakSet()

T = TypeVar("T")

#: The most turns of a stored history that seed the engine (its latest): the engine's
#: history compresses the older ones to a few tokens, or leaves them out.
MAX_SEEDED_TURNS = 1_000

#: Keys of the request's needs, from its text.
NeedsFunction = Callable[[str], Sequence[str]]

#: The request's state label, from its text.
StateFunction = Callable[[str], "str | None"]

#: Items of a context the adapters leave out: the framework sends the request as the
#: user's own message, and the agent's instructions stand in for the engine's system
#: prompt (whose room in the budget they take).
_LEFT_OUT = frozenset({"system", "request"})


def render(context: Context) -> str:
    """
    The context as prompt text without the engine's system prompt and the request:
    the session's compressed history and the items gathered for the request, category
    by category (as :meth:`~preload.window.Context.render` lays them out).
    """
    by_category: dict[str, list[str]] = {}
    for item in context.items:
        if item.key not in _LEFT_OUT and item.text:
            by_category.setdefault(item.category, []).append(item.text)
    parts = [f"## {category}\n" + "\n\n".join(texts) for category, texts in by_category.items()]
    return "\n\n".join(parts)


class EngineLink:
    """
    An adapter's way to the engine: each operation returns None (or nothing) instead of
    raising when the engine is closed or fails. An engine's first failure is logged as
    a warning, once for all its adapters and tools; later ones at DEBUG. The user's
    agent then runs without the extra context, as it would without the adapter.

    Args:
        engine: The engine.
        adapter: The adapter's name, for the log.
        needs: The keys a request needs, from its text (none declared when None: the
            engine adds its warm predictions).
        state: The request's state label, from its text (the engine names it when
            None, if its forecaster can).
    """

    def __init__(
        self,
        engine: PreloadEngine,
        *,
        adapter: str,
        needs: NeedsFunction | None = None,
        state: StateFunction | None = None,
    ) -> None:
        self.engine = engine
        self.adapter = adapter
        self.needs = needs
        self.state = state
        self.failures = 0

    def failed(self, action: str, exc: BaseException) -> None:
        """
        Count a failure; the engine's first is logged as a warning, the others at DEBUG.
        """
        self.failures += 1
        if self.engine not in _told:
            _told.add(self.engine)
            logger.warning(
                "%s: the engine could not %s (%s: %s); agents run without its context while "
                "it fails (said once; later failures are logged at DEBUG)",
                self.adapter,
                action,
                type(exc).__name__,
                exc,
            )
        else:
            logger.debug("%s: the engine could not %s: %r", self.adapter, action, exc)

    async def handle(self, session_id: str, text: str, user: str | None = None) -> Context | None:
        """
        ``engine.handle`` for the request, or None when the engine fails.
        """
        try:
            needs = list(self.needs(text)) if self.needs is not None else []
            state = self.state(text) if self.state is not None else None
            return await self.engine.handle(
                session_id=session_id, text=text, state=state, needs=needs, user=user
            )
        except Exception as exc:  # noqa: BLE001 - the agent never breaks because of the engine
            self.failed("serve the request", exc)
            return None

    def under_way(self, session_id: str, text: str) -> bool:
        """
        Whether the session's last turn in the engine is a request of ``text`` still
        without its reply: a run resumed within that turn, which is no new request.
        """
        try:
            last = self.engine.turns_of(session_id, -1)  # the last turn alone
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("read the session's turns", exc)
            return False
        return bool(last) and last[0].get("text") == text and not last[0].get("system")

    def reply(self, session_id: str, text: str) -> None:
        """
        ``engine.reply``; a failure is logged, never raised.
        """
        try:
            self.engine.reply(session_id, text)
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("record the reply", exc)

    async def run_tool(
        self,
        session_id: str,
        call_id: Any,
        name: str,
        args: Mapping[str, Any],
        run: Callable[[], Awaitable[T]],
        *,
        this_turn: bool,
        again: Callable[[str], T],
        text: Callable[[T], str | None],
    ) -> T:
        """
        A framework's tool call, in its adapter's tool hook. When the engine holds the
        turn the call belongs to (``this_turn``), a call the turn holds under the
        framework's ``call_id`` (a run resumed after a failure) gives
        ``again(recorded result)`` and the tool does not run. Otherwise ``run()`` runs
        with the session and the id set (for tools that call through the engine); in
        the engine's turn, the call of a tool the engine does not run is then recorded
        with ``text(result)`` (None: not recorded, as for an error).
        """
        if this_turn:
            done = self.recorded(session_id, call_id, name, args)
            if done is not None:
                return again(done)
        with in_session(session_id, call_id=call_id):
            result = await run()
        if this_turn:
            shown = text(result)
            if shown is not None:
                self.record_call(session_id, name, args, shown, call_id)
        return result

    def recorded(
        self, session_id: str, call_id: object, name: str, args: Mapping[str, Any]
    ) -> str | None:
        """
        The result the session's last turn holds for this call under the framework's
        ``call_id`` (a resumed run makes it again), or None: no such call, an id given
        to another call, or the engine fails.
        """
        if not isinstance(call_id, str) or not call_id:
            return None
        try:
            return self.engine.repeated_call(session_id, call_id, name, args)
        except (TypeError, ValueError):  # another call's id, or arguments that are not JSON
            return None
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("read the session's calls", exc)
            return None

    def record_call(
        self, session_id: str, name: str, args: Mapping[str, Any], result: str, call_id: object
    ) -> None:
        """
        ``engine.record_call`` for a tool the agent ran without the engine (a call of
        a tool the engine runs is left to it), under the framework's id when it can
        take it; a failure is logged, never raised.
        """
        given = call_id if isinstance(call_id, str) and call_id else None
        try:
            if self.engine.knows_tool(name):  # wrapped: engine.call recorded it
                return
            try:
                self.engine.record_call(session_id, name, args, result, call_id=given)
            except ValueError:  # an id too long, or another call's: recorded without it
                if given is None:
                    raise
                self.engine.record_call(session_id, name, args, result)
        except (TypeError, ValueError) as exc:  # the call's own: arguments the engine refuses
            logger.info("%s: tool %r: the call is not recorded: %s", self.adapter, name, exc)
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("record the tool call", exc)

    def history(self, session_id: str, available_tokens: int | None) -> str | None:
        """
        ``engine.history``, or None when the engine fails.
        """
        try:
            return self.engine.history(session_id, available_tokens)
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("give the history", exc)
            return None

    def take_back(self, session_id: str, *, reply: str | None, drop: bool) -> None:
        """
        Change the session's last turn in the engine: ``drop`` takes it out (its
        request was removed), else its reply becomes ``reply`` (None: unanswered).
        The engine's history forgets what it had recorded of it. A failure is logged,
        never raised.
        """
        try:
            turns = self.engine.turns_of(session_id, -1)  # the last turn alone
            if not turns:
                return
            kept = [] if drop else [{**turns[0], "system": reply}]
            self.engine.restore(session_id, kept, start=-1)
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("take the turn back", exc)

    def knows(self, session_id: str) -> bool:
        """
        Whether the engine has turns of the session (True when it cannot tell: nothing
        is then seeded).
        """
        try:
            return bool(self.engine.turns_of(session_id, -1))  # the last turn alone
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("read the session's turns", exc)
            return True

    def seed(
        self, session_id: str, turns: Sequence[Mapping[str, Any]], user: str | None = None
    ) -> bool:
        """
        Give the engine a stored session's turns (``text``, ``tool_calls`` with their
        results, ``system``: the reply) when it has none for the session (an
        application restarted with a stored history): ``engine.restore``, whose
        history records them as it would have (each within the engine's ``[limits]``).
        Only the latest ``MAX_SEEDED_TURNS`` are given. A session the engine knows is
        left as it is. Returns whether the turns were given; a failure is logged, never
        raised.
        """
        if not turns or self.knows(session_id):
            return False
        try:
            self.engine.restore(session_id, turns[-MAX_SEEDED_TURNS:], user=user)
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("seed the session from its stored history", exc)
            return False
        return True

    def end_session(self, session_id: str) -> None:
        """
        ``engine.end_session``; a failure is logged, never raised.
        """
        try:
            self.engine.end_session(session_id)
        except Exception as exc:  # noqa: BLE001 - logged once, never raised
            self.failed("end the session", exc)


class StoredTurns:
    """
    A framework's stored messages as the engine's turns (what ``engine.restore``
    takes), fed in the order they were made: each user message a turn's request; the
    tool calls made for it, each with what it returned, not read-only (the engine did
    not run them); the agent's answer its reply. A call of one of the agent's
    ``outputs`` tools (a structured output, which a framework asks for as a tool call)
    is no tool call: its arguments are the answer, as a live turn records it.
    """

    def __init__(self, outputs: Collection[str] = ()) -> None:
        self.turns: list[dict[str, Any]] = []
        self.outputs = outputs

    def request(self, text: str) -> None:
        """
        A user message: a new turn.
        """
        self.turns.append({"text": text, "tool_calls": [], "system": None})

    def call(self, name: str, args: Mapping[str, Any], call_id: str, result: str) -> None:
        """
        A tool call of the current turn, with its result (none before the first request);
        a call of an output tool its answer, until a text answers.
        """
        if name in self.outputs:
            self.answer(as_text(args))
        elif self.turns:
            self.turns[-1]["tool_calls"].append(stored_call(name, args, call_id, result))

    def answer(self, text: str) -> None:
        """
        The agent's answer so far in the current turn (an empty one leaves it as it was).
        """
        if self.turns and text:
            self.turns[-1]["system"] = text


def stored_call(name: str, args: Mapping[str, Any], call_id: str, result: str) -> dict[str, Any]:
    """
    A tool call a framework made and stored, as a turn's ``tool_calls`` holds it: not
    read-only (the engine did not run it), under the framework's id, with its result.
    """
    return {
        "name": name,
        "args": dict(args),
        "read_only": False,
        "call_id": call_id,
        "result": result,
    }


def tool(
    engine: PreloadEngine,
    function: Callable[..., Awaitable[Any]],
    *,
    read_only: bool,
    name: str | None = None,
) -> Callable[..., Awaitable[str]]:
    """
    Register an async tool with the engine and return a function with its signature
    (and docstring, so a framework builds the same schema) that calls it through
    :meth:`~preload.PreloadEngine.call` for the current session: a read-only call is
    served from its speculative result when the engine ran it ahead, or from the cache.

    The adapters set the current session around each tool call, and with it the
    framework's id of the call (LangChain's and Pydantic AI's), so that a call the
    framework runs again (a run resumed from its checkpoint after a failure) returns
    its recorded result and a tool that books does not book twice. When there is no
    session, when the arguments are not JSON, or when the engine is closed, the tool
    runs directly (logged once): the agent never loses a tool because of the engine.
    An id the framework gave to another call of the turn is logged and left out. What
    the tool itself raises propagates unchanged, and the tool never runs twice.

    A tool that takes the framework's run context (a parameter annotated
    ``RunContext``, ``RunContextWrapper``, ``ToolContext`` or ``ToolRuntime``, which
    the framework fills in) gets it from the framework as before, and its other
    arguments are the call's; the call's id is the context's ``tool_call_id`` when the
    adapter set none (the OpenAI Agents SDK's only way to give it). The engine records
    the call and returns it again under its id, but runs it only when the agent calls
    it, as a call that is not read-only whatever ``read_only`` says: it has no such
    context to run it ahead with, and the result may depend on the context (the user
    the dependencies stand for), so it is not shared with other sessions either.

    Args:
        engine: The engine.
        function: The async tool.
        read_only: Whether it only reads, so that the engine may run it ahead.
        name: Its name (the function's when None).

    Returns:
        The wrapped tool; it returns text (JSON for results that are not strings).

    Raises:
        TypeError: ``function`` is not an async function.
        ValueError: The name is taken or invalid.

    .. versionadded:: 0.4
    .. versionchanged:: 0.11
       Calls are made under the framework's call id; tools that take the framework's
       run context go through the engine.
    """
    tool_name = name or function.__name__
    engine.tool(function, name=tool_name, read_only=read_only)  # what the engine runs
    signature = inspect.signature(function)
    contexts = context_parameters(signature)
    link = EngineLink(engine, adapter=f"tool {tool_name!r}")

    @functools.wraps(function)
    async def wrapped(*args: Any, **kwargs: Any) -> str:
        session = current_session.get()
        if session is not None:
            arguments, given = split_arguments(signature, contexts, args, kwargs)
            call_id = take_call_id(given)
            try:
                call_key(tool_name, arguments)
            except (TypeError, ValueError) as exc:
                link.failed("take the call's arguments", exc)
            else:
                if call_id is not None:
                    call_id = _own_id(link, session, call_id, tool_name, arguments)
                try:
                    with with_context(given), calling():  # the tools it calls take no id
                        return await engine.call(session, tool_name, arguments, call_id=call_id)
                except EngineStateError as exc:  # raised before the tool runs
                    link.failed("make the call", exc)
        return as_text(await function(*args, **kwargs))

    return wrapped


def _own_id(
    link: EngineLink, session: str, call_id: str, name: str, args: Mapping[str, Any]
) -> str | None:
    """
    ``call_id``, or None when it is no string or too long, or when the session's turn
    holds it for another call: the call goes through the engine without it, said in a
    warning (no failure of the engine's: the engine's said-once warning is left alone).
    """
    problem = None
    if not isinstance(call_id, str):
        problem = f"call_id must be a string, got {call_id!r:.40}"
    elif len(call_id) > MAX_ID_CHARS:
        problem = f"call_id has {len(call_id):,} characters, above {MAX_ID_CHARS}"
    else:
        try:
            link.engine.repeated_call(session, call_id, name, args)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        logger.warning("%s: the call runs without the framework's id: %s", link.adapter, problem)
        return None
    return call_id

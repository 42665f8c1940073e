"""
LangChain v1 and LangGraph: the engine as agent middleware, and a chat message history
over a compressed conversation.

:class:`PreloadMiddleware` hooks ``awrap_model_call`` of ``create_agent`` (rather than
``abefore_model``, whose state updates would persist in the thread's checkpoint: the
context replaces earlier messages for the model call only). Its ``awrap_tool_call``
sets the session for tools that call through the engine, and ``aafter_agent`` records
the reply. :class:`CompressedChatMessageHistory` is a ``BaseChatMessageHistory`` over
:class:`~preload.CompressedConversation`, for ``RunnableWithMessageHistory`` and other
users of a message history.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        AIMessage,
        AnyMessage,
        BaseMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "preload.integrations.langchain needs LangChain v1: pip install 'preload[langchain]'"
    ) from exc

from ..calls import as_text
from ..history import CompressedConversation, call_line
from ._common import (
    CONTEXT_HEADER,
    HISTORY_HEADER,
    EngineLink,
    NeedsFunction,
    StateFunction,
    StoredTurns,
    render,
)

if TYPE_CHECKING:
    from langchain.agents.middleware import ModelResponse
    from langchain.agents.middleware.types import ExtendedModelResponse
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.runtime import Runtime
    from langgraph.types import Command

    from .._tokens import TokenCounter
    from ..engine import PreloadEngine
    from ..window import Context

__all__ = ["CompressedChatMessageHistory", "PreloadMiddleware", "thread_id"]

#: A session id or user, or a function that gives it from the runtime: a node's
#: ``Runtime`` or a tool's ``ToolRuntime`` (both have ``context`` and ``execution_info``).
Resolver = str | Callable[[Any], "str | None"] | None


class PreloadMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """
    Agent middleware that puts the engine inside ``create_agent``:
    ``create_agent(model, tools, middleware=[PreloadMiddleware(engine)], checkpointer=...)``.

    Each invocation's last human message is one request of a session. On the turn's
    first model call the middleware calls :meth:`~preload.PreloadEngine.handle` with
    it; every model call of the turn then gets the engine's context (the session's
    compressed history and the items gathered for the request, within the budget)
    appended to the system message, and the turn's messages whole (the human message
    and each tool call with its result) instead of the whole thread. The thread's
    state is left as it was. Tools run with the session set, so tools wrapped by
    :func:`preload.integrations.tool` go through :meth:`~preload.PreloadEngine.call`;
    the last AI message is recorded with :meth:`~preload.PreloadEngine.reply`.

    If the engine is closed or fails, or no session is known, the model gets what it
    would have got without the middleware; an engine's first failure is logged once.

    Args:
        engine: The engine (open while the agent runs).
        session_id: The engine's session: a string, a function of the runtime, or None
            for the thread id (``config={"configurable": {"thread_id": ...}}``).
        user: Who asks: a string, a function of the runtime (for instance
            ``lambda rt: rt.context.user_id``), or None for the configurable
            ``user_id``, if any.
        needs: The keys a request needs, from its text.
        state: The request's state label, from its text.

    .. versionadded:: 0.4
    .. versionchanged:: 0.12
        The calls of tools that are not wrapped are recorded, and returned again
        under their id; a run resumed within the turn the engine holds unanswered
        goes on with it, even served by a middleware built again.
    .. versionchanged:: 0.13
        A thread the engine has no turns of (an application restarted) seeds it from
        the thread's earlier messages before its first request.
    """

    def __init__(
        self,
        engine: PreloadEngine,
        *,
        session_id: Resolver = None,
        user: Resolver = None,
        needs: NeedsFunction | None = None,
        state: StateFunction | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.session_id = session_id
        self.user = user
        self._link = EngineLink(engine, adapter="langchain", needs=needs, state=state)
        self._turns: dict[str, _Turn] = {}  # the session's turn under way

    def _session(self, runtime: object) -> str | None:
        if callable(self.session_id):
            return self.session_id(runtime) if runtime is not None else None
        return self.session_id or thread_id(runtime)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """
        The engine's context in the system message and the turn's messages, for this
        model call only.
        """
        messages = list(request.messages)
        start = _current_turn(messages)
        session = self._session(request.runtime)
        if start is None or session is None:
            return await handler(request)
        human = messages[start]
        turn = self._turns.get(session)
        if turn is None or turn.mark != _mark(human):
            # a middleware that served the session's last turn knows a resumed run
            # by its mark: only one that did not asks the engine
            first = turn is None
            turn = self._resumed(session, human) if first else None
            if turn is None:
                user = _resolve(self.user, request.runtime)
                user = user or _configured(request.runtime, "user_id")
                if first and start and not self._link.knows(session):  # restarted
                    outputs = _output_tools(request.response_format)
                    self._link.seed(session, _stored_turns(messages[:start], outputs), user)
                context = await self._link.handle(session, _text(human), user)
                turn = _Turn(_mark(human), context)
            self._turns[session] = turn
        context = turn.context
        if context is None:
            return await handler(request)
        rendered = render(context)
        system = _with_context(request.system_message, rendered) if rendered else None
        return await handler(
            request.override(messages=messages[start:], system_message=system)
            if system is not None
            else request.override(messages=messages[start:])
        )

    def _resumed(self, session: str, human: BaseMessage) -> _Turn | None:
        """
        The turn the engine holds unanswered for this human message, when a run is
        resumed by a middleware that did not serve it (an agent built again for the
        resumed run): it goes on, and is no new request.
        """
        if not self._link.under_way(session, _text(human)):
            return None
        return _Turn(_mark(human), None, continued=True)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """
        The tool runs with the session and the call's id set, for tools that call
        through the engine; the call of a tool that does not is recorded with its
        result (``engine.record_call``). A call the session's turn already holds under
        its id (a run resumed after a failure) returns the recorded result, and the
        tool does not run again.
        """
        session = self._session(request.runtime)
        if session is None:
            return await handler(request)
        call = request.tool_call
        call_id, name, args = call.get("id"), call["name"], call.get("args") or {}
        turn = self._turns.get(session)
        if turn is None:  # a run resumed at its tool calls, by another middleware
            messages = list(request.state.get("messages") or ())
            start = _current_turn(messages)
            turn = self._resumed(session, messages[start]) if start is not None else None
            if turn is not None:
                self._turns[session] = turn
        return await self._link.run_tool(
            session,
            call_id,
            name,
            args,
            lambda: handler(request),
            this_turn=turn is not None and (turn.context is not None or turn.continued),
            again=lambda done: ToolMessage(content=done, tool_call_id=call_id, name=name),
            text=_answered,
        )

    async def aafter_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """
        The turn's answer joins the session's history as the reply: its structured
        response (``response_format``) as JSON of its fields, else the turn's last AI
        message that calls no tool.
        """
        session = self._session(runtime)
        if session is None:
            return None
        turn = self._turns.pop(session, None)
        if turn is None or (turn.context is None and not turn.continued):
            return None
        structured = state.get("structured_response")
        if structured is not None:  # LangChain clears it in a turn that made none
            self._link.reply(session, as_text(structured))
            return None
        messages = state["messages"]
        start = _current_turn(messages)
        for message in reversed(messages[start or 0 :]):  # not an earlier turn's
            if isinstance(message, AIMessage) and not message.tool_calls:
                self._link.reply(session, _text(message))
                break
        return None


class CompressedChatMessageHistory(BaseChatMessageHistory):
    """
    A LangChain chat message history over a :class:`~preload.CompressedConversation`:
    a budget in tokens, not in messages, and facts kept from the turns that no longer
    fit whole.

    Messages are recorded by exchange: a human message, the tool calls made for it with
    their results, and the AI's answer become one exchange when the answer arrives, so
    a tool call is never split from its result. :attr:`messages` gives one system
    message with the compressed history within ``available_tokens``, then the messages
    of an exchange still under way, whole. ``aadd_messages`` (LangChain's default) and
    ``aget_messages`` run in a worker thread, off the event loop.

    Args:
        max_tokens: The most tokens the history ever gives (the conversation's cap).
        available_tokens: The tokens :attr:`messages` gives (``max_tokens`` when None).
        counter: Counts tokens (tiktoken with the default encoding when None).
        conversation: A conversation to continue instead of a new one.

    .. versionadded:: 0.4
    """

    def __init__(
        self,
        max_tokens: int = 1500,
        *,
        available_tokens: int | None = None,
        counter: TokenCounter | None = None,
        conversation: CompressedConversation | None = None,
    ) -> None:
        super().__init__()
        self.conversation = conversation or CompressedConversation(max_tokens, counter=counter)
        self.available_tokens = available_tokens
        self.pending: list[BaseMessage] = []
        self._lock = threading.Lock()

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """
        The compressed history as one system message, then the exchange under way.
        """
        with self._lock:
            budget = self.available_tokens or self.conversation.max_tokens
            text = self.conversation.get_context(budget)
            head: list[BaseMessage] = [SystemMessage(f"{HISTORY_HEADER}\n{text}")] if text else []
            return [*head, *self.pending]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """
        Record messages; an AI message without tool calls closes the exchange.
        """
        with self._lock:
            for message in messages:
                self.pending.append(message)
                if isinstance(message, AIMessage) and not message.tool_calls:
                    user, agent = _exchange(self.pending)
                    self.conversation.add_exchange(user, agent)
                    self.pending = []

    def clear(self) -> None:
        """
        Forget everything.
        """
        with self._lock:
            old = self.conversation
            self.conversation = CompressedConversation(
                old.max_tokens, counter=old.counter, raw_turns=old.raw_turns
            )
            self.pending = []


def thread_id(runtime: object) -> str | None:
    """
    The LangGraph thread of a runtime (a node's or a tool's), if it has one.

    .. versionadded:: 0.4
    """
    info = getattr(runtime, "execution_info", None)
    found = getattr(info, "thread_id", None)
    if isinstance(found, str) and found:
        return found
    configured = _configured(runtime, "thread_id")
    return configured or None


def _configured(runtime: object, key: str) -> str | None:
    """
    A value of the run's ``configurable`` mapping (a tool's runtime carries its
    config; a node reads the config of the graph call it runs in).
    """
    config = getattr(runtime, "config", None)
    if config is None:
        from langgraph.config import get_config

        try:
            config = get_config()
        except RuntimeError:  # outside a runnable context
            return None
    value = config.get("configurable", {}).get(key)
    return str(value) if value is not None else None


def _resolve(value: Resolver, runtime: object) -> str | None:
    if callable(value):
        return value(runtime) if runtime is not None else None
    return value


def _current_turn(messages: list[AnyMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return index
    return None


@dataclass(frozen=True, slots=True)
class _Turn:
    """
    A session's turn under way: the human message it is for, its context (None when
    the engine failed, or for a turn resumed without a new request), and whether it
    goes on with the engine's turn.
    """

    mark: str
    context: Context | None
    continued: bool = False


def _answered(result: ToolMessage | Command[Any]) -> str | None:
    """
    What a tool's answer records: a tool message's text; nothing for an error, or for
    a command.
    """
    return _text(result) if isinstance(result, ToolMessage) and result.status != "error" else None


def _mark(human: BaseMessage) -> str:
    """
    What tells a human message from another: its id (LangGraph gives one), else the
    object's.
    """
    return human.id or str(id(human))


def _text(message: BaseMessage) -> str:
    return str(message.text)


def _with_context(system: SystemMessage | None, rendered: str) -> SystemMessage:
    block = f"{CONTEXT_HEADER}\n\n{rendered}"
    if system is None:
        return SystemMessage(block)
    if isinstance(system.content, str):
        return SystemMessage(f"{system.content}\n\n{block}" if system.content else block)
    return SystemMessage([*system.content, {"type": "text", "text": block}])


def _output_tools(response_format: object) -> frozenset[str]:
    """
    The names of the tools a ``response_format`` answers through (a ``ToolStrategy``'s
    schemas); none for another.
    """
    specs = getattr(response_format, "schema_specs", None) or ()
    return frozenset(str(spec.name) for spec in specs)


def _stored_turns(
    messages: Sequence[BaseMessage], outputs: Collection[str] = ()
) -> list[dict[str, Any]]:
    """
    A thread's messages as the engine's turns: each human message a request; the tool
    calls made for it, each with its result (not an error's); the last AI message's
    text its reply, or the arguments of its call to one of the ``outputs`` tools (a
    structured response, as a live turn records it), which is no tool call.
    """
    results = {
        m.tool_call_id: _text(m)
        for m in messages
        if isinstance(m, ToolMessage) and m.status != "error"
    }
    stored = StoredTurns(outputs)
    for message in messages:
        if isinstance(message, HumanMessage):
            stored.request(_text(message))
        elif isinstance(message, AIMessage):
            for call in message.tool_calls:
                call_id = call.get("id") or ""
                if call_id in results:
                    stored.call(call["name"], call["args"], call_id, results[call_id])
            stored.answer(_text(message))
    return stored.turns


def _exchange(messages: Sequence[BaseMessage]) -> tuple[str, str]:
    """
    An exchange's user and agent text: the human messages; the tool calls, each with
    its result, then the answer.
    """
    user = [_text(m) for m in messages if isinstance(m, HumanMessage)]
    results = {m.tool_call_id: _text(m) for m in messages if isinstance(m, ToolMessage)}
    agent: list[str] = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                result = results.get(call.get("id") or "", "")
                agent.append(call_line(call["name"], call["args"], result))
            if _text(message):
                agent.append(_text(message))
    return "\n".join(user), "\n".join(agent)

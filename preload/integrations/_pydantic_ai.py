"""
Pydantic AI (``pydantic-ai-slim`` 2.x): the engine as a capability.

Pydantic AI 2 took ``Agent(history_processors=...)`` away; a history processor is now
the ``before_model_request`` hook of a capability (``ProcessHistory`` is a thin wrapper
of it). :class:`PreloadCapability` is that hook and three more: it asks the engine for
each run's request once, gives every model request of the run the engine's context in
place of the earlier messages, lets wrapped tools call through the engine for the
run's session, and records the run's output as the reply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

try:
    from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs
    from pydantic_ai.messages import (
        ModelMessage,
        ModelRequest,
        ModelRequestPart,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
    from pydantic_ai.tools import AgentDepsT, RunContext
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "preload.integrations.pydantic_ai needs Pydantic AI: pip install 'preload[pydantic-ai]'"
    ) from exc

from ._common import (
    CONTEXT_HEADER,
    EngineLink,
    NeedsFunction,
    StateFunction,
    StoredTurns,
    as_text,
    render,
)

if TYPE_CHECKING:
    from pydantic_ai.capabilities import WrapToolExecuteHandler
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.tools import ToolDefinition

    from ..engine import PreloadEngine
    from ..window import Context

__all__ = ["PreloadCapability", "current_turn", "prompt_text"]

#: A session id or user, or a function of the run context that gives it.
Resolver = str | Callable[[RunContext[Any]], "str | None"] | None


@dataclass
class PreloadCapability(AbstractCapability[AgentDepsT]):
    """
    A Pydantic AI capability that puts the engine inside an agent:
    ``Agent(model, capabilities=[PreloadCapability(engine)])``.

    Each run is one request of a session. Before the run's first model request the
    capability calls :meth:`~preload.PreloadEngine.handle` with the run's prompt; every
    model request of the run then sends the agent's system prompt, one system message
    with the engine's context (the session's compressed history and the items gathered
    for the request, within the budget) and the current turn's messages whole (the
    prompt and each tool call with its result), instead of the earlier messages. The
    persistent message history (``result.all_messages()``) is left as it was. A run
    without a prompt of its own, resumed from messages that end within the turn the
    engine holds unanswered (after a failure, say), is no new request: its model
    requests get the messages as given, and its output is that turn's reply. Tools
    run with the run's session set, so tools wrapped by
    :func:`preload.integrations.tool` go through :meth:`~preload.PreloadEngine.call`;
    the run's output is recorded with :meth:`~preload.PreloadEngine.reply`.

    If the engine is closed or fails, the model gets the messages it would have got
    without the capability, and the first failure is logged once.

    Args:
        engine: The engine (open while the agent runs).
        session_id: The engine's session: a string, a function of the run context, or
            None for the run's ``conversation_id`` (which Pydantic AI carries across
            runs that pass the same message history, or takes from
            ``agent.run(conversation_id=...)``).
        user: Who asks: a string, a function of the run context (for instance
            ``lambda ctx: ctx.deps.user_id``), or None.
        needs: The keys a request needs, from its text.
        state: The request's state label, from its text.

    .. versionadded:: 0.4
    .. versionchanged:: 0.12
        The calls of tools that are not wrapped are recorded, and returned again
        under their id.
    .. versionchanged:: 0.13
        A session the engine has no turns of (an application restarted) is seeded
        from the run's message history before its request.
    """

    engine: PreloadEngine
    session_id: Resolver = None
    user: Resolver = None
    needs: NeedsFunction | None = None
    state: StateFunction | None = None
    _link: EngineLink | None = field(default=None, init=False, repr=False)
    _session: str | None = field(default=None, init=False, repr=False)
    _context: Context | None = field(default=None, init=False, repr=False)
    _asked: bool = field(default=False, init=False, repr=False)
    _continued: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._link = EngineLink(
            self.engine, adapter="pydantic-ai", needs=self.needs, state=self.state
        )

    @classmethod
    def get_serialization_name(cls) -> str | None:
        """
        None: the capability holds an engine, it is not spec-serializable.
        """
        return None

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractCapability[AgentDepsT]:
        """
        A copy for the run (its own session and context), sharing the engine link (and
        so its said-once log).
        """
        run = dataclasses.replace(self)
        run._link = self._link
        run._session = _resolve(self.session_id, ctx) or ctx.conversation_id or ctx.run_id
        return run

    async def before_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        request_context: ModelRequestContext,
    ) -> ModelRequestContext:
        """
        The engine's context in place of the earlier messages, for this request only.
        """
        assert self._link is not None
        messages = list(request_context.messages)
        start = current_turn(messages)
        if start is None or self._session is None:
            return request_context
        if not self._asked:
            self._asked = True
            if self._continued or self._resumed(ctx, messages[start]):
                self._continued = True  # resumed within the engine's turn: no new request
            else:
                user = _resolve(self.user, ctx)
                text = prompt_text(messages[start])
                if start and not self._link.knows(self._session):  # restarted
                    outputs = request_context.model_request_parameters.output_tools
                    stored = _stored_turns(messages[:start], {t.name for t in outputs})
                    self._link.seed(self._session, stored, user)
                self._context = await self._link.handle(self._session, text, user)
        if self._context is None:
            return request_context
        system = [
            part
            for message in messages[:start]
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, SystemPromptPart)
        ]
        parts: list[ModelRequestPart] = [*system]
        rendered = render(self._context)
        if rendered:
            parts.append(SystemPromptPart(f"{CONTEXT_HEADER}\n\n{rendered}"))
        head: list[ModelMessage] = [ModelRequest(parts=parts)] if parts else []
        request_context.messages = [*head, *messages[start:]]
        return request_context

    def _resumed(self, ctx: RunContext[AgentDepsT], request: ModelMessage) -> bool:
        """
        Whether the run has no prompt of its own and ``request`` (its turn's) is the
        turn the engine holds unanswered: a run resumed after a failure.
        """
        assert self._link is not None and self._session is not None
        text = prompt_text(request)
        return ctx.prompt is None and self._link.under_way(self._session, text)

    async def wrap_tool_execute(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        """
        The tool runs with the run's session and the call's id set, for tools that call
        through the engine; the call of a tool that does not is recorded with its
        result (``engine.record_call``). A call the session's turn already holds under
        its id (a run resumed after a failure) returns the recorded result, and the
        tool does not run again.
        """
        session = self._session
        if session is None or self._link is None:
            return await handler(args)
        if not self._asked and not self._continued:  # a run resumed at its tool calls
            start = current_turn(list(ctx.messages))
            self._continued = start is not None and self._resumed(ctx, ctx.messages[start])
        return await self._link.run_tool(
            session,
            call.tool_call_id,
            call.tool_name,
            call.args_as_dict(),
            lambda: handler(args),
            this_turn=self._context is not None or self._continued,  # the engine holds it
            again=lambda done: done,
            text=as_text,
        )

    async def after_run(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        result: AgentRunResult[Any],
    ) -> AgentRunResult[Any]:
        """
        The run's output joins the session's history as the reply.
        """
        answered = self._context is not None or self._continued
        if self._link is not None and self._session is not None and answered:
            self._link.reply(self._session, as_text(result.output))
        return result


def current_turn(messages: list[ModelMessage]) -> int | None:
    """
    Where the current turn starts: the last request that holds a user prompt (what
    follows it, tool calls and their results, belongs to the same turn); None when no
    request does.

    .. versionadded:: 0.4
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, ModelRequest) and any(
            isinstance(part, UserPromptPart) for part in message.parts
        ):
            return index
    return None


def prompt_text(message: ModelMessage) -> str:
    """
    The text of a request's user prompts (their text pieces, when they hold files).

    .. versionadded:: 0.4
    """
    texts: list[str] = []
    for part in message.parts:
        if isinstance(part, UserPromptPart):
            if isinstance(part.content, str):
                texts.append(part.content)
            else:
                texts.extend(piece for piece in part.content if isinstance(piece, str))
    return "\n".join(texts)


def _stored_turns(
    messages: Sequence[ModelMessage], outputs: Collection[str] = ()
) -> list[dict[str, Any]]:
    """
    A message history as the engine's turns: each request with a user prompt a turn's
    request; the tool calls made for it, each with what it returned; the last
    response's text its reply, or the arguments of its call to one of the agent's
    ``outputs`` tools (a structured output: what the run's output was, as a live run
    records it), which is no tool call.
    """
    results = {
        part.tool_call_id: as_text(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }
    stored = StoredTurns(outputs)
    for message in messages:
        if isinstance(message, ModelRequest):
            if any(isinstance(part, UserPromptPart) for part in message.parts):
                stored.request(prompt_text(message))
            continue
        for part in message.parts:
            if isinstance(part, ToolCallPart) and part.tool_call_id in results:
                try:
                    args = part.args_as_dict()
                except ValueError:  # arguments the model gave as broken JSON
                    continue
                stored.call(part.tool_name, args, part.tool_call_id, results[part.tool_call_id])
        stored.answer("".join(part.content for part in message.parts if isinstance(part, TextPart)))
    return stored.turns


def _resolve(value: Resolver, ctx: RunContext[Any]) -> str | None:
    return value(ctx) if callable(value) else value

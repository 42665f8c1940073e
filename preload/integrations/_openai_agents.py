"""
OpenAI Agents SDK: the engine behind a ``Session``.

The SDK's ``Runner`` reads a session's items before a run (``get_items``), stores the
run's input before the first model call and its output items as they come
(``add_items``), and runs ``RunConfig.call_model_input_filter`` just before each model
call. :class:`PreloadSession` uses all three: ``get_items`` gives the engine's
compressed history, ``add_items`` asks the engine for a new user message's context and
records the answer, and :meth:`PreloadSession.input_filter` gives the model the context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

try:
    from agents.run_config import ModelInputData
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "preload.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'preload[openai-agents]'"
    ) from exc

from ..calls import current_session
from ._common import (
    CONTEXT_HEADER,
    HISTORY_HEADER,
    EngineLink,
    NeedsFunction,
    StateFunction,
    as_text,
    render,
    stored_call,
)

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory import Session, SessionSettings
    from agents.run_config import CallModelData

    from ..engine import PreloadEngine
    from ..window import Context

__all__ = ["PreloadSession", "item_text"]


class PreloadSession:
    """
    An OpenAI Agents SDK session (the SDK's ``Session`` protocol) whose history the
    engine keeps, compressed within a budget in tokens::

        session = PreloadSession(engine, "user-42-chat")
        config = RunConfig(call_model_input_filter=session.input_filter)
        result = await Runner.run(agent, text, session=session, run_config=config)

    - ``get_items()`` (the SDK's call before a run) gives one system message with the
      session's history from :meth:`~preload.PreloadEngine.history`, then the items of
      a turn still under way, whole (a tool call is never split from its output).
    - ``add_items`` keeps the items; a user message is a request
      (:meth:`~preload.PreloadEngine.handle`), the assistant's messages its reply
      (:meth:`~preload.PreloadEngine.reply`). Tool calls made through tools wrapped by
      :func:`preload.integrations.tool` join the turn through the engine; the calls of
      other tools join it from the items (a function call, once its output is added:
      :meth:`~preload.PreloadEngine.record_call`).
    - :meth:`input_filter`, given as ``RunConfig.call_model_input_filter``, puts the
      engine's context for the request (the compressed history and the items gathered
      for it, within the budget) in place of the earlier items, and sets the session
      for wrapped tools. Without it the model gets the compressed history only.
    - ``get_items(limit=N)`` gives the last N items as they were added (the SDK reads
      such tails to check its own writes); ``pop_item`` removes the latest item and
      takes it back from the engine too (a turn's request takes its turn out of the
      engine's history, an assistant message is cut from the turn's reply);
      ``clear_session`` forgets the items and ends the engine's session.

    The items are kept in memory, and in ``store`` when one is given: another SDK
    session (``SQLiteSession``, a database-backed one) that keeps them across restarts.
    Its items are read on the first call; when the engine has no turns for the session
    (an application restarted with a stored history), they seed it
    (:meth:`~preload.PreloadEngine.restore`: each user message a turn, the function
    calls after it with their outputs its calls, the assistant's messages its reply),
    so that its compressed history and the forecast go on from them. Items added,
    popped or cleared are written to the store as well.

    If the engine is closed or fails, the session gives the items as a plain in-memory
    session would and the filter leaves the input as it is; an engine's first failure
    is logged once.

    Args:
        engine: The engine (open while the agent runs).
        session_id: The engine's session and the SDK's ``session_id``.
        user: Who the session is for.
        available_tokens: The tokens of history ``get_items`` gives (the engine's
            ``user_history`` maximum when None).
        needs: The keys a request needs, from its text.
        state: The request's state label, from its text.
        session_settings: The SDK's session settings (its ``limit``, when set, makes the
            SDK ask for raw tails).
        store: An SDK session that keeps the items (None: memory only).

    .. versionadded:: 0.4
    .. versionchanged:: 0.6
        ``store``: a stored history seeds a session the engine has not seen.
    .. versionchanged:: 0.12
        The calls of tools that are not wrapped are recorded, from the items.
    """

    def __init__(
        self,
        engine: PreloadEngine,
        session_id: str,
        *,
        user: str | None = None,
        available_tokens: int | None = None,
        needs: NeedsFunction | None = None,
        state: StateFunction | None = None,
        session_settings: SessionSettings | None = None,
        store: Session | None = None,
    ) -> None:
        self.engine = engine
        self.session_id = session_id
        self.user = user
        self.available_tokens = available_tokens
        self.session_settings = session_settings
        self.store = store
        self.items: list[TResponseInputItem] = []
        self._loaded = store is None
        self._link = EngineLink(engine, adapter="openai-agents", needs=needs, state=state)
        self._turns: list[int] = []  # where each turn starts in self.items
        self._answered = False
        self._context: Context | None = None
        self._made: dict[str, TResponseInputItem] = {}  # the turn's calls awaiting output

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """
        The history compressed within the budget, then a turn still under way; with a
        ``limit``, the last ``limit`` items as added.
        """
        await self._load()
        if limit is not None:
            return list(self.items[-limit:]) if limit > 0 else []
        history = self._link.history(self.session_id, self.available_tokens)
        if history is None:
            return list(self.items)
        head: list[TResponseInputItem] = []
        if history:
            head.append(_system(f"{HISTORY_HEADER}\n{history}"))
        under_way = (
            self.items[self._turn :] if self._turn is not None and not self._answered else []
        )
        return [*head, *under_way]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """
        Keep the items: a user message starts a turn (the engine's request), a function
        call's output records the call (a tool the engine runs is left to it), the
        assistant's messages are its reply.
        """
        await self._load()
        if self.store is not None:
            await self.store.add_items(items)
        for item in items:
            self.items.append(item)
            role, kind = _get(item, "role"), _get(item, "type")
            if _is_request(item):
                self._turns.append(len(self.items) - 1)
                self._made.clear()
                self._answered = False
                self._context = await self._link.handle(self.session_id, item_text(item), self.user)
            elif role == "assistant" and kind in (None, "message") and self._turn is not None:
                self._answered = True
                if self._context is not None:
                    self._link.reply(self.session_id, self._reply())
            elif kind == "function_call_output" and self._context is not None:
                for done in _calls([*self._made.values(), item]):
                    self._made.pop(done["call_id"], None)
                    self._link.record_call(
                        self.session_id, done["name"], done["args"], done["result"], done["call_id"]
                    )
            elif kind == "function_call" and isinstance(_get(item, "call_id"), str):
                self._made[_get(item, "call_id")] = item

    def _reply(self, start: int | None = None, end: int | None = None) -> str:
        """
        The assistant's messages of the turn starting at ``start`` (the latest when
        None), up to ``end``.
        """
        start = self._turn if start is None else start
        assert start is not None
        texts = (
            item_text(item)
            for item in self.items[start + 1 : end]
            if _get(item, "role") == "assistant"
        )
        return "\n".join(text for text in texts if text)

    async def pop_item(self) -> TResponseInputItem | None:
        """
        Remove and return the latest item, and take it back from the engine: the
        request of a turn takes the turn out of the engine's history, an assistant
        message is cut from the turn's reply.
        """
        await self._load()
        if not self.items:
            return None
        if self.store is not None:
            await self.store.pop_item()
        item = self.items.pop()
        turn = self._turn
        if turn is not None and turn >= len(self.items):  # the turn's request
            self._turns.pop()
            self._context = None
            self._answered = self._turn is not None and bool(self._reply())
            self._link.take_back(self.session_id, reply=None, drop=True)
        elif turn is not None and _get(item, "role") == "assistant":
            reply = self._reply()
            self._answered = bool(reply)
            self._link.take_back(self.session_id, reply=reply or None, drop=False)
        return item

    async def clear_session(self) -> None:
        """
        Forget the items (in the store too), and end the engine's session.
        """
        self._loaded = True
        if self.store is not None:
            await self.store.clear_session()
        self.items.clear()
        self._turns.clear()
        self._made.clear()
        self._context, self._answered = None, False
        self._link.end_session(self.session_id)

    async def _load(self) -> None:
        """
        Once: the store's items, and the engine's session seeded from them when the
        engine has no turns for it.
        """
        if self._loaded or self.store is None:
            return
        self._loaded = True
        self.items = list(await self.store.get_items())
        self._turns = [i for i, item in enumerate(self.items) if _is_request(item)]
        self._answered = self._turn is not None and bool(self._reply())
        ends = [*self._turns[1:], len(self.items)][: len(self._turns)]
        turns = [
            {
                "text": item_text(self.items[start]),
                "tool_calls": _calls(self.items[start + 1 : end]),
                "system": self._reply(start, end) or None,
            }
            for start, end in zip(self._turns, ends, strict=True)
        ]
        self._link.seed(self.session_id, turns, self.user)

    @property
    def _turn(self) -> int | None:
        """
        Where the latest turn starts in the items.
        """
        return self._turns[-1] if self._turns else None

    def input_filter(self, data: CallModelData[Any]) -> ModelInputData:
        """
        A ``RunConfig.call_model_input_filter``: the engine's context in place of the
        items before the current user message, which stays with what follows it.
        """
        current_session.set(self.session_id)  # for wrapped tools, in the run's task
        model_data = data.model_data
        context = self._context
        start = _last_user_message(model_data.input)
        if context is None or start is None:
            return model_data
        rendered = render(context)
        head = [_system(f"{CONTEXT_HEADER}\n\n{rendered}")] if rendered else []
        return ModelInputData(
            input=[*head, *model_data.input[start:]], instructions=model_data.instructions
        )


def item_text(item: TResponseInputItem) -> str:
    """
    The text of a message item: its content when a string, else its text parts.

    .. versionadded:: 0.4
    """
    content = _get(item, "content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def _calls(items: Sequence[TResponseInputItem]) -> list[dict[str, Any]]:
    """
    The function calls of ``items`` that have their output among them, as a turn's
    ``tool_calls`` (not read-only: the engine does not run them), in the order made.
    """
    outputs = {
        _get(item, "call_id"): _get(item, "output")
        for item in items
        if _get(item, "type") == "function_call_output"
    }
    calls: list[dict[str, Any]] = []
    for item in items:
        call_id = _get(item, "call_id")
        if _get(item, "type") != "function_call" or call_id not in outputs:
            continue
        try:
            args = json.loads(_get(item, "arguments") or "{}")
        except (ValueError, RecursionError):
            continue
        if isinstance(args, dict) and isinstance(_get(item, "name"), str):
            calls.append(stored_call(_get(item, "name"), args, call_id, as_text(outputs[call_id])))
    return calls


def _get(item: TResponseInputItem, key: str) -> Any:
    return cast(Mapping[str, Any], item).get(key)


def _system(text: str) -> TResponseInputItem:
    return cast("TResponseInputItem", {"role": "system", "content": text})


def _is_request(item: TResponseInputItem) -> bool:
    """
    Whether the item is a user message: a turn's request.
    """
    return _get(item, "role") == "user" and _get(item, "type") in (None, "message")


def _last_user_message(items: list[TResponseInputItem]) -> int | None:
    for index in range(len(items) - 1, -1, -1):
        if _is_request(items[index]):
            return index
    return None

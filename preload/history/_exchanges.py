"""
A turn as a history records it: the user's request, and the agent's side of the
exchange, each tool call with its result (``[name({"city": "San Jose"}) -> result]``)
and then the reply. A result is kept to its first ``RESULT_CHARS`` characters, so that
an exchange grows with the turn's calls, not with what each returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..calls import as_text
from ._words import cut_at_space

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["RESULT_CHARS", "agent_side", "call_line", "exchange_chars"]

#: The characters of a tool call's result a history keeps (cut at a word, marked "…"):
#: about 250 tokens, a sixth of the default history's budget, and about 2 ms of work to
#: record (a 2 KB JSON result whole took 3.4 ms, its text alone 0.2).
RESULT_CHARS = 1_000

#: The characters a call's line adds besides its name, arguments and result.
_FRAME = len("[() -> ]\n")


def call_line(name: str, args: object, result: str) -> str:
    """
    A tool call with its result, as the agent's side of an exchange records it:
    ``[name(arguments as JSON) -> result]``, the result cut to ``RESULT_CHARS``.

    .. versionadded:: 0.12
    """
    return f"[{name}({as_text(args)}) -> {cut_at_space(result, RESULT_CHARS)}]"


def agent_side(calls: Iterable[Mapping[str, Any]], reply: str) -> str:
    """
    The agent's side of a turn's exchange: its tool calls (mappings with ``name``,
    ``args`` and ``result``, as a session's turns hold them), one line each, then the
    reply.

    .. versionadded:: 0.12
    """
    lines = [
        call_line(
            str(call.get("name") or ""), call.get("args") or {}, str(call.get("result") or "")
        )
        for call in calls
    ]
    if reply:
        lines.append(reply)
    return "\n".join(lines)


def exchange_chars(turn: Mapping[str, Any], at_most: int) -> int:
    """
    The characters of a turn's exchange (its request, calls and reply) as
    :func:`agent_side` records it, counted up to just above ``at_most``: the work is
    bounded by ``at_most`` and the number of calls looked at, whatever the texts' size.

    .. versionadded:: 0.12
    """
    size = len(turn.get("text") or "") + len(turn.get("system") or "")
    for call in turn.get("tool_calls") or ():
        if size > at_most:
            break
        result = str(call.get("result") or "")
        size += len(str(call.get("name") or "")) + min(len(result), RESULT_CHARS + 2) + _FRAME
        size += len(as_text(call.get("args") or {}))  # bounded: engine.call checks its size
    return size

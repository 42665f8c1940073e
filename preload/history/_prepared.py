"""
An exchange made ready to record: everything that depends only on its two texts.

:func:`prepare` does the work that grows with the text (the levels and their tokens,
fact extraction, each fact's key and tokens, where each key occurs in the exchange) and
reads nothing of a conversation, so it may run in a worker thread while the event loop
keeps using the conversation; :meth:`CompressedConversation.add_prepared` then enters
the facts into the ledger, at a cost that grows with the facts, not with the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from ._answers import YES_NO, answer_of, statements, topic
from ._facts import extract_facts
from ._matching import KeyParts, indexed
from ._parts import Levels
from ._words import WORD, compact, cut_at_space, norm

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._tokens import TokenCounter

__all__ = [
    "MAX_FACTS_PER_UTTERANCE",
    "MAX_UTTERANCE_CHARS",
    "KeyFacts",
    "PreparedExchange",
    "Stated",
    "prepare",
]

_CORRECTION = re.compile(
    r"\b(?:instead|change (?:it|that) to|make it|not\s+\w+\s*,?\s*but|I meant|correction)\b",
    re.IGNORECASE,
)

#: The most facts one utterance contributes (of each of: the user's facts, the user's
#: statements, the agent's facts), the first ones said. Real utterances state a few;
#: the bound keeps recording a huge message, which happens on the event loop once
#: prepared, from growing with its size.
MAX_FACTS_PER_UTTERANCE = 100

#: The longest utterance (characters) the history keeps; a longer one is cut at the
#: last space before it and marked " …". The history shows a few thousand tokens in
#: all, and recording costs time in proportion to the text.
MAX_UTTERANCE_CHARS = 20_000

#: A fact an exchange states: who stated it, its text, its kind and its key.
Stated = tuple[str, str, str, str]

#: What recording a new key needs: its tokens (with its separator), whether the full,
#: the compact and the user level hold it, and its parts for the ledger's index.
KeyFacts = tuple[int, tuple[bool, bool, bool], KeyParts]


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedExchange:
    """
    One exchange of a conversation, prepared for recording by
    :meth:`CompressedConversation.prepare` and recorded by
    :meth:`CompressedConversation.add_prepared`.

    It holds what depends only on the two texts: the exchange at its levels with their
    tokens, the facts each side states with their keys and tokens, and where each key
    occurs in the exchange. Preparing reads nothing of the conversation, so it may run
    in a worker thread; the fields other than ``user`` and ``agent`` are internal (they
    take no part in equality or ``repr``) and never change once built.

    Attributes:
        user: The user's request.
        agent: The agent's reply ("" if none yet).

    .. versionadded:: 0.2
    """

    user: str
    agent: str
    levels: Levels = field(compare=False, repr=False)
    #: The facts stated, the user's first (their facts, their short answer, their
    #: statements), then the agent's; a bare yes or no goes at ``reply_at``, tied to
    #: the question of the exchange before, which only recording knows.
    stated: tuple[Stated, ...] = field(compare=False, repr=False)
    reply: str | None = field(compare=False, repr=False)
    reply_at: int = field(compare=False, repr=False)
    #: Each stated key's tokens (with its separator), whether the full, the compact
    #: and the user level hold it, and its parts for the ledger's index.
    keys: Mapping[str, KeyFacts] = field(compare=False, repr=False)
    said_in: tuple[int, int] = field(compare=False, repr=False)  # words of user, agent
    accepts: bool = field(compare=False, repr=False)  # a yes to the agent's offer
    correcting: bool = field(compare=False, repr=False)  # "actually, make it 8 pm"


def prepare(user: str, agent: str, counter: TokenCounter) -> PreparedExchange:
    """
    The exchange of ``user``'s request and ``agent``'s reply, ready to record; reads
    nothing but its arguments (``counter`` must be safe to use from the calling thread).
    """
    user, agent = cut_at_space(user, MAX_UTTERANCE_CHARS), cut_at_space(agent, MAX_UTTERANCE_CHARS)
    levels = _levels(user, agent, counter)
    reply, answer = answer_of(user)
    stated: list[Stated] = []
    cap = MAX_FACTS_PER_UTTERANCE
    _state(stated, "user", extract_facts(user)[:cap])
    reply_at = len(stated)
    _state(stated, "user", answer)
    _state(stated, "user", [(v, "sentence") for v in statements(user)[:cap]])
    _state(stated, "agent", extract_facts(agent)[:cap])
    keys: dict[str, KeyFacts] = {}
    for _, value, _, key in stated:
        if key not in keys:
            keys[key] = (counter.count(value) + 1, levels.holds(key), KeyParts.of(key))
    return PreparedExchange(
        user=user,
        agent=agent,
        levels=levels,
        stated=tuple(stated),
        reply=reply,
        reply_at=reply_at,
        keys=MappingProxyType(keys),
        said_in=(len(WORD.findall(user)), len(WORD.findall(agent))),
        accepts=bool(YES_NO.match(user)) and not user.lower().lstrip(" \t\"'").startswith("n"),
        correcting=bool(_CORRECTION.search(user)),
    )


def _state(stated: list[Stated], role: str, found: list[tuple[str, str]]) -> None:
    """
    Append the facts ``found`` that have a key, as stated by ``role``.
    """
    for value, kind in found:
        key = norm(value)
        if key:
            stated.append((role, value, kind, key))


def _levels(user: str, agent: str, counter: TokenCounter) -> Levels:
    """
    The exchange at its levels, their tokens and their normalized forms.
    """
    full = f"User: {user}" + (f"\nAssistant: {agent}" if agent else "")
    short = f"U: {compact(user)}" + (f" | A: {compact(agent)}" if agent else "")
    said = f"User: {user}"
    norm_full, norm_compact, norm_user = norm(full), norm(short), norm(said)
    padded_full, padded_compact = f" {norm_full} ", f" {norm_compact} "
    return Levels(
        full=full,
        compact=short,
        user=said,
        full_tokens=counter.count(full),
        compact_tokens=counter.count(short),
        user_tokens=counter.count(said),
        norm_full=padded_full,
        norm_compact=padded_compact,
        full_index=indexed(padded_full),
        compact_index=indexed(padded_compact),
        full_words=norm_full.count(" ") + 1,
        compact_words=norm_compact.count(" ") + 1,
        user_chars=len(norm_user) + 2,
        user_words=norm_user.count(" ") + 1 if norm_user else 0,
        asks="?" in full.rpartition("\nAssistant: ")[2],
        topic=topic(full),
    )

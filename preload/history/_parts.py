"""
The parts a history is shown in: each exchange at its levels, and the ledger of the
facts stated so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._words import compact, norm

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._tokens import TokenCounter
    from ._facts import Fact

__all__ = ["Exchange", "Ledger"]


@dataclass(slots=True)
class Exchange:
    """
    One exchange at its levels: 0 left out, 1 condensed (``compact``), 2 the user's
    words verbatim (``user``), 3 the whole exchange verbatim (``full``); with the keys
    of the facts each level holds.
    """

    index: int
    full: str
    compact: str
    full_tokens: int
    compact_tokens: int
    norm_full: str
    norm_compact: str
    user: str = ""  # the user's words verbatim, without the reply
    user_tokens: int = 0
    norm_user: str = ""
    keys_full: set[str] = field(default_factory=set)  # fact keys each level holds
    keys_compact: set[str] = field(default_factory=set)
    keys_user: set[str] = field(default_factory=set)

    @classmethod
    def of(
        cls, index: int, user: str, agent: str, counter: TokenCounter, keys: Iterable[str]
    ) -> Exchange:
        """
        The exchange ``index`` of ``user``'s request and ``agent``'s reply, holding
        those of the fact ``keys`` its levels hold.
        """
        full = f"User: {user}" + (f"\nAssistant: {agent}" if agent else "")
        short = f"U: {compact(user)}" + (f" | A: {compact(agent)}" if agent else "")
        norm_full, norm_compact = f" {norm(full)} ", f" {norm(short)} "
        said = f"User: {user}"
        norm_user = f" {norm(said)} "
        known = list(keys)
        return cls(
            index=index,
            full=full,
            compact=short,
            full_tokens=counter.count(full),
            compact_tokens=counter.count(short),
            norm_full=norm_full,
            norm_compact=norm_compact,
            keys_full={k for k in known if f" {k} " in norm_full},
            keys_compact={k for k in known if f" {k} " in norm_compact},
            user=said,
            user_tokens=counter.count(said),
            norm_user=norm_user,
            keys_user={k for k in known if f" {k} " in norm_user},
        )

    def keys(self, level: int) -> set[str]:
        """
        The keys of the facts ``level`` holds.
        """
        return (self.keys_compact, self.keys_user, self.keys_full)[level - 1]

    def cost(self, level: int) -> int:
        """
        Tokens of ``level`` with its line break.
        """
        return (0, self.compact_tokens, self.user_tokens, self.full_tokens)[level] + (level > 0)

    def text(self, level: int) -> str:
        """
        The text of ``level``.
        """
        return ("", self.compact, self.user, self.full)[level]


@dataclass(slots=True)
class Ledger:
    """
    The facts stated so far, by key (their normalized text).
    """

    facts: dict[str, Fact] = field(default_factory=dict)  # by normalized text
    tokens: dict[str, int] = field(default_factory=dict)  # tokens of each fact
    covers: dict[str, set[str]] = field(default_factory=dict)  # keys inside each key

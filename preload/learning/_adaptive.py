"""
The adaptive budget: how many tokens each item category may take, learned from what
answers used.

Every category keeps a share of its range, from its ``min`` (share 0) to its ``max``
(share 1; the whole budget when it has none): both are the user's hard limits. After
each judged window (:meth:`AdaptiveBudget.observe`, in the engine's learner thread)
the share of each category that took part moves by ``learning_rate`` times
``signal - break_even``: the signal is 1 when the category's marginal tokens brought
used content (its item of least value per token was used, or a used item found no
room in it), else 0, and the break-even is the use rate a newcomer must reach to be
swapped in (``swap.swap_threshold``). Shares settle where the marginal item is used
as often as it costs. A category keeps its configured maximum until it has
``min_evidence`` windows. The request path only reads :meth:`AdaptiveBudget.caps`, a
mapping replaced whole after each update.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import BudgetConfig

__all__ = ["AdaptiveBudget", "JudgedItem"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgedItem:
    """
    One candidate of a judged window, as the adaptive budget sees it: its category,
    its tokens and value in the window (``included``), or whether it was left out for
    lack of room (``no_room``), and whether the answer used it.

    .. versionadded:: 0.6
    """

    category: str
    tokens: int
    value: float
    included: bool
    no_room: bool
    used: bool


class AdaptiveBudget:
    """
    Category caps learned from feedback, within the configured min and max.

    Args:
        config: The budget configuration (categories, ``[budget.adaptive]``).
        break_even: The marginal use rate at which a category neither grows nor shrinks.
        categories: The categories it adapts (those feedback judges).

    .. versionadded:: 0.6
    """

    def __init__(
        self, config: BudgetConfig, *, break_even: float, categories: Sequence[str]
    ) -> None:
        self.config = config
        self.break_even = break_even
        self.categories = [c for c in categories if c in config.categories]
        self.shares: dict[str, float] = dict.fromkeys(self.categories, 1.0)
        self.evidence: Counter[str] = Counter()
        self.marginal_used: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self._caps: dict[str, int] = {}

    def reset(self) -> None:
        """
        Forget what was learned: every category back to its configured maximum.
        """
        self.shares = dict.fromkeys(self.categories, 1.0)
        self.evidence.clear()
        self.marginal_used.clear()
        self.missed.clear()
        self._caps = {}

    def caps(self) -> Mapping[str, int]:
        """
        The learned cap of each category that has enough evidence (the others keep
        their configured maximum): what the request path reads.
        """
        return self._caps

    def observe(self, window: Sequence[JudgedItem]) -> None:
        """
        Learn from one judged window.
        """
        rate = self.config.adaptive.learning_rate
        for category in self.categories:
            mine = [item for item in window if item.category == category]
            inside = [item for item in mine if item.included and item.tokens > 0]
            missed = any(item.no_room and item.used for item in mine)
            if not inside and not missed:
                continue  # the category took no part: no evidence either way
            marginal = min(inside, key=lambda it: it.value / it.tokens, default=None)
            signal = 1.0 if missed or (marginal is not None and marginal.used) else 0.0
            share = self.shares[category] + rate * (signal - self.break_even)
            self.shares[category] = min(1.0, max(0.0, share))
            self.evidence[category] += 1
            self.marginal_used[category] += signal > 0
            self.missed[category] += missed
        self._caps = {
            c: self._cap(c)
            for c in self.categories
            if self.evidence[c] >= self.config.adaptive.min_evidence
        }

    def _cap(self, category: str) -> int:
        cat = self.config.categories[category]
        top = cat.max or self.config.total_tokens
        return cat.min + round(self.shares[category] * (top - cat.min))

    def explain(self) -> str:
        """
        Why each category may take what it may: its cap, its range, its share and the
        evidence it was learned from.
        """
        adaptive = self.config.adaptive
        lines = [
            (
                f"adaptive budget (break-even use rate {self.break_even:.0%}, learning rate "
                f"{adaptive.learning_rate}, after {adaptive.min_evidence} windows):"
            )
        ]
        for category in self.categories:
            cat = self.config.categories[category]
            top = cat.max or self.config.total_tokens
            seen = self.evidence[category]
            if category not in self._caps:
                lines.append(
                    f"  {category}: up to {top} tokens, its configured max ({seen} of "
                    f"{self.config.adaptive.min_evidence} windows of evidence so far)"
                )
                continue
            rate = self.marginal_used[category] / seen
            side = "above" if rate > self.break_even else "at or below"
            lines.append(
                f"  {category}: up to {self._caps[category]} tokens (min {cat.min}, max {top}; "
                f"share {self.shares[category]:.2f}) after {seen} windows: its marginal tokens "
                f"brought used content in {rate:.0%} of them, {side} the break-even; "
                f"{self.missed[category]} times a used item found no room"
            )
        return "\n".join(lines)

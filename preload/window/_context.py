"""
What the swap controller gives a request: its :class:`Context`, the items the window
holds (:class:`ContextItem`) and a :class:`Decision` for every candidate, taken or
left, which :meth:`Context.explain` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TENANT_SECTION", "Context", "ContextItem", "Decision"]

#: The header of the tenant-wide items (``swap.tenant_tokens``).
TENANT_SECTION = "tenant_knowledge"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextItem:
    """
    One piece of an assembled context.

    .. versionadded:: 0.1
    """

    key: str
    category: str
    level: str
    text: str
    tokens: int
    value: float
    reason: str
    shared: bool = False

    @property
    def section(self) -> str:
        """
        The header it goes under: the tenant-wide layer's, else its category's.
        """
        return TENANT_SECTION if self.shared else self.category


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """
    Why an item is in the window or out of it.

    .. versionadded:: 0.1
    """

    key: str
    included: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """
    The context assembled for one request, within ``budget`` tokens.

    ``tokens`` counts the items plus the headers and separators :meth:`render` adds;
    ``reserved`` is what the response keeps: the response buffer's reservation plus
    whatever the context left unused; ``tokens + reserved <= budget``. ``missing``
    are needs no source had, or whose load failed or ran out of time. ``experiment``
    and ``arm`` name the A/B test arm that served the session, if any. ``choice``
    explains the Pareto choice of the window, when ``[budget.objectives]`` asked for
    one: the chosen point and the nearest alternative. ``ttl_skipped`` and
    ``deferred`` explain the preloads for this request that the last forecast left
    out for their time to live, or started just in time (``[preloader]``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.6
       ``experiment``, ``arm``, ``choice`` and ``deferred``.
    """

    session_id: str
    items: tuple[ContextItem, ...]
    decisions: tuple[Decision, ...]
    budget: int
    reserved: int
    tokens: int
    waited_s: float = 0.0
    hits: int = 0
    misses: int = 0
    partial_hits: int = 0
    missing: tuple[str, ...] = ()
    speculated: tuple[str, ...] = ()
    ttl_skipped: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    prefix_reused_tokens: int = 0
    input_cost: float = 0.0
    naive_input_cost: float = 0.0
    experiment: str | None = None
    arm: str | None = None
    choice: tuple[str, ...] = ()

    def render(self) -> str:
        """
        The context as prompt text in the window's layout: each run of items of one
        section (the tenant-wide layer, or a category) under its header. A header
        depends only on what comes before it, so it never breaks a cached prefix.
        """
        parts: list[str] = []
        for section, texts in _runs(self.items):
            parts.append(f"## {section}\n" + "\n\n".join(texts))
        return "\n\n".join(parts)

    def explain(self) -> str:
        """
        One line a decision: what is in, at which level and why; what is out and why.
        """
        lines = [
            (
                f"context for {self.session_id}: {self.tokens} of {self.budget} tokens; "
                f"the response keeps {self.reserved} (its reservation and what the context "
                f"left unused); waited {self.waited_s * 1000:.0f} ms"
            ),
            (
                f"  prompt cache: {self.prefix_reused_tokens} tokens reused; input costs "
                f"{self.input_cost:.6f} (laid out without prefix awareness: "
                f"{self.naive_input_cost:.6f})"
            ),
        ]
        if self.arm is not None:
            lines.append(f"  experiment {self.experiment}: served by arm {self.arm}")
        by_key = {item.key: item for item in self.items}
        for decision in self.decisions:
            item = by_key.get(decision.key)
            if decision.included and item is not None:
                lines.append(
                    f"  in   {item.category:<16} {item.key} [{item.level}, {item.tokens} tok]: "
                    f"{decision.reason}"
                )
            else:
                lines.append(f"  out  {decision.key}: {decision.reason}")
        lines.extend(
            f"  miss {key}: needed, but no source has it or its load failed" for key in self.missing
        )
        lines.extend(f"  call {line}" for line in self.speculated)
        lines.extend(f"  {line}" for line in self.choice)
        lines.extend(f"  skip {line}" for line in self.ttl_skipped)
        lines.extend(f"  defer {line}" for line in self.deferred)
        return "\n".join(lines)


def _runs(items: Sequence[ContextItem]) -> list[tuple[str, list[str]]]:
    """
    The items' texts in runs of one section each, in order.
    """
    runs: list[tuple[str, list[str]]] = []
    for item in items:
        if not item.text:
            continue
        if runs and runs[-1][0] == item.section:
            runs[-1][1].append(item.text)
        else:
            runs.append((item.section, [item.text]))
    return runs

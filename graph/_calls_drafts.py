"""
A forecast call before it is calibrated: :func:`assemble` chooses each argument's value
among its candidates (the most precise source that has one), keeps the arguments that
source usually means are given, and gives the product of the name's probability and
the sources' precisions with the calibration cell the call falls in; and its variants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._calls_evidence import FROM_REQUEST, source_kind

if TYPE_CHECKING:
    from ._calls_counts import CallCounts
    from ._calls_evidence import Cand, Evidence
    from ._calls_turns import ExactCall
    from ._calls_view import SessionView

__all__ = ["BIN_FLOOR", "Draft", "assemble"]


@dataclass(slots=True)
class Draft:
    """
    A forecast call: its name, arguments and their evidence, its uncalibrated
    probability ``p0`` and its calibration ``cell``.
    """

    name: str
    args: dict[str, str]
    evidence: dict[str, str]
    p0: float
    cell: tuple[str, ...]

    def exact(self) -> ExactCall:
        """
        The call as :func:`~graph._calls_turns.exact_calls` gives it, to compare.
        """
        return self.name, frozenset(self.args.items())


def assemble(
    name: str,
    q: float,
    cands: dict[str, list[Cand]],
    view: SessionView,
    counts: CallCounts,
    trust: Evidence,
    moment: str,
    alternatives: int,
) -> list[Draft]:
    """
    Choose each argument's value (the most precise source that has one), keep the
    arguments that source usually means are given, and describe the call; then up
    to ``alternatives`` variants: one argument's runner-up value, or an optional
    argument left out or put in.
    """
    args: dict[str, str] = {}
    evidence: dict[str, str] = {}
    p0 = q
    complete = True
    fresh = False
    # (factor on p0, argument, value or None to leave it out, evidence, kind: "1d"
    # an optional argument dropped, "1a" one added, "1v" a runner-up value)
    variants: list[tuple[float, str, str | None, str, str]] = []
    for arg, options in cands.items():
        key = (name, arg)
        presence = counts.key_info(key)[0]
        ranked = sorted(
            ((*trust.source(key, option[0], presence), option) for option in options),
            key=lambda it: -it[0],
        )
        if not ranked:
            complete = complete and presence < 0.5
            continue
        right, given, (kind, value, how) = ranked[0]
        runner = next((r for r in ranked[1:] if r[2][1] != value), None)
        if given >= 0.5:
            args[arg] = value
            evidence[arg] = how
            p0 *= right
            fresh = fresh or source_kind(kind) in FROM_REQUEST
            if runner is not None:
                variants.append((runner[0] / right, arg, runner[2][1], runner[2][2], "1v"))
            if presence < 0.5:
                variants.append(((1.0 - given) / (given * right), arg, None, "", "1d"))
        else:
            p0 *= 1.0 - given
            if kind != "default":
                variants.append((given * right / (1.0 - given), arg, value, how, "1a"))
        if presence >= 0.5 and (kind == "default" and right < 0.5 or given < 0.5):
            complete = False
    last = view.last_args.get(name)
    # read-only calls apart: after the reply, a transactional call ("Shall I book
    # it?") is far likelier to come than a search, and pooled they looked alike
    head = (
        moment,
        str(int(complete)),
        str(int(fresh)),
        "ro" if counts.read_only(name) else "tx",
    )
    drafts = [_draft(name, args, evidence, p0, last, head, "0")]
    variants.sort(key=lambda it: -it[0])
    for factor, arg, alt, alt_how, rank in variants[:alternatives]:
        alt_args, alt_evidence = dict(args), dict(evidence)
        if alt is None:
            del alt_args[arg], alt_evidence[arg]
        else:
            alt_args[arg], alt_evidence[arg] = alt, alt_how
        drafts.append(_draft(name, alt_args, alt_evidence, p0 * factor, last, head, rank))
    return drafts


def _draft(
    name: str,
    args: dict[str, str],
    evidence: dict[str, str],
    p0: float,
    last: dict[str, str] | None,
    head: tuple[str, ...],
    rank: str,
) -> Draft:
    status = "new" if last is None else "same" if last == args else "changed"
    cell = (head[0], _bin(p0), status, *head[1:], rank)
    return Draft(name, args, evidence, min(p0, 1.0), cell)


#: The lowest band of uncalibrated probability: log2 of p, floored (p of 1/4096 and less).
BIN_FLOOR = -12


def _bin(p: float) -> str:
    return str(max(BIN_FLOOR, math.floor(math.log2(max(p, 1e-9)))))

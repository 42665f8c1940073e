"""
An experiment's report: for each arm and metric the mean over sessions with its 95 %
confidence interval, and each arm's difference from the control arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.markup import escape
from rich.table import Table

from .._errors import ConfigError
from ._outcomes import METRICS, SessionOutcome
from ._stats import Difference, Estimate, mean_ci, welch

__all__ = ["ExperimentSummary", "experiment_table", "summarize"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentSummary:
    """
    One experiment's figures: each arm's sessions and :class:`Estimate` per metric
    (``arms``), and each other arm's :class:`Difference` from ``control``
    (``differences``). Arms are in the order their first session came.

    .. versionadded:: 0.6
    """

    experiment: str
    control: str
    confidence: float
    sessions: dict[str, int]
    arms: dict[str, dict[str, Estimate]]
    differences: dict[str, dict[str, Difference]]

    def to_json(self) -> dict[str, Any]:
        """
        The summary as JSON (``preload report --json``).
        """
        return {
            "experiment": self.experiment,
            "control": self.control,
            "confidence": self.confidence,
            "arms": {
                arm: {
                    "sessions": self.sessions[arm],
                    "metrics": {m: asdict(e) for m, e in metrics.items()},
                }
                for arm, metrics in self.arms.items()
            },
            "differences": {
                arm: {m: asdict(d) for m, d in metrics.items()}
                for arm, metrics in self.differences.items()
            },
        }


def summarize(
    outcomes: Sequence[SessionOutcome], *, control: str | None = None, confidence: float = 0.95
) -> list[ExperimentSummary]:
    """
    Each experiment's summary, in the order the experiments first appear. The
    control arm is ``control``, else the arm named ``control``, else the first arm.

    Raises:
        ConfigError: ``control`` is not an arm of every experiment, or an experiment
            has a single arm.

    .. versionadded:: 0.6
    """
    grouped: dict[str, dict[str, list[SessionOutcome]]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.experiment, {}).setdefault(outcome.arm, []).append(outcome)
    return [_summary(name, arms, control, confidence) for name, arms in grouped.items()]


def _summary(
    name: str,
    arms: dict[str, list[SessionOutcome]],
    control: str | None,
    confidence: float,
) -> ExperimentSummary:
    if control is not None and control not in arms:
        raise ConfigError(
            "--control", f"experiment {name!r} has no arm {control!r}; its arms: {list(arms)}"
        )
    if len(arms) < 2:
        raise ConfigError(
            "experiments.arms", f"experiment {name!r} has outcomes of one arm only: {list(arms)}"
        )
    base = control or ("control" if "control" in arms else next(iter(arms)))
    values = {
        arm: {m: [v for o in sessions if (v := o.metric(m)) is not None] for m in METRICS}
        for arm, sessions in arms.items()
    }
    return ExperimentSummary(
        experiment=name,
        control=base,
        confidence=confidence,
        sessions={arm: len(sessions) for arm, sessions in arms.items()},
        arms={
            arm: {m: mean_ci(v, confidence) for m, v in metrics.items()}
            for arm, metrics in values.items()
        },
        differences={
            arm: {m: welch(v, values[base][m], confidence) for m, v in metrics.items()}
            for arm, metrics in values.items()
            if arm != base
        },
    )


def experiment_table(summary: ExperimentSummary) -> Table:
    """
    One row per metric and arm: sessions measured, the mean with its interval, and
    the difference from the control with its interval and p-value (a rich
    :class:`~rich.table.Table`). Metrics no session measured are left out.

    .. versionadded:: 0.6
    """
    level = f"{summary.confidence:.0%}"
    sessions = ", ".join(f"{escape(a)} {n}" for a, n in summary.sessions.items())
    table = Table(
        title=f"experiment {escape(summary.experiment)}: sessions {sessions}; "
        f"control arm: {escape(summary.control)}",
        caption=f"means over sessions with their {level} t-interval; difference: arm minus "
        f"control, Welch's {level} interval and two-sided p",
        caption_justify="left",
    )
    for column in ("metric", "arm", "n", "mean", f"{level} CI", "diff", f"{level} CI ", "p"):
        table.add_column(column, justify="left" if column in ("metric", "arm") else "right")
    for metric in METRICS:
        if not any(summary.arms[arm][metric].n for arm in summary.arms):
            continue
        for i, (arm, estimates) in enumerate(summary.arms.items()):
            e = estimates[metric]
            d = summary.differences.get(arm, {}).get(metric)
            digits = _DIGITS.get(metric, 4)
            table.add_row(
                metric if i == 0 else "",
                escape(arm),
                str(e.n),
                _number(e.mean, digits),
                _interval(e.low, e.high, digits),
                "" if d is None else _number(d.diff, digits, signed=True),
                "" if d is None else _interval(d.low, d.high, digits),
                "" if d is None or d.p is None else f"{d.p:.3g}",
                end_section=i == len(summary.arms) - 1,
            )
    return table


#: Decimals a metric is shown with (4 for the others).
_DIGITS = {"wait_ms": 2, "tokens_per_turn": 1}


def _number(value: float | None, digits: int, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _interval(low: float | None, high: float | None, digits: int) -> str:
    if low is None or high is None:
        return "-"
    return f"[{_number(low, digits)}, {_number(high, digits)}]"

"""
A/B tests: sessions assigned to the arms of an experiment by a stable hash, each arm
a configuration overlay; each session's outcome recorded; and the report of each
arm's means with confidence intervals and differences from the control.
"""

from __future__ import annotations

from ._assign import assign as assign
from ._assign import bucket as bucket
from ._outcomes import MAX_OUTCOME_FILES as MAX_OUTCOME_FILES
from ._outcomes import MAX_OUTCOME_LINE_CHARS as MAX_OUTCOME_LINE_CHARS
from ._outcomes import MAX_OUTCOME_SESSIONS as MAX_OUTCOME_SESSIONS
from ._outcomes import METRICS as METRICS
from ._outcomes import ArmStatistics as ArmStatistics
from ._outcomes import OutcomeCounts as OutcomeCounts
from ._outcomes import OutcomeTally as OutcomeTally
from ._outcomes import SessionOutcome as SessionOutcome
from ._outcomes import read_outcome_files as read_outcome_files
from ._outcomes import read_outcomes as read_outcomes
from ._outcomes import write_outcomes as write_outcomes
from ._report import ExperimentSummary as ExperimentSummary
from ._report import experiment_table as experiment_table
from ._report import summarize as summarize
from ._stats import Difference as Difference
from ._stats import Estimate as Estimate
from ._stats import mean_ci as mean_ci
from ._stats import welch as welch

__all__ = [
    "MAX_OUTCOME_FILES",
    "MAX_OUTCOME_LINE_CHARS",
    "MAX_OUTCOME_SESSIONS",
    "METRICS",
    "ArmStatistics",
    "Difference",
    "Estimate",
    "ExperimentSummary",
    "OutcomeCounts",
    "OutcomeTally",
    "SessionOutcome",
    "assign",
    "bucket",
    "experiment_table",
    "mean_ci",
    "read_outcome_files",
    "read_outcomes",
    "summarize",
    "welch",
    "write_outcomes",
]

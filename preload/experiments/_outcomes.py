"""
What an experiment measures: each session's outcome, tallied as its turns are served,
and the JSONL file of outcomes that ``preload report`` reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .._errors import EmptyInputError, InputError
from .._files import replacing
from .._sessions import json_line

__all__ = [
    "MAX_OUTCOME_FILES",
    "MAX_OUTCOME_LINE_CHARS",
    "MAX_OUTCOME_SESSIONS",
    "METRICS",
    "ArmStatistics",
    "OutcomeCounts",
    "OutcomeTally",
    "SessionOutcome",
    "read_outcome_files",
    "read_outcomes",
    "write_outcomes",
]

#: The metrics of a session's outcome, in report order, and what each one is.
METRICS: dict[str, str] = {
    "hit_rate": "share of the session's needed items warm when its turns arrived",
    "wait_ms": "mean wait of a turn for its context (ms)",
    "tokens_per_turn": "mean context tokens of a turn",
    "recall": "share of the turns' known needs the windows held",
    "used_share": "share of the judged window items the answers used (feedback)",
    "score": "mean task score given by feedback(score=)",
}

#: Metrics that are shares, within [0, 1].
_SHARES = frozenset({"hit_rate", "recall", "used_share"})

#: Metrics that are never negative.
_NON_NEGATIVE = frozenset({"wait_ms", "tokens_per_turn"})

#: The longest line of an outcomes file (characters).
MAX_OUTCOME_LINE_CHARS = 65_536

#: The most sessions an outcomes file may hold (about 200 bytes each in memory).
MAX_OUTCOME_SESSIONS = 5_000_000

#: The most outcomes files one report reads (one a replica and run).
MAX_OUTCOME_FILES = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class _Counts:
    """
    What requests and feedback add up to (the fields of :class:`OutcomeCounts` and
    :class:`ArmStatistics`, which :class:`OutcomeTally` counts).
    """

    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    tokens: int = 0
    needs: int = 0
    needs_in_window: int = 0
    wait_s: float = 0.0
    feedback_items: int = 0
    feedback_used: int = 0
    scores: int = 0
    score_sum: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeCounts(_Counts):
    """
    The counts a session's outcome was worked out from: what its requests and its
    feedback added up to on the engine that served them. Partial outcomes of one
    session served by several replicas add up to its whole outcome
    (:func:`read_outcome_files`). ``wait_s`` is the sum of its turns' waits,
    ``score_sum`` of its scores.

    .. versionadded:: 0.10
    """

    def __add__(self, other: OutcomeCounts) -> OutcomeCounts:
        return OutcomeCounts(
            **{key: getattr(self, key) + getattr(other, key) for key in _COUNT_KEYS}
        )

    def outcome(self, experiment: str, arm: str, session_id: str) -> SessionOutcome:
        """
        The session's outcome from these counts.
        """
        served = self.hits + self.partial_hits + self.misses
        turns = self.requests
        return SessionOutcome(
            experiment=experiment,
            arm=arm,
            session_id=session_id,
            turns=turns,
            hit_rate=self.hits / served if served else None,
            wait_ms=self.wait_s * 1000 / turns if turns else None,
            tokens_per_turn=self.tokens / turns if turns else None,
            recall=self.needs_in_window / self.needs if self.needs else None,
            used_share=self.feedback_used / self.feedback_items if self.feedback_items else None,
            score=self.score_sum / self.scores if self.scores else None,
            counts=self,
        )


#: The keys of an outcome's line, but ``counts``, and of its counts.
_OUTCOME_KEYS = ("experiment", "arm", "session_id", "turns", *METRICS)
_COUNT_KEYS = tuple(OutcomeCounts.__dataclass_fields__)

#: The counts that are whole numbers (the others, ``wait_s`` and ``score_sum``, are sums
#: of seconds and scores).
_WHOLE_COUNTS = frozenset(
    {
        "requests",
        "hits",
        "partial_hits",
        "misses",
        "tokens",
        "needs",
        "needs_in_window",
        "feedback_items",
        "feedback_used",
        "scores",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOutcome:
    """
    One session's outcome in an experiment: the unit its statistics count. A metric
    is None when the session gave nothing to measure it by (no needs, no feedback,
    no score).

    .. versionadded:: 0.6
    """

    experiment: str
    arm: str
    session_id: str
    turns: int
    hit_rate: float | None = None
    wait_ms: float | None = None
    tokens_per_turn: float | None = None
    recall: float | None = None
    used_share: float | None = None
    score: float | None = None
    #: What the metrics were worked out from, when the outcome was written with them
    #: (an engine's since 0.10): what merges a session's partial outcomes.
    counts: OutcomeCounts | None = None

    def metric(self, name: str) -> float | None:
        """
        The value of one of :data:`METRICS`.
        """
        value: float | None = getattr(self, name)
        return value

    def to_json(self) -> dict[str, Any]:
        """
        The outcome as one line of an outcomes file holds it (``counts`` only when
        known).
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in _OUTCOME_KEYS}
        if self.counts is not None:
            data["counts"] = {name: getattr(self.counts, name) for name in _COUNT_KEYS}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionOutcome:
        """
        The outcome :meth:`to_json` gave (trusted: a file's lines are checked by
        :func:`read_outcomes`).

        .. versionadded:: 0.10
        """
        counts = data.get("counts")
        return cls(**{**data, "counts": OutcomeCounts(**counts) if counts else None})

    def to_line(self) -> str:
        """
        The outcome's line of an outcomes file, its newline included.

        .. versionadded:: 0.10
        """
        return json.dumps(self.to_json(), separators=(",", ":")) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmStatistics(_Counts):
    """
    What the sessions of one arm added up to so far (counters; the Prometheus
    exporter's ``arm`` label). ``wait_s`` is the sum of the turns' waits,
    ``score_sum`` of the scores given.

    .. versionadded:: 0.6
    """

    sessions: int = 0


@dataclass(slots=True)
class OutcomeTally:
    """
    A session's (or an arm's) running counts, kept on the request path: a few
    additions a turn.

    .. versionadded:: 0.6
    """

    sessions: int = 0
    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    tokens: int = 0
    needs: int = 0
    needs_in_window: int = 0
    wait_s: float = 0.0
    feedback_items: int = 0
    feedback_used: int = 0
    scores: int = 0
    score_sum: float = 0.0

    def turn(
        self,
        *,
        hits: int,
        partial_hits: int,
        misses: int,
        tokens: int,
        needs: int,
        held: int,
        wait_s: float,
        count: Literal[1, -1] = 1,
    ) -> None:
        """
        Count one request served (``count=-1``: take back one counted, whose turn was
        taken back).

        .. versionchanged:: 0.7
           ``count``.
        """
        self.requests += count
        self.hits += count * hits
        self.partial_hits += count * partial_hits
        self.misses += count * misses
        self.tokens += count * tokens
        self.needs += count * needs
        self.needs_in_window += count * held
        self.wait_s += count * wait_s

    def feedback(self, *, items: int, used: int, score: float | None) -> None:
        """
        Count one window judged by feedback, and its score.
        """
        self.feedback_items += items
        self.feedback_used += used
        if score is not None:
            self.scores += 1
            self.score_sum += score

    def add(self, counts: OutcomeCounts) -> None:
        """
        Add the counts of an earlier outcome (a session taken up again).

        .. versionadded:: 0.10
        """
        for key in _COUNT_KEYS:
            setattr(self, key, getattr(self, key) + getattr(counts, key))

    def statistics(self) -> ArmStatistics:
        """
        A frozen copy of the counts.
        """
        return ArmStatistics(**asdict(self))

    def outcome(self, experiment: str, arm: str, session_id: str) -> SessionOutcome:
        """
        The session's outcome from its counts, which it carries.
        """
        counts = OutcomeCounts(**{key: getattr(self, key) for key in _COUNT_KEYS})
        return counts.outcome(experiment, arm, session_id)


def write_outcomes(path: str | Path, outcomes: Iterable[SessionOutcome]) -> int:
    """
    Write outcomes to a JSONL file, one session a line (see ``docs/experiments.md``),
    atomically (through a temporary file beside it); the number written.

    Raises:
        OSError: The file cannot be written.

    .. versionadded:: 0.6
    """
    n = 0
    with replacing(Path(path)) as out:
        for outcome in outcomes:
            out.write(outcome.to_line())
            n += 1
    return n


def read_outcomes(path: str | Path) -> list[SessionOutcome]:
    """
    Read an outcomes file. Blank lines are skipped; keys other than the outcome's
    are ignored.

    Raises:
        InputError: The file cannot be read, or a line is not an outcome (named by
            file and line: not a JSON object, a missing or mistyped key, a share
            outside [0, 1], a negative wait, ``counts`` that are not the outcome's, a
            line above :data:`MAX_OUTCOME_LINE_CHARS`, more than
            :data:`MAX_OUTCOME_SESSIONS` lines), or the same session appears twice in
            an experiment.
        EmptyInputError: The file holds no outcome.

    .. versionadded:: 0.6
    """
    return [outcome for _, outcome in _read(Path(path))]


def read_outcome_files(paths: Sequence[str | Path]) -> list[SessionOutcome]:
    """
    Read the outcomes files of one experiment's replicas (one file each, as each
    replica's engine wrote its :meth:`~preload.PreloadEngine.experiment_outcomes`),
    each as :func:`read_outcomes` does, and merge the partial outcomes of a session
    that several replicas served: its counts are added up and its metrics worked out
    from the sums, exactly as one engine that served all its turns would have. A
    folder stands for its ``*.jsonl`` files (as ``server.outcomes_dir`` keeps a
    tenant's), in the order of their names.

    Raises:
        InputError: A file is bad (as :func:`read_outcomes` says), named twice, or
            more than :data:`MAX_OUTCOME_FILES` are given, or they hold more than
            :data:`MAX_OUTCOME_SESSIONS` sessions in all; a folder holds no
            ``*.jsonl`` file; or a session in two files cannot be merged: one of its
            lines has no ``counts`` (an outcome written before 0.10), or the two name
            other arms (the replicas ran other experiment settings). The error names
            both files and lines.
        EmptyInputError: A file holds no outcome.

    .. versionadded:: 0.10
    """
    files = _files(paths)
    merged: dict[tuple[str, str], tuple[Path, int, SessionOutcome]] = {}
    for path in files:
        for number, outcome in _read(path):
            where = (outcome.experiment, outcome.session_id)
            before = merged.get(where)
            if before is not None:
                outcome = _merge(before, path, number, outcome)
            elif len(merged) >= MAX_OUTCOME_SESSIONS:
                raise InputError(
                    path,
                    number,
                    f"more than {MAX_OUTCOME_SESSIONS} sessions in the files; report fewer",
                )
            merged[where] = (path, number, outcome)
    return [outcome for _, _, outcome in merged.values()]


def _files(paths: Sequence[str | Path]) -> list[Path]:
    """
    The outcomes files ``paths`` name: each file, and each folder's ``*.jsonl`` files.

    Raises:
        InputError: A file named twice, a folder without outcomes files, more than
            :data:`MAX_OUTCOME_FILES` files.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for name in paths:
        path = Path(name)
        inside = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not inside:
            raise InputError(path, None, "a folder without outcomes files (*.jsonl)")
        for file in inside:
            if file.resolve() in seen:
                raise InputError(file, None, "named twice: each replica's file counts once")
            seen.add(file.resolve())
            files.append(file)
            if len(files) > MAX_OUTCOME_FILES:
                raise InputError(
                    file, None, f"more than {MAX_OUTCOME_FILES} outcomes files; report fewer"
                )
    return files


def _merge(
    before: tuple[Path, int, SessionOutcome], path: Path, number: int, outcome: SessionOutcome
) -> SessionOutcome:
    """
    A session's outcome merged from the one found ``before`` and ``outcome``
    (``path``, line ``number``).
    """
    first_path, first_number, first = before
    session = f"session {outcome.session_id!r} of experiment {outcome.experiment!r}"
    if first.arm != outcome.arm:
        raise InputError(
            path,
            number,
            f"{session} is in arm {outcome.arm!r} here and in arm {first.arm!r} on "
            f"{first_path}:{first_number}: the replicas assign sessions differently "
            "(another experiment's salt or weights)",
        )
    if first.counts is None or outcome.counts is None:
        where = f"{path}:{number}" if outcome.counts is None else f"{first_path}:{first_number}"
        raise InputError(
            path,
            number,
            f"{session} is also on {first_path}:{first_number}, and the outcome on {where} "
            "has no 'counts' (written before 0.10), so the two cannot be merged",
        )
    return (first.counts + outcome.counts).outcome(
        outcome.experiment, outcome.arm, outcome.session_id
    )


def _read(path: Path) -> list[tuple[int, SessionOutcome]]:
    """
    :func:`read_outcomes`, each outcome with its line number.
    """
    out: list[tuple[int, SessionOutcome]] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if len(line) > MAX_OUTCOME_LINE_CHARS:
                    raise InputError(
                        path, number, f"line longer than {MAX_OUTCOME_LINE_CHARS} characters"
                    )
                if not line.strip():
                    continue
                if len(out) >= MAX_OUTCOME_SESSIONS:
                    raise InputError(
                        path, number, f"more than {MAX_OUTCOME_SESSIONS} outcomes; split the file"
                    )
                outcome = _parse(path, number, line)
                where = (outcome.experiment, outcome.session_id)
                if where in seen:
                    raise InputError(
                        path,
                        number,
                        f"session {outcome.session_id!r} of experiment {outcome.experiment!r} "
                        f"is already on line {seen[where]}",
                    )
                seen[where] = number
                out.append((number, outcome))
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    if not out:
        raise EmptyInputError(path, "outcomes")
    return out


def _parse(path: Path, number: int, line: str) -> SessionOutcome:
    data = json_line(path, number, line)
    if not isinstance(data, dict):
        raise InputError(path, number, f"expected a JSON object, got {type(data).__name__}")
    fields: dict[str, Any] = {}
    for key in ("experiment", "arm", "session_id"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise InputError(path, number, f"'{key}' must be a non-empty string, got {value!r}")
        fields[key] = value
    turns = data.get("turns")
    if type(turns) is not int or turns < 0:
        raise InputError(path, number, f"'turns' must be a whole number >= 0, got {turns!r}")
    fields["turns"] = turns
    for key in METRICS:
        value = data.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InputError(
                path, number, f"'{key}' must be a finite number or null, got {value!r}"
            )
        if key in _SHARES and not 0.0 <= value <= 1.0:
            raise InputError(path, number, f"'{key}' is a share: within [0, 1], got {value!r}")
        if key in _NON_NEGATIVE and value < 0:
            raise InputError(path, number, f"'{key}' must not be negative, got {value!r}")
        fields[key] = float(value)
    if data.get("counts") is not None:
        fields["counts"] = _parse_counts(path, number, data["counts"], turns)
    return SessionOutcome(**fields)


def _parse_counts(path: Path, number: int, data: object, turns: int) -> OutcomeCounts:
    """
    An outcome line's ``counts``: an object of the :class:`OutcomeCounts` keys, each a
    number not negative (a whole number but for ``wait_s`` and ``score_sum``), with
    ``requests`` equal to the line's ``turns``.
    """
    if not isinstance(data, dict):
        raise InputError(path, number, f"'counts' must be a JSON object, got {data!r:.80}")
    fields: dict[str, Any] = {}
    for key in _COUNT_KEYS:
        value = data.get(key, 0)
        whole = key in _WHOLE_COUNTS
        if (
            isinstance(value, bool)
            or not isinstance(value, int if whole else int | float)
            or not math.isfinite(value)
            or (value < 0 and key != "score_sum")
        ):
            wanted = "a whole number >= 0" if whole else "a finite number"
            wanted += "" if whole or key == "score_sum" else " >= 0"
            raise InputError(path, number, f"'counts.{key}' must be {wanted}, got {value!r}")
        fields[key] = value if whole else float(value)
    if fields["requests"] != turns:
        raise InputError(
            path,
            number,
            f"'counts.requests' is {fields['requests']}, but 'turns' is {turns}: "
            "the counts are not this outcome's",
        )
    return OutcomeCounts(**fields)

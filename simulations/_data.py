"""
Where the benchmarks find the shared session logs: ``--data``, the folder holding
``sgd/`` and ``star/`` (``../shared/data`` beside the project by default), and
``--corpora``, the corpora to run; a missing folder or an unknown corpus stops the
benchmark with a message that names it, before any work. And the train sessions of a
tenant whose tools a model partly never saw (:func:`unseen_tools`,
:func:`without_tools`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from simulations import retail_corpus

if TYPE_CHECKING:
    from preload import Session

__all__ = [
    "CORPORA",
    "DATA",
    "GENERATED",
    "add_data_arguments",
    "corpus_folders",
    "dev_logs",
    "read_only_names",
    "unseen_tools",
    "without_tools",
    "write_log",
]

#: ``--data``'s default: ``../shared/data`` beside the project.
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: The corpora a ``--data`` folder holds, each in a folder of its name.
CORPORA = ("sgd", "star")
#: Generated corpora a benchmark also takes by name, once written into a ``--data``
#: folder (``python -m simulations.retail_corpus DIR``).
GENERATED = ("retail",)


def add_data_arguments(parser: argparse.ArgumentParser, *, corpora: str | None = None) -> None:
    """
    Add ``--data`` and, when ``corpora`` (the default list, as "sgd,star") is given,
    ``--corpora``.
    """
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA,
        help="the folder holding sgd/ and star/ (default: ../shared/data)",
    )
    if corpora is not None:
        parser.add_argument(
            "--corpora", default=corpora, help=f"comma-separated, of {', '.join(CORPORA)}"
        )


def corpus_folders(data: Path, names: str) -> list[tuple[str, Path]]:
    """
    Each corpus of the comma-separated ``names`` with its folder under ``data``; exits
    with a message naming the corpus or the folder when one is unknown or missing.
    """
    folders = []
    for name in names.split(","):
        if name not in CORPORA + GENERATED:
            known = ", ".join(CORPORA + GENERATED)
            sys.exit(f"--corpora: unknown corpus {name!r} (known: {known})")
        folder = data / name
        if not folder.is_dir():
            sys.exit(f"--data: no folder {folder} (--data DIR: the folder holding sgd/ and star/)")
        folders.append((name, folder))
    return folders


def dev_logs(data: Path, names: str, tmp: Path) -> list[tuple[str, Path, str]]:
    """
    Each corpus of the comma-separated ``names`` with its dev session log and where it
    comes from (for the output): read under ``data``, or for ``retail``, generated
    with its calls' results into ``tmp`` by :mod:`simulations.retail_corpus`.
    """
    shared = ",".join(n for n in names.split(",") if n != "retail")
    logs = [
        (name, folder / "sessions-dev.jsonl", f"read from {folder / 'sessions-dev.jsonl'}")
        for name, folder in (corpus_folders(data, shared) if shared else [])
    ]
    if "retail" in names.split(","):
        logs.append(("retail", retail_corpus.write(tmp) / "sessions-dev.jsonl", "generated"))
    return logs


def read_only_names(sessions: Iterable[Session]) -> set[str]:
    """
    The names of the read-only calls of ``sessions``.
    """
    return {
        call.name
        for session in sessions
        for turn in session.turns
        for call in turn.tool_calls
        if call.read_only
    }


def unseen_tools(read_only: Iterable[str], share: float) -> set[str]:
    """
    About ``share`` (in (0, 1]) of the tools of ``read_only``: in the order of their
    names, every other one for 0.5, every third for 0.33, and so on.
    """
    every = max(1, round(1 / share))
    return set(sorted(read_only)[every - 1 :: every])


def without_tools(sessions: Sequence[Session], hidden: set[str]) -> list[Session]:
    """
    ``sessions`` with the calls of the tools in ``hidden`` taken out of every turn: the
    logs of other tenants, who lack those tools.
    """
    return [
        replace(
            session,
            turns=tuple(
                replace(turn, tool_calls=tuple(c for c in turn.tool_calls if c.name not in hidden))
                for turn in session.turns
            ),
        )
        for session in sessions
    ]


def write_log(path: Path, sessions: Iterable[Session]) -> Path:
    """
    Write ``sessions`` to ``path`` as a session log (a line each); return the path.
    """
    with path.open("w", encoding="utf-8") as lines:
        for session in sessions:
            lines.write(json.dumps(session.as_mapping()) + "\n")
    return path

"""
Where the benchmarks find the shared session logs: ``--data``, the folder holding
``sgd/`` and ``star/`` (``../shared/data`` beside the project by default), and
``--corpora``, the corpora to run; a missing folder or an unknown corpus stops the
benchmark with a message that names it, before any work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulations import retail_corpus

__all__ = ["CORPORA", "DATA", "GENERATED", "add_data_arguments", "corpus_folders", "dev_logs"]

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

"""
Files written whole or not at all: :func:`replacing` gives a file to write beside the
one meant, and puts it in its place (:func:`os.replace`) once written, so that a reader
(a server following its keys file, ``preload report`` reading outcomes) sees the old
file or the new one, never half of one, and a write that fails or is stopped leaves
the old one as it was.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["replacing"]


@contextmanager
def replacing(path: Path, *, keep_mode: bool = False) -> Iterator[IO[str]]:
    """
    A new text file beside ``path`` (a hidden name of its own), put in place of
    ``path`` when the block ends, flushed to disk first; removed if the block raises.

    Args:
        path: The file to write.
        keep_mode: Give the new file the mode ``path`` has (else the umask's, as any
            new file's).

    Raises:
        OSError: The file cannot be written or put in place.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            if keep_mode:
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""
Reading a model file the engine saved: within its size limit, as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graph import MAX_MODEL_FILE_BYTES

from .._errors import InputError

__all__ = ["read_model_json"]


def read_model_json(path: Path, what: str) -> Any:
    """
    The JSON document of the model file ``path``.

    Raises:
        InputError: The file cannot be read, is above ``graph.MAX_MODEL_FILE_BYTES``
            (512 MiB; refused before it is read), or is not JSON (``what`` names what
            it should have been).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    if size > MAX_MODEL_FILE_BYTES:
        limit = f"{MAX_MODEL_FILE_BYTES:,}"
        raise InputError(path, None, f"{size:,} bytes, above the {limit} a model file may have")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"not a JSON {what}: {exc}") from None

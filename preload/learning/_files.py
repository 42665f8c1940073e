"""
Reading a model file the engine saved: graph's reading (its size limit, JSON), its errors
as preload's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graph import ModelFileError, read_json

from .._errors import InputError

__all__ = ["read_model_json"]


def read_model_json(path: Path) -> Any:
    """
    The JSON document of the model file ``path`` (:func:`graph.read_json`).

    Raises:
        InputError: The file cannot be read, is above ``graph.MAX_MODEL_FILE_BYTES``
            (512 MiB; refused before it is read), or is not JSON.
    """
    try:
        return read_json(path)
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    except ModelFileError as exc:
        raise InputError(path, None, exc.problem) from None

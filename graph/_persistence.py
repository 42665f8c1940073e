"""
How graph's models are saved and read back: versioned JSON documents.

A saved model is one JSON object that begins with ``"format"`` (which model) and
``"version"`` (of its layout). :func:`atomic_write_json` writes it through a temporary
file, :func:`read_json` reads it, :func:`check_document` checks its format and version,
and :func:`map_corrupt_data` turns whatever goes wrong while rebuilding the model into
a :class:`ModelFileError` naming the file. Float arrays travel as base64 ``float32``
(:func:`encode_floats`, :func:`decode_floats`).
"""

from __future__ import annotations

import base64
import json
import math
import os
import sys
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from ._errors import ModelFileError

__all__ = [
    "MAX_MODEL_FILE_BYTES",
    "MAX_SHARED_NUMBERS",
    "JsonModel",
    "atomic_write_json",
    "check_document",
    "decode_floats",
    "encode_floats",
    "map_corrupt_data",
    "read_json",
]

#: The largest model file :func:`read_json` reads: a call forecaster fitted on all of
#: SGD's train sessions is 6 MB, the needs forecaster a few; a file above it is refused
#: before it is read.
MAX_MODEL_FILE_BYTES = 512 * 1024 * 1024

#: The most distinct numbers :func:`read_json` shares between the documents it reads
#: (see :func:`_shared_number`); past it, a number read is a float of its own.
MAX_SHARED_NUMBERS = 65_536
_numbers: dict[str, float] = {}

#: What rebuilding a model from malformed JSON raises (``LookupError``: a key missing,
#: or a list shorter than its entry, as a ``[right, wrong]`` count of one number).
_CORRUPT: tuple[type[Exception], ...] = (LookupError, TypeError, ValueError, AttributeError)


class JsonModel:
    """
    A model written as one versioned JSON document: :meth:`save` and :meth:`load` for
    any class that has ``to_json()`` and ``from_json(data, *, source=...)``.
    """

    def to_json(self) -> dict[str, Any]:
        """
        The model as a JSON-ready dict.
        """
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str | Path = "<json>") -> Self:
        """
        Rebuild a model from :meth:`to_json` output (``source`` names the origin in
        error messages).
        """
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """
        Write the model as versioned JSON, atomically (a temporary file, then a rename).

        Args:
            path: Where to write.
        """
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """
        Read a model written by :meth:`save`.

        Args:
            path: The file.

        Returns:
            The model.

        Raises:
            ModelFileError: If the file is corrupt, above :data:`MAX_MODEL_FILE_BYTES`
                or of an unknown version.
        """
        return cls.from_json(read_json(path), source=path)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """
    Write ``data`` as compact JSON to ``path`` through a temporary file and
    :func:`os.replace`, so a reader never sees half a file. The file gets the mode
    any new file gets (the umask's), not the owner-only mode of :func:`tempfile.mkstemp`:
    a model trained by one user is served by another.

    Args:
        path: The destination.
        data: Anything :func:`json.dump` accepts.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> Any:
    """
    Read a JSON file, turning decoding failures into :class:`ModelFileError`. Its
    numbers and strings are shared with every other document read (see
    :func:`_shared_number` and :func:`_shared_strings`).

    Args:
        path: The file.

    Returns:
        The decoded document.

    Raises:
        ModelFileError: If the file is above :data:`MAX_MODEL_FILE_BYTES`, is not
            valid UTF-8 JSON, or nests deeper than the decoder reads.
    """
    size = os.stat(path).st_size
    if size > MAX_MODEL_FILE_BYTES:
        raise ModelFileError(
            path,
            f"{size:,} bytes, above the {MAX_MODEL_FILE_BYTES:,} a model file may have",
            remedy="Check that it is the model meant: one fit on all of SGD's train is 6 MB.",
        )
    try:
        with open(path, encoding="utf-8") as fh:
            return _shared_strings(json.load(fh, parse_float=_shared_number))
    except ValueError as exc:  # not UTF-8, not JSON, a number of too many digits
        raise ModelFileError(path, f"not valid JSON ({exc})") from exc
    except RecursionError as exc:  # no model nests deeper than a few levels
        raise ModelFileError(path, "nested deeper than a JSON decoder reads") from exc


def _shared_number(text: str) -> float:
    """
    The float a model file writes as ``text``, one object for every document read in
    this process: a fitted model holds hundreds of thousands of counts but a few
    thousand distinct ones (1.0, 2.0, 0.5, ...), each float otherwise an object of 24
    bytes of its own, and every tenant of a server loads its own copy of the models.
    SGD's call forecaster: 2,071 distinct numbers. At most :data:`MAX_SHARED_NUMBERS`
    are kept.
    """
    got = _numbers.get(text)
    if got is None:
        got = float(text)
        if len(_numbers) < MAX_SHARED_NUMBERS:
            _numbers[text] = got
    return got


def number(value: Any) -> float:
    """
    A count read from a model file, as the decoder gave it: its ints (CPython shares
    those up to 256) and its floats (:func:`_shared_number`) are shared, and ``float()``
    of an int would make an object of 24 bytes of each. Anything else goes through
    ``float()``; a count that is not finite (the decoder reads ``NaN``, ``Infinity``
    and ``1e400``) is refused (errors: TypeError, ValueError).
    """
    if type(value) is int:
        return value
    got = value if type(value) is float else float(value)
    if not math.isfinite(got):
        raise ValueError(f"a count of {got!r}")
    return got


def _shared_strings(doc: Any) -> Any:
    """
    ``doc`` with every string of it interned (:func:`sys.intern`): one object for each
    text, in it and in every other document read while it lives. A model's words,
    values and names recur across its counts, and every tenant of a server loads its
    own copy of the models. Walked without recursion, so the work and the stack stay
    within the document's size whatever its depth.
    """
    root = [doc]
    todo: list[tuple[Any, Any]] = [(root, 0)]
    while todo:
        parent, at = todo.pop()
        node = parent[at]
        if isinstance(node, dict):
            node = parent[at] = {sys.intern(k): v for k, v in node.items()}
            items: Iterable[tuple[Any, Any]] = node.items()
        else:
            items = enumerate(node)
        for key, value in items:
            if type(value) is str:
                node[key] = sys.intern(value)
            elif isinstance(value, (dict, list)):
                todo.append((node, key))
    return root[0]


def check_document(
    data: Any, fmt: str, version: int, source: str | Path, *, older: Collection[int] = ()
) -> None:
    """
    Check that decoded JSON is a ``fmt`` document of this ``version`` (or of one of the
    ``older`` versions the caller still reads).

    Args:
        data: The decoded JSON.
        fmt: The expected ``"format"``.
        version: The version written now.
        source: Names the origin in error messages.
        older: Earlier versions that are read too.

    Raises:
        ModelFileError: It is not, naming ``source`` and what is wrong.
    """
    if not isinstance(data, Mapping) or data.get("format") != fmt:
        raise ModelFileError(source, f"not a {fmt} document")
    if data.get("version") != version and data.get("version") not in older:
        raise ModelFileError(
            source, f"unknown version {data.get('version')!r} (this code reads version {version})"
        )


@contextmanager
def map_corrupt_data(source: str | Path, what: str, *also: type[Exception]) -> Iterator[None]:
    """
    Turn the errors of rebuilding a model from malformed data into
    :class:`ModelFileError` (``corrupt <what> (<error>)``, naming ``source``).

    A :class:`ModelFileError` raised inside passes through unchanged.

    Args:
        source: Names the origin in error messages.
        what: What was being read, e.g. ``"predictor data"``.
        also: Error types to translate besides ``KeyError``, ``IndexError``,
            ``TypeError``, ``ValueError`` and ``AttributeError``.

    Raises:
        ModelFileError: If the block raised one of those errors.
    """
    try:
        yield
    except ModelFileError:
        raise
    except (*_CORRUPT, *also) as exc:
        raise ModelFileError(source, f"corrupt {what} ({exc})") from exc


def encode_floats(array: np.ndarray[Any, Any]) -> str:
    """
    Return ``array`` as base64 of its little-endian ``float32`` values, in C order.

    Args:
        array: Any numeric array.

    Returns:
        ASCII text.
    """
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def decode_floats(text: str, shape: tuple[int, ...]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """
    Invert :func:`encode_floats`.

    Args:
        text: What :func:`encode_floats` returned.
        shape: The array's shape.

    Returns:
        A ``float64`` array of that shape.
    """
    flat = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype="<f4")
    return flat.astype(np.float64).reshape(shape)

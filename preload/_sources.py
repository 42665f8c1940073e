"""
Sources: where context comes from.

A source is anything with a ``name`` and ``async def fetch(key) -> str``. Two
optional capabilities are declared as protocols and checked once, when the router is
built: a source that knows its keys (:class:`ListingSource`) answers ``key in
source``, which lets the engine route a need to the right source without trying each
one; a source that knows its items' context categories (:class:`CategorizingSource`)
tells ``source.category(key)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio

from ._errors import InputError, MissingItemError

__all__ = [
    "CategorizingSource",
    "DictSource",
    "DirectorySource",
    "JsonlKnowledgeSource",
    "KnowledgeItem",
    "ListingSource",
    "Source",
    "SourceRouter",
    "read_knowledge",
]


@runtime_checkable
class Source(Protocol):
    """
    Where context items come from.

    .. versionadded:: 0.1
    """

    name: str

    async def fetch(self, key: str) -> str:
        """
        The text of the item ``key``.

        Raises:
            MissingItemError: The source has no such item.
        """
        ...


@runtime_checkable
class ListingSource(Source, Protocol):
    """
    A source that can tell whether it has an item.

    .. versionadded:: 0.2
    """

    def __contains__(self, key: object) -> bool:
        """
        Whether the source has the item ``key``.
        """
        ...


@runtime_checkable
class CategorizingSource(Source, Protocol):
    """
    A source that knows the context category of its items (``domain_knowledge``,
    ``examples``, ...).

    .. versionadded:: 0.2
    """

    def category(self, key: str) -> str:
        """
        The context category of the item ``key``.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeItem:
    """
    One line of a knowledge file.

    .. versionadded:: 0.1
    """

    key: str
    text: str
    category: str = "domain_knowledge"


class DictSource:
    """
    A source over an in-memory mapping of key to text.

    Args:
        items: The texts by key.
        name: The source's name.
        categories: Optional category per key (``domain_knowledge`` when absent).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        items: Mapping[str, str],
        *,
        name: str = "dict",
        categories: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._items = dict(items)
        self._categories = dict(categories or {})

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> Iterable[str]:
        """
        Every key the source holds.
        """
        return self._items.keys()

    def category(self, key: str) -> str:
        """
        The context category of ``key``.
        """
        return self._categories.get(key, "domain_knowledge")

    async def fetch(self, key: str) -> str:
        """
        The text of ``key``.

        Raises:
            MissingItemError: The key is not in the mapping.
        """
        try:
            return self._items[key]
        except KeyError:
            raise MissingItemError(self.name, key) from None


class JsonlKnowledgeSource(DictSource):
    """
    A source over a knowledge file: one ``{"key", "text", "category"?}`` object a line.

    Args:
        path: The JSONL file.
        name: The source's name.
        skip_bad_lines: Skip malformed lines (counted in ``bad_lines``) instead of raising.

    Raises:
        InputError: A line is malformed (names the file and line), or the file is missing.

    .. versionadded:: 0.1
    """

    def __init__(self, path: str | Path, *, name: str = "kb", skip_bad_lines: bool = False) -> None:
        items, errors = read_knowledge(path, skip_bad_lines=skip_bad_lines)
        super().__init__(
            {item.key: item.text for item in items},
            name=name,
            categories={item.key: item.category for item in items},
        )
        self.path = Path(path)
        self.bad_lines = errors


class DirectorySource:
    """
    A source over the text files of a directory: the key is the path relative to it.

    .. versionadded:: 0.1
    """

    def __init__(self, root: str | Path, *, name: str = "dir", suffix: str = ".txt") -> None:
        self.name = name
        self.root = Path(root)
        self.suffix = suffix

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._path(key).is_file()

    def _path(self, key: str) -> Path:
        path = (
            (self.root / key).with_suffix(self.suffix)
            if not key.endswith(self.suffix)
            else (self.root / key)
        )
        return path

    async def fetch(self, key: str) -> str:
        """
        The text of the file ``key`` under the root.

        Raises:
            MissingItemError: No such file, or the key leaves the root.
        """
        path = self._path(key).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            raise MissingItemError(self.name, key)
        return await anyio.Path(path).read_text(encoding="utf-8")


_CATEGORY_BY_KIND = {
    "service": "task_context",
    "intent": "task_context",
    "task": "task_context",
    "slot": "domain_knowledge",
    "db": "domain_knowledge",
}


def read_knowledge(
    path: str | Path, *, skip_bad_lines: bool = False
) -> tuple[list[KnowledgeItem], list[InputError]]:
    """
    Read a knowledge JSONL file.

    Returns:
        The items, and the errors of the lines skipped (empty unless ``skip_bad_lines``).

    Raises:
        InputError: The file is missing, or a line is malformed and ``skip_bad_lines`` is off.
    """
    path = Path(path)
    items: list[KnowledgeItem] = []
    errors: list[InputError] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, None, f"cannot open: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                items.append(_parse_knowledge(path, number, line))
            except InputError as exc:
                if not skip_bad_lines:
                    raise
                errors.append(exc)
    return items, errors


def _parse_knowledge(path: Path, number: int, line: str) -> KnowledgeItem:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(path, number, f"not JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise InputError(path, number, "expected an object")
    key, text = record.get("key"), record.get("text")
    if not isinstance(key, str) or not key:
        raise InputError(path, number, "'key' must be a non-empty string")
    if not isinstance(text, str):
        raise InputError(path, number, f"item {key!r}: 'text' must be a string")
    category = record.get("category")
    if category is None:
        kind = record.get("kind")
        if kind is None and ":" in key:
            kind = key.split(":", 1)[0]
        category = _CATEGORY_BY_KIND.get(str(kind), "domain_knowledge")
    if not isinstance(category, str):
        raise InputError(path, number, f"item {key!r}: 'category' must be a string")
    return KnowledgeItem(key=key, text=text, category=category)


class SourceRouter:
    """
    Routes a key to the source that holds it: the first source that answers
    ``key in source``, else the first source that cannot tell (it will be asked).

    Args:
        sources: The sources by name, in the order they are asked.

    .. versionadded:: 0.1
    """

    def __init__(self, sources: Mapping[str, Source]) -> None:
        self.sources = dict(sources)
        self._known = [s for s in self.sources.values() if isinstance(s, ListingSource)]
        self._blind = [s for s in self.sources.values() if not isinstance(s, ListingSource)]
        self._categorizing = {
            id(s): s for s in self.sources.values() if isinstance(s, CategorizingSource)
        }
        self._routes: dict[str, Source | None] = {}

    def route(self, key: str) -> Source | None:
        """
        The source to ask for ``key``, or None when no source can have it.
        """
        try:
            return self._routes[key]
        except KeyError:
            pass
        found: Source | None = None
        for source in self._known:
            if key in source:
                found = source
                break
        else:
            found = self._blind[0] if self._blind else None
        if len(self._routes) < 1_000_000:
            self._routes[key] = found
        return found

    def category(self, key: str) -> str:
        """
        The context category of ``key`` as its source tells it, else ``domain_knowledge``.
        """
        source = self._categorizing.get(id(self.route(key)))
        return source.category(key) if source is not None else "domain_knowledge"

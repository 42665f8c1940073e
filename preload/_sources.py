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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio

from ._config import PreloaderConfig
from ._errors import InputError, MissingItemError
from ._retrieval import MAX_SEARCH_LIMIT, TfidfIndex
from ._sessions import decode_line, json_type, label_problem, open_jsonl, quoted

__all__ = [
    "CategorizingSource",
    "DictSource",
    "DirectorySource",
    "JsonlKnowledgeSource",
    "KnowledgeItem",
    "ListingSource",
    "SearchingSource",
    "Source",
    "SourceRouter",
    "read_knowledge",
]

#: The preloader's default limit on an item's text (``preloader.max_item_chars``): the
#: knowledge reader refuses longer items, which the preloader would refuse to load.
_MAX_ITEM_CHARS = PreloaderConfig().max_item_chars


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


@runtime_checkable
class SearchingSource(Source, Protocol):
    """
    A source that can search its items by text: what the engine retrieves from when a
    request comes without known needs.

    .. versionadded:: 0.4
    """

    async def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """
        The keys of the ``limit`` items most relevant to ``query``, most relevant
        first, with a relevance score in 0..1.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeItem:
    """
    One line of a knowledge file.

    ``category`` is the context category the window places the item in
    (``task_context``, ``domain_knowledge`` or ``examples``). ``kind`` is what the item
    describes, as the shipped data sets label it: the kind of need its key names
    (``service``, ``intent``, ``slot``, ``db``, ``task``), or None when the line has no
    ``kind``. A line without ``category`` gets it from its ``kind`` (or its key's prefix
    before ``:``): ``service``, ``intent`` and ``task`` are ``task_context``, anything
    else ``domain_knowledge``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``kind``.
    """

    key: str
    text: str
    category: str = "domain_knowledge"
    kind: str | None = None


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
        self._index: TfidfIndex | None = None
        self._indexing = anyio.Lock()

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

    async def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """
        The keys of the ``limit`` items whose texts are most similar to ``query``
        (TF-IDF cosine, above 0), most similar first. The index is built on the first
        search, and every search runs, in a worker thread: the event loop never does
        work that grows with the items. A query is cut to ``MAX_QUERY_CHARS``.

        Raises:
            ValueError: ``limit`` is below 1 or above ``MAX_SEARCH_LIMIT`` (1,000).

        .. versionadded:: 0.4
        """
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_SEARCH_LIMIT}, not {limit}")
        async with self._indexing:
            if self._index is None:
                self._index = await anyio.to_thread.run_sync(TfidfIndex, self._items)
        return await anyio.to_thread.run_sync(self._index.search, query, limit)

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
    A source over a knowledge file: one ``{"key", "text", "category"?, "kind"?}`` object
    a line (``docs/formats.md``).

    Args:
        path: The JSONL file.
        name: The source's name.
        skip_bad_lines: Skip refused lines (listed in ``bad_lines``) instead of raising.
        max_item_chars: The longest item text, in characters (the preloader's
            ``preloader.max_item_chars`` by default).

    Raises:
        InputError: A line is refused (names the file, the line and the key or field),
            or the file is missing.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``max_item_chars``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "kb",
        skip_bad_lines: bool = False,
        max_item_chars: int = _MAX_ITEM_CHARS,
    ) -> None:
        items, errors = read_knowledge(
            path, skip_bad_lines=skip_bad_lines, max_item_chars=max_item_chars
        )
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
    path: str | Path, *, skip_bad_lines: bool = False, max_item_chars: int = _MAX_ITEM_CHARS
) -> tuple[list[KnowledgeItem], list[InputError]]:
    """
    Read a knowledge JSONL file.

    A line is refused when it is not UTF-8, not JSON, not an object, has no non-empty
    string ``key``, a ``text`` that is not a string or is longer than
    ``max_item_chars``, a ``category`` or ``kind`` that is not a string, or a key that
    an earlier line already gave.

    Args:
        path: The JSONL file.
        skip_bad_lines: Report refused lines in the returned errors instead of raising;
            the first item of a key is the one kept.
        max_item_chars: The longest item text, in characters (the preloader's
            ``preloader.max_item_chars`` by default: the preloader refuses longer items).

    Returns:
        The items, and the errors of the lines skipped (empty unless ``skip_bad_lines``).

    Raises:
        InputError: The file is missing, or a line is refused and ``skip_bad_lines`` is
            off; the message names the file, the line and the key or field.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``max_item_chars``; non-UTF-8 lines and duplicate keys are refused line by line.
    """
    path = Path(path)
    items: list[KnowledgeItem] = []
    errors: list[InputError] = []
    first_line: dict[str, int] = {}
    with open_jsonl(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.isspace():
                continue
            try:
                record = decode_line(path, number, raw)
                item = _parse_knowledge(path, number, record, max_item_chars)
                first = first_line.setdefault(item.key, number)
                if first != number:
                    raise InputError(
                        path,
                        number,
                        f"duplicate key {quoted(item.key)} (first on line {first}); "
                        "give each item its own key",
                    )
            except InputError as exc:
                if not skip_bad_lines:
                    raise
                errors.append(exc)
                continue
            items.append(item)
    return items, errors


def _parse_knowledge(
    path: Path, number: int, record: Any, max_item_chars: int = _MAX_ITEM_CHARS
) -> KnowledgeItem:
    """
    One knowledge item from its decoded JSON.

    Raises:
        InputError: The record does not follow the knowledge format.
    """
    if not isinstance(record, dict):
        raise InputError(
            path, number, f"expected a JSON object with 'key' and 'text', not {json_type(record)}"
        )
    key, text = record.get("key"), record.get("text")
    if not isinstance(key, str) or not key:
        shown = quoted(key) if isinstance(key, str) else json_type(key)
        raise InputError(path, number, f"'key' must be a non-empty string, not {shown}")
    problem = label_problem("'key'", key)
    if problem is not None:
        raise InputError(path, number, problem)
    if not isinstance(text, str):
        raise InputError(
            path, number, f"item {quoted(key)}: 'text' must be a string, not {json_type(text)}"
        )
    if len(text) > max_item_chars:
        raise InputError(
            path,
            number,
            f"item {quoted(key)}: 'text' is {len(text):,} characters, above the limit of "
            f"{max_item_chars:,} (preloader.max_item_chars); split the item, or raise "
            "the limit",
        )
    kind = record.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise InputError(
            path, number, f"item {quoted(key)}: 'kind' must be a string, not {json_type(kind)}"
        )
    category = record.get("category")
    if category is None:
        prefix = kind if kind is not None else key.split(":", 1)[0] if ":" in key else None
        category = _CATEGORY_BY_KIND.get(prefix or "", "domain_knowledge")
    elif not isinstance(category, str):
        raise InputError(
            path,
            number,
            f"item {quoted(key)}: 'category' must be a string, not {json_type(category)}",
        )
    return KnowledgeItem(key=key, text=text, category=category, kind=kind)


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

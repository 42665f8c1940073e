"""
The conversation-pattern graph: transition counts between contexts and next states.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from ._errors import InvalidStateError, ModelFileError

__all__ = ["BOS", "FORMAT_VERSION", "PatternGraph", "check_name"]

#: Version of the JSON layout written by :meth:`PatternGraph.save`.
FORMAT_VERSION = 1
#: The pseudo-state that starts every session: ``(BOS,)`` is the session-start context.
BOS = "\x02"
_CTX = "\x1e"
_SEP = "\x1f"
_RESERVED = (BOS, _CTX, _SEP)
_FORMAT = "graph.PatternGraph"


def check_name(name: str) -> str:
    """
    Return ``name`` unchanged if it may be used as a state or need.

    Args:
        name: A state or need name.

    Returns:
        The same name.

    Raises:
        InvalidStateError: If it holds one of the reserved characters.
    """
    if _CTX in name or _SEP in name or BOS in name:
        raise InvalidStateError(name)
    return name


def context_key(context: tuple[str, ...]) -> str:
    """
    Return the node id of a context (a tuple of states, oldest first).

    Args:
        context: The last states, oldest first; ``()`` is the unigram context.

    Returns:
        The node id: a prefix character, then the states joined by a separator.
    """
    return _CTX + _SEP.join(context)


def key_context(key: str) -> tuple[str, ...]:
    """
    Invert :func:`context_key`.

    Args:
        key: A context node id.

    Returns:
        The context tuple.
    """
    body = key[1:]
    return tuple(body.split(_SEP)) if body else ()


class PatternGraph:
    """
    A directed graph of weighted transitions from contexts to next items.

    It wraps a :class:`networkx.DiGraph` (it does not subclass it). A context is a tuple of
    the last 1..k states, stored as a node whose id starts with a reserved character; the
    next item (a state or a need) is a node named by itself; every edge carries a float
    ``count``. Context nodes also carry ``total``, the sum of their out-edge counts.

    .. versionadded:: 0.1
    """

    __slots__ = ("_g", "_succ")

    def __init__(self) -> None:
        self._bind(nx.DiGraph())

    def _bind(self, g: nx.DiGraph[str]) -> None:
        self._g = g
        # The raw successor dict (node -> {nbr: edge data}); reading it directly keeps
        # ``counts`` O(out-degree) without networkx's view objects.
        self._succ: dict[str, dict[str, dict[str, Any]]] = g._succ  # type: ignore[attr-defined]

    @property
    def nx_graph(self) -> nx.DiGraph[str]:
        """
        The wrapped networkx graph (read it, don't mutate it).
        """
        return self._g

    def add(self, context: tuple[str, ...], nxt: str, weight: float = 1.0) -> None:
        """
        Add ``weight`` to the count of the transition ``context -> nxt``.

        Args:
            context: The last states, oldest first (``()`` for the unigram context).
            nxt: The state (or need) that followed.
            weight: How much to add.

        Raises:
            InvalidStateError: If ``nxt`` contains a reserved character.
        """
        self.add_key(context_key(context), check_name(nxt), weight)

    def add_key(self, key: str, nxt: str, weight: float = 1.0) -> None:
        """
        Like :meth:`add` with the context already encoded by :func:`context_key`.

        Args:
            key: The context node id.
            nxt: The next item (not checked).
            weight: How much to add.
        """
        succ = self._succ.get(key)
        if succ is None:
            self._g.add_node(key, total=0.0)
            succ = self._succ[key]
        data = succ.get(nxt)
        if data is None:
            self._g.add_edge(key, nxt, count=weight)
        else:
            data["count"] += weight
        self._g.nodes[key]["total"] += weight

    def counts(self, context: tuple[str, ...]) -> dict[str, float]:
        """
        Return the counts of what followed ``context``, in O(out-degree).

        Args:
            context: The last states, oldest first.

        Returns:
            A new dict from next item to count (empty for an unseen context).
        """
        return self.counts_key(context_key(context))

    def counts_key(self, key: str) -> dict[str, float]:
        """
        Like :meth:`counts` with the context already encoded.

        Args:
            key: The context node id.

        Returns:
            A new dict from next item to count.
        """
        succ = self._succ.get(key)
        if not succ:
            return {}
        return {n: d["count"] for n, d in succ.items()}

    def total(self, context: tuple[str, ...]) -> float:
        """
        Return the sum of the counts out of ``context`` (0 if unseen).

        Args:
            context: The last states, oldest first.

        Returns:
            The total count.
        """
        key = context_key(context)
        if key not in self._succ:
            return 0.0
        return float(self._g.nodes[key]["total"])

    def has_context(self, context: tuple[str, ...]) -> bool:
        """
        Return whether ``context`` has been seen.

        Args:
            context: The last states, oldest first.

        Returns:
            True if the context has at least one out-edge.
        """
        return bool(self._succ.get(context_key(context)))

    def contexts(self) -> Iterator[tuple[str, ...]]:
        """
        Iterate over the contexts that have out-edges.

        Returns:
            An iterator of context tuples.
        """
        for key, succ in self._succ.items():
            if key.startswith(_CTX) and succ:
                yield key_context(key)

    def edges(self) -> Iterator[tuple[tuple[str, ...], str, float]]:
        """
        Iterate over every transition.

        Returns:
            An iterator of ``(context, next, count)``.
        """
        for key, succ in self._succ.items():
            if key.startswith(_CTX):
                ctx = key_context(key)
                for nxt, data in succ.items():
                    yield ctx, nxt, float(data["count"])

    @property
    def n_edges(self) -> int:
        """
        The number of transitions stored.
        """
        return int(self._g.number_of_edges())

    def __len__(self) -> int:
        return self.n_edges

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternGraph):
            return NotImplemented
        mine = {(c, n): w for c, n, w in self.edges()}
        theirs = {(c, n): w for c, n, w in other.edges()}
        if mine.keys() != theirs.keys():
            return False
        return all(math.isclose(w, theirs[k], rel_tol=1e-9, abs_tol=1e-12) for k, w in mine.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n_ctx = sum(1 for _ in self.contexts())
        return f"PatternGraph(contexts={n_ctx}, edges={self.n_edges})"

    def merge(self, other: PatternGraph) -> PatternGraph:
        """
        Add every count of ``other`` to this graph.

        Args:
            other: Another graph (left unchanged).

        Returns:
            ``self``.
        """
        for key, succ in other._succ.items():
            if key.startswith(_CTX):
                for nxt, data in succ.items():
                    self.add_key(key, nxt, float(data["count"]))
        return self

    def scale(self, factor: float) -> None:
        """
        Multiply every count by ``factor`` (used by time decay).

        Args:
            factor: A positive number.
        """
        for key, succ in self._succ.items():
            if key.startswith(_CTX):
                for data in succ.values():
                    data["count"] *= factor
                self._g.nodes[key]["total"] *= factor

    def remove_edges(self, edges: Iterable[tuple[str, str]]) -> None:
        """
        Remove transitions given as ``(context key, next)`` and drop emptied nodes.

        Args:
            edges: The transitions to drop.
        """
        nodes = self._g.nodes
        touched: set[str] = set()
        for key, nxt in edges:
            data = self._succ.get(key, {}).pop(nxt, None)
            if data is None:
                continue
            self._g._pred[nxt].pop(key, None)  # type: ignore[attr-defined]
            nodes[key]["total"] -= data["count"]
            touched.add(key)
            touched.add(nxt)
        for node in touched:
            if node in self._g and self._g.degree(node) == 0:
                self._g.remove_node(node)

    def to_json(self) -> dict[str, Any]:
        """
        Return the graph as a JSON-ready dict (networkx node-link data plus a version).

        Returns:
            ``{"format", "version", "graph"}``.
        """
        data = nx.node_link_data(self._g, edges="edges")
        return {"format": _FORMAT, "version": FORMAT_VERSION, "graph": data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str | Path = "<json>") -> PatternGraph:
        """
        Build a graph from :meth:`to_json` output.

        Args:
            data: The decoded JSON.
            source: Names the origin in error messages.

        Returns:
            A new graph.

        Raises:
            ModelFileError: If the data is not a graph of a known version.
        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ModelFileError(source, f"not a {_FORMAT} document")
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise ModelFileError(
                source, f"unknown version {version!r} (this code reads version {FORMAT_VERSION})"
            )
        try:
            g: nx.DiGraph[str] = nx.node_link_graph(  # type: ignore[assignment]
                data["graph"], directed=True, multigraph=False, edges="edges"
            )
            count: Any
            for key, nxt, count in g.edges(data="count"):
                if not isinstance(key, str) or not isinstance(nxt, str):
                    raise TypeError("node ids must be strings")
                if not isinstance(count, (int, float)):
                    raise TypeError(f"edge {key!r}->{nxt!r} has no numeric count")
            for node, total in g.nodes(data="total"):
                if (
                    isinstance(node, str)
                    and node.startswith(_CTX)
                    and not isinstance(total, (int, float))
                ):
                    raise TypeError(f"context node {node!r} has no numeric total")
        except (KeyError, TypeError, ValueError, AttributeError, nx.NetworkXError) as exc:
            raise ModelFileError(source, f"corrupt graph data ({exc})") from exc
        graph = cls()
        graph._bind(g)
        return graph

    def save(self, path: str | Path) -> None:
        """
        Write the graph as versioned JSON, atomically (a temporary file, then a rename).

        Args:
            path: Where to write.
        """
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> PatternGraph:
        """
        Read a graph written by :meth:`save`.

        Args:
            path: The file.

        Returns:
            The graph.

        Raises:
            ModelFileError: If the file is corrupt or of an unknown version.
        """
        return cls.from_json(read_json(path), source=path)


def check_document(data: Any, fmt: str, version: int, source: str | Path) -> None:
    """
    Check that decoded JSON is a ``fmt`` document of this ``version``.

    Raises:
        ModelFileError: It is not, naming ``source`` and what is wrong.
    """
    if not isinstance(data, Mapping) or data.get("format") != fmt:
        raise ModelFileError(source, f"not a {fmt} document")
    if data.get("version") != version:
        raise ModelFileError(
            source, f"unknown version {data.get('version')!r} (this code reads version {version})"
        )


def atomic_write_json(path: str | Path, data: Any) -> None:
    """
    Write ``data`` as JSON to ``path`` through a temporary file and :func:`os.replace`.

    Args:
        path: The destination.
        data: Anything :func:`json.dump` accepts.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> Any:
    """
    Read a JSON file, turning decoding failures into :class:`ModelFileError`.

    Args:
        path: The file.

    Returns:
        The decoded document.

    Raises:
        ModelFileError: If the file is not valid UTF-8 JSON.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"not valid JSON ({exc})") from exc

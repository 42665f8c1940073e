"""
The conversation-pattern graph: transition counts between contexts and next states.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from ._keys import CTX, check_name, context_key, key_context
from ._persistence import JsonModel, check_document, map_corrupt_data, number

__all__ = ["FORMAT_VERSION", "PatternGraph"]

#: Version of the JSON layout written by :meth:`PatternGraph.save`.
FORMAT_VERSION = 1
_FORMAT = "graph.PatternGraph"


class PatternGraph(JsonModel):
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
            if key.startswith(CTX) and succ:
                yield key_context(key)

    def edges(self) -> Iterator[tuple[tuple[str, ...], str, float]]:
        """
        Iterate over every transition.

        Returns:
            An iterator of ``(context, next, count)``.
        """
        for key, succ in self._succ.items():
            if key.startswith(CTX):
                ctx = key_context(key)
                for nxt, data in succ.items():
                    yield ctx, nxt, float(data["count"])

    @property
    def n_edges(self) -> int:
        """
        The number of transitions stored.
        """
        return sum(map(len, self._succ.values()))  # not networkx's: its degree view

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
            if key.startswith(CTX):
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
            if key.startswith(CTX):
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
        pred: dict[str, dict[str, Any]] = self._g._pred  # type: ignore[attr-defined]
        for node in touched:  # the raw dicts: networkx's degree view would hold the graph
            if node in self._succ and not self._succ[node] and not pred[node]:
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
        check_document(data, _FORMAT, FORMAT_VERSION, source)
        with map_corrupt_data(source, "graph data", nx.NetworkXError):
            g: nx.DiGraph[str] = nx.node_link_graph(  # type: ignore[assignment]
                data["graph"], directed=True, multigraph=False, edges="edges"
            )
            _check_counts(g)
        graph = cls()
        graph._bind(g)
        return graph


def _check_counts(g: nx.DiGraph[str]) -> None:
    """
    Check that every node id is a string, every edge has a numeric ``count`` and every
    context node a numeric ``total``, each finite (:func:`~graph._persistence.number`).

    Raises:
        TypeError: If one does not.
        ValueError: If a count is not finite.
    """
    succ: dict[Any, dict[Any, dict[str, Any]]] = g._succ  # type: ignore[attr-defined]
    for key, nexts in succ.items():  # not g.edges: that view would hold the graph
        for nxt, data in nexts.items():
            if not isinstance(key, str) or not isinstance(nxt, str):
                raise TypeError("node ids must be strings")
            count = data.get("count")
            if not isinstance(count, (int, float)):
                raise TypeError(f"edge {key!r}->{nxt!r} has no numeric count")
            number(count)
    for node, total in g.nodes(data="total"):
        if isinstance(node, str) and node.startswith(CTX):
            if not isinstance(total, (int, float)):
                raise TypeError(f"context node {node!r} has no numeric total")
            number(total)

"""
Tests of PatternGraph: counts, merge, persistence.
"""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import pytest

from graph import InvalidStateError, ModelFileError, PatternGraph
from graph._graph import context_key


def _small() -> PatternGraph:
    """
    Return a graph with three transitions.
    """
    g = PatternGraph()
    g.add(("a",), "b")
    g.add(("a",), "b", 2.0)
    g.add(("a", "b"), "c", 0.5)
    return g


def test_counts_and_total() -> None:
    """
    Counts add up per edge and the total per context.
    """
    g = _small()
    assert {"b": 3.0} == g.counts(("a",))
    assert {"c": 0.5} == g.counts(("a", "b"))
    assert {} == g.counts(("zzz",))
    assert 3.0 == g.total(("a",))
    assert 2 == g.n_edges


def test_merge_adds_counts() -> None:
    """
    Merging adds the other graph's counts and leaves it unchanged.
    """
    g, h = _small(), _small()
    h.add(("x",), "y")
    g.merge(h)
    assert {"b": 6.0} == g.counts(("a",))
    assert {"y": 1.0} == g.counts(("x",))
    assert {"b": 3.0} == h.counts(("a",))


def test_reserved_characters_rejected() -> None:
    """
    A state holding a separator character is refused with a clear error.
    """
    with pytest.raises(InvalidStateError, match="reserved"):
        PatternGraph().add(("a",), "b\x1fc")


def test_save_load_round_trip(tmp_path: Path) -> None:
    """
    A saved graph loads back equal, and no temporary file is left behind.
    """
    g = _small()
    path = tmp_path / "g.json"
    g.save(path)
    assert g == PatternGraph.load(path)
    assert ["g.json"] == [p.name for p in tmp_path.iterdir()]


def test_load_unknown_version_names_file(tmp_path: Path) -> None:
    """
    An unknown format version is refused, naming the file and the version.
    """
    path = tmp_path / "future.json"
    data = _small().to_json()
    data["version"] = 99
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"future\.json.*unknown version 99"):
        PatternGraph.load(path)


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"format": "graph.PatternGraph", "version": 1, "graph": {"nodes": 3}}', "[]"],
)
def test_load_corrupt_file_names_file(tmp_path: Path, content: str) -> None:
    """
    Corrupt content raises ModelFileError (a ValueError) naming the file.
    """
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"broken\.json") as info:
        PatternGraph.load(path)
    assert isinstance(info.value, ValueError)


def test_a_count_that_is_not_finite_is_refused_naming_the_file(tmp_path: Path) -> None:
    """
    A count the decoder reads but no graph holds (``NaN``, ``Infinity``) is refused as
    corrupt, naming the file, as every count of a model file is.
    """
    path = tmp_path / "nan.json"
    _small().save(path)
    text = path.read_text(encoding="utf-8")
    assert '"count":0.5' in text
    path.write_text(text.replace('"count":0.5', '"count":NaN'), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"nan\.json.*a count of nan"):
        PatternGraph.load(path)


def test_a_graph_is_freed_by_reference_counting_alone(tmp_path: Path) -> None:
    """
    A graph that was loaded, pruned and read goes as soon as nothing refers to it, not
    at the cycle collector's next pass (networkx's degree and edge views refer back to
    their graph: a long-running server whose models come and go would keep them).
    """
    path = tmp_path / "g.json"
    _small().save(path)
    g = PatternGraph.load(path)
    g.remove_edges([(context_key(("a", "b")), "c")])
    counts, edges = g.counts(("a",)), g.n_edges
    gone = weakref.ref(g.nx_graph)
    was = gc.isenabled()
    gc.disable()
    try:
        del g
        assert gone() is None
    finally:
        if was:
            gc.enable()
    assert ({"b": 3.0}, 1) == (counts, edges)

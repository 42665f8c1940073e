"""
Tests of StateEncoder: naming the state of a request from its text.
"""

from __future__ import annotations

import pytest

from graph import StateEncoder


def test_state_encoder_with_labels() -> None:
    """
    Nearest centroid maps new requests to the labelled state they resemble.
    """
    texts = ["book a table for two", "reserve a table tonight", "weather in paris",
             "will it rain tomorrow"]  # fmt: skip
    labels = ["reserve", "reserve", "forecast", "forecast"]
    enc = StateEncoder().fit(texts, labels)
    assert ["reserve", "forecast"] == enc.transform(["a table for four", "rain in paris"])


def test_state_encoder_clusters_without_labels() -> None:
    """
    Without labels, similar texts share a cluster and different ones do not.
    """
    texts = ["book a table"] * 5 + ["weather forecast rain"] * 5
    enc = StateEncoder(n_states=2).fit(texts)
    a, b = enc.transform(["book a table", "weather forecast rain"])
    assert a != b
    assert a.startswith("cluster:")
    with pytest.raises(ValueError, match="n_states"):
        StateEncoder(n_states=50).fit(texts)

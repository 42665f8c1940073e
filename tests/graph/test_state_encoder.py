"""
Tests of StateEncoder: naming the state of a request from its text.
"""

from __future__ import annotations

import json

import pytest

from graph import ModelFileError, StateEncoder


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


@pytest.mark.parametrize("labelled", [True, False])
def test_a_saved_encoder_names_texts_as_the_fitted_one(labelled: bool) -> None:
    """
    Through JSON (no pickle), the encoder names every text as before, labelled
    (nearest centroid) or clustered; a corrupt document is refused by name.
    """
    texts = ["book a table for two", "reserve a table tonight", "weather in paris",
             "will it rain tomorrow", "a table at eight", "sunny or rainy"]  # fmt: skip
    labels = ["reserve", "reserve", "forecast", "forecast", "reserve", "forecast"]
    enc = StateEncoder(n_states=2).fit(texts, labels if labelled else None)
    probe = [*texts, "a table in the rain", "paris", ""]
    again = StateEncoder.from_json(json.loads(json.dumps(enc.to_json())))
    assert enc.transform(probe) == again.transform(probe)
    broken = {**enc.to_json(), "centroids": "AAAA"}
    with pytest.raises(ModelFileError, match="corrupt state encoder"):
        StateEncoder.from_json(broken, source="m.json")

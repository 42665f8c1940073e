"""
Representations: levels never grow.
"""

from __future__ import annotations

import pytest

from preload.compression import Level, Representation


def test_levels_must_not_grow() -> None:
    """
    A representation whose smaller level has more tokens is rejected.
    """
    with pytest.raises(ValueError, match="larger than the level above"):
        Representation(
            key="k",
            source="s",
            category="c",
            levels=(
                Level(name="full", text="a", tokens=1, quality=1.0),
                Level(name="minimal", text="a b", tokens=2, quality=1.0),
            ),
        )

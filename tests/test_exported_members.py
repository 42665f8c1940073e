"""
The public surface: each package's ``__all__`` is sorted and names exactly what it
defines publicly (httpx's ``tests/test_exported_members.py``).
"""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "graph",
    "preload",
    "preload.caches",
    "preload.compression",
    "preload.engine",
    "preload.experiments",
    "preload.history",
    "preload.integrations",
    "preload.integrations.langchain",
    "preload.integrations.openai_agents",
    "preload.integrations.pydantic_ai",
    "preload.learning",
    "preload.loading",
    "preload.replay",
    "preload.window",
]


def _isort_style(name: str) -> tuple[int, str]:
    """
    The order ruff's RUF022 keeps ``__all__`` in: constants, then classes, then the rest.
    """
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    """
    Every public name a package defines is in its sorted ``__all__``, and nothing else is.
    """
    module = importlib.import_module(name)
    defined = {
        member
        for member in dir(module)
        if not member.startswith("_")
        and member != "annotations"  # from __future__
        and not isinstance(getattr(module, member), types.ModuleType)
    }
    assert sorted(module.__all__, key=_isort_style) == module.__all__
    assert defined == set(module.__all__)


def test_the_top_level_keeps_what_applications_call() -> None:
    """
    Solvers, replay internals and the preloader's parts live in their subpackages.
    """
    import preload

    for moved in ("select", "select_exact", "Preloader", "replay", "MemoryCache", "Level"):
        assert moved not in preload.__all__
    for kept in ("PreloadEngine", "EngineConfig", "CompressedConversation", "MetricsSnapshot"):
        assert kept in preload.__all__

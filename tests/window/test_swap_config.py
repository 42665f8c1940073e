"""
The ``[swap]`` section: validated, loaded from TOML, and taken by the swap controller.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from preload import ConfigError, EngineConfig, TiktokenCounter
from preload._config import SwapConfig
from preload.compression import Level, Representation
from preload.window import HierarchicalBudgetManager, SwapController


def _item(key: str, counter: TiktokenCounter) -> Representation:
    text = f"Notes on {key}: a small item that fits any window."
    level = Level(name="full", text=text, tokens=counter.count(text), quality=1.0)
    return Representation(key=key, source="kb", category="domain_knowledge", levels=(level,))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[swap]\nswap_threshold = 1.5\n", "swap.swap_threshold"),
        ("[swap]\nswap_threshold = -0.1\n", "swap.swap_threshold"),
        ("[swap]\nswap_threshold = 'high'\n", "swap.swap_threshold"),
        ("[swap]\nexact_items = -1\n", "swap.exact_items"),
        ("[swap]\nexact_items = 2.5\n", "swap.exact_items"),
        ("[swap]\nthreshold = 0.3\n", "swap.threshold"),
    ],
)
def test_bad_swap_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    """
    An invalid or unknown ``[swap]`` key is an error that names it.
    """
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        EngineConfig.from_toml(path)


def test_the_defaults_are_todays_values() -> None:
    """
    Without a ``[swap]`` section the controller swaps in at 0.2 and always uses the
    greedy knapsack, as before the section existed.
    """
    assert (0.2, 0) == (EngineConfig().swap.swap_threshold, EngineConfig().swap.exact_items)


def test_toml_values_reach_the_swap_controller(tmp_path: Path, counter: TiktokenCounter) -> None:
    """
    ``[swap]`` from a file sets the controller's threshold and exact size, and the
    threshold decides which predicted items may swap in.
    """
    path = tmp_path / "s.toml"
    path.write_text("[swap]\nswap_threshold = 0.5\nexact_items = 4\n")
    config = EngineConfig.from_toml(path)
    swap = SwapController(HierarchicalBudgetManager(config.budget), counter, config=config.swap)
    assert (0.5, 4) == (swap.swap_threshold, swap.exact_items)
    optional = [(_item("kb:low", counter), 0.3), (_item("kb:high", counter), 0.6)]
    ctx = swap.assemble("s", request="hotels", required=[], optional=optional)
    assert {"kb:high"} == {item.key for item in ctx.items if item.key.startswith("kb:")}
    assert "below the swap cost 0.50" in ctx.explain()


def test_keywords_override_the_config(counter: TiktokenCounter) -> None:
    """
    The controller's keywords still work, and win over its config.
    """
    budget = HierarchicalBudgetManager()
    assert (0.2, 0) == (
        SwapController(budget, counter).swap_threshold,
        SwapController(budget, counter).exact_items,
    )
    swap = SwapController(
        budget, counter, config=SwapConfig(swap_threshold=0.5, exact_items=2), exact_items=3
    )
    assert (0.5, 3) == (swap.swap_threshold, swap.exact_items)
    with pytest.raises(ConfigError, match=re.escape("'swap.swap_threshold'")):
        SwapController(budget, counter, swap_threshold=1.5)

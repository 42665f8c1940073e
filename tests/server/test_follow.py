"""
Replicas following each other's writes: the store announces each accepted write with
its turn and version, and a replica takes the next write after its copy of a session
into it, its history recorded in the background rather than at the next request. A
replica whose copy is the session as last written changes it without the lease, at
that version.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
import redis.asyncio

from preload.server._app import ServerSettings, create_app
from preload.server._follow import Follower
from preload.server._keys import append_key
from preload.server._store import Changed, SessionStore, StoreConflict, StoredSession
from preload.server._store_memory import MemorySessionStore
from preload.server._store_redis import RedisSessionStore

from .conftest import app_client, write_config

if TYPE_CHECKING:
    from ..conftest import RedisServer


@asynccontextmanager
async def _store(
    kind: str, redis_server: RedisServer, max_turns: int | None = None
) -> AsyncIterator[SessionStore]:
    store: SessionStore = (
        MemorySessionStore(max_turns=max_turns)
        if kind == "memory"
        else RedisSessionStore(redis_server.url, max_turns=max_turns)
    )
    try:
        yield store
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_each_accepted_write_is_announced_with_its_turn_and_version(
    kind: str, redis_server: RedisServer
) -> None:
    """
    An append and a rewrite of the last turn are announced in order, each with the
    session's turn count and version after it; a refused write is not announced and
    does not count.
    """
    async with _store(kind, redis_server) as store, store.changes() as changes:
        async with store.hold("acme", "s1") as held:
            assert 1 == await held.append({"text": "hi"}, expected=0, epoch="e1", user="u")
        async with store.hold("acme", "s1") as held:
            with pytest.raises(StoreConflict):
                await held.append({"text": "late"}, expected=0, epoch="e1", user="u")
        async with store.hold("acme", "s1") as held:
            turn = {"text": "hi", "system": "hello"}
            assert 2 == await held.update_last(turn, count=1, epoch="e1")
        async with store.hold("acme", "s1") as held:
            assert (1, 2) == (held.stored.count, held.stored.version)
        got = [await anext(aiter(changes)) for _ in range(2)]
    assert [
        Changed("acme", "s1", "e1", 1, 1, {"text": "hi"}),
        Changed("acme", "s1", "e1", 1, 2, {"text": "hi", "system": "hello"}),
    ] == got


def test_a_change_is_decoded_from_json_only_and_a_bad_one_is_named() -> None:
    """
    The published form round-trips; anything else is a ValueError that says so.
    """
    changed = Changed("acme", "s1", "e1", 3, 7, {"text": "hi", "system": None})
    assert changed == Changed.decode(changed.encode())
    for bad in ["", "[1,2]\n{}", '["a","s","e",0,1]\n{}', '["a","s","e",1,1]\n[]', "x\ny"]:
        with pytest.raises(ValueError, match="not a session change"):
            Changed.decode(bad)


async def test_a_bad_message_on_the_channel_is_logged_and_skipped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A listener goes on past a message that is not a change (logged), to the next one.
    """
    store = RedisSessionStore(redis_server.url)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with store.changes() as changes:
            await client.publish(store.channel, b"\x80 not json")
            async with store.hold("acme", "s1") as held:
                await held.append({"text": "hi"}, expected=0, epoch="e1", user=None)
            with caplog.at_level(logging.WARNING, logger="preload.server._store"):
                got = await anext(aiter(changes))
    finally:
        await client.aclose()
        await store.aclose()
    assert ("s1", 1) == (got.session_id, got.version)
    assert "not a session change" in caplog.text


@asynccontextmanager
async def _replicas(
    tmp_path: Path,
    redis_server: RedisServer,
    follow: bool,
    tools: str | None = None,
    turns: int = 1000,
) -> AsyncIterator[tuple[list[Any], list[httpx.AsyncClient]]]:
    """
    Two apps of ``preload serve`` in this process on one real Redis (with ``tools``,
    as ``--tools`` takes them; ``turns``, ``limits.max_session_turns``), and a client
    of each with tenant acme's key.
    """
    keys = tmp_path / "keys.jsonl"
    key = append_key(keys, "acme")
    config = write_config(
        tmp_path / "server.toml",
        redis_server.url,
        more=f"follow = {str(follow).lower()}",
        turns=turns,
    )
    settings = ServerSettings(config=str(config), keys=str(keys), tools=tools)
    apps = [create_app(settings) for _ in range(2)]
    async with AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(await stack.enter_async_context(app_client(app, key)))
        yield [app.state.server for app in apps], clients


@asynccontextmanager
async def _memory_replica(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """
    One app of ``preload serve`` in this process on the memory store, and a client
    with tenant acme's key.
    """
    keys = tmp_path / "keys.jsonl"
    key = append_key(keys, "acme")
    config = tmp_path / "server.toml"
    config.write_text('[cache]\nbackend = "memory"\n', encoding="utf-8")
    app = create_app(ServerSettings(config=str(config), keys=str(keys)))
    async with app.router.lifespan_context(app), app_client(app, key) as client:
        yield app, client


async def _turn(client: httpx.AsyncClient, text: str, reply: str) -> dict[str, Any]:
    for _ in range(5):  # a 503 is retried, as clients do (a pool reconnecting to Redis)
        answer = await client.post("/v1/sessions/s/requests", json={"text": text})
        if answer.status_code != 503:
            break
    assert 200 == answer.status_code, answer.text
    assert 204 == (await client.post("/v1/sessions/s/replies", json={"text": reply})).status_code
    return dict(answer.json())


async def test_a_replica_follows_the_other_replicas_writes_to_the_sessions_it_holds(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    B serves a session's first turn, A its second: B takes A's request and reply into
    its copy as they are written (and no write of its own), its learner records the
    exchange, and B's next request of the session has nothing left to catch up on.
    A session B never served is not followed.
    """
    async with _replicas(tmp_path, redis_server, follow=True) as (servers, clients):
        a, b = servers
        with anyio.fail_after(30):
            await a.follower.wait_until(lambda: a.follower.listening)
            await b.follower.wait_until(lambda: b.follower.listening)
            await _turn(clients[1], "a hotel in Lisbon", "Hotel Avenida is free.")
            await _turn(clients[0], "book it for two nights", "Booked.")
            other = await clients[0].post("/v1/sessions/t/requests", json={"text": "trains"})
            assert 200 == other.status_code
            await b.follower.wait_until(lambda: b.follower.received == 5)  # B's 2, A's 3
            engine = b.gates["acme"].engine
            assert ["Hotel Avenida is free.", "Booked."] == [
                t["system"] for t in engine.turns_of("s")
            ]
            assert [] == engine.turns_of("t")
            await engine.wait_idle()
            before = engine.statistics().history_catch_ups
            third = await clients[1].post("/v1/sessions/s/requests", json={"text": "thanks"})
        metrics = (await clients[1].get("/metrics")).text
    assert 2 == b.follower.followed
    assert before == engine.statistics().history_catch_ups  # recorded in the background
    assert "Booked." in third.json()["text"]
    assert "preload_changes_followed_total 2.0" in metrics
    assert "preload_changes_received_total 5.0" in metrics
    assert 'preload_history_catch_ups_total{tenant="acme"}' in metrics


async def test_without_following_the_next_request_catches_up_on_its_path(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    With ``server.follow = false`` nothing listens, and the exchange another replica
    served is recorded by the next request here, which counts it.
    """
    async with _replicas(tmp_path, redis_server, follow=False) as (servers, clients):
        _, b = servers
        assert b.follower is None
        with anyio.fail_after(30):
            await _turn(clients[1], "a hotel in Lisbon", "Hotel Avenida is free.")
            await _turn(clients[0], "book it for two nights", "Booked.")
            engine = b.gates["acme"].engine
            await engine.wait_idle()
            before = engine.statistics().history_catch_ups
            third = await clients[1].post("/v1/sessions/s/requests", json={"text": "thanks"})
    assert before + 1 == engine.statistics().history_catch_ups
    assert "Booked." in third.json()["text"]


async def test_a_replica_takes_a_long_session_up_from_its_last_turns(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    With ``limits.max_session_turns`` 2, a replica that never held a session of six
    turns reads its last two from the store, not all six: its history holds their
    exchanges and not the first one's, turn indexes still count every turn, and the
    store keeps the last two as well, saying which turn is the first it gives.
    """
    async with _replicas(tmp_path, redis_server, follow=False, turns=2) as (servers, clients):
        _, b = servers
        with anyio.fail_after(30):
            for i in range(5):
                await _turn(clients[0], f"turn {i}", "Rintaro is free." if i == 0 else f"r{i}")
            sixth = await _turn(clients[1], "turn 5", "r5")
            engine = b.gates["acme"].engine
            kept = [t["text"] for t in engine.turns_of("s")]
            last = [t["text"] for t in engine.turns_of("s", 5)]
            stored = (await clients[1].get("/v1/sessions/s")).json()
    assert 5 == sixth["turn"]
    assert "r3" in sixth["text"] and "r4" in sixth["text"] and "Rintaro" not in sixth["text"]
    assert (["turn 5"], "turn 5") == (last, kept[-1]) and len(kept) <= 3
    assert (4, ["turn 4", "turn 5"]) == (stored["first_turn"], [t["text"] for t in stored["turns"]])


async def test_a_replica_whose_copy_the_store_has_moved_past_takes_up_the_last_turns(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    With ``limits.max_session_turns`` 2, B serves a session's first turn, then A four
    more: the store no longer holds the turns that follow B's copy. B's next turn
    drops its copy and takes the session up from the last two turns, at their indexes.
    """
    async with _replicas(tmp_path, redis_server, follow=False, turns=2) as (servers, clients):
        _, b = servers
        with anyio.fail_after(30):
            await _turn(clients[1], "turn 0", "Rintaro is free.")
            for i in range(1, 5):
                await _turn(clients[0], f"turn {i}", f"r{i}")
            sixth = await _turn(clients[1], "turn 5", "r5")
            engine = b.gates["acme"].engine
            kept = {i: engine.turns_of("s", i)[0]["text"] for i in (4, 5)}
    assert 5 == sixth["turn"]
    assert {4: "turn 4", 5: "turn 5"} == kept
    assert "r4" in sixth["text"] and "Rintaro" not in sixth["text"]


async def test_a_write_that_does_not_follow_the_copy_is_not_taken(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    A change of another epoch (the session made anew), one that skips a version (a
    write missed) or an old one leaves the replica's copy as it was (the session's
    next request there reads what it lacks from the store); the next write is taken,
    but none once the copy is to be read again.
    """
    async with _replicas(tmp_path, redis_server, follow=True) as (servers, clients):
        _, b = servers
        with anyio.fail_after(30):
            await _turn(clients[1], "a hotel in Lisbon", "Hotel Avenida is free.")
        stored = await b.store.read("acme", "s")
        gate = b.gates["acme"]
        turn = {"text": "book it", "state": None, "needs": [], "system": None}
        epoch, version = stored.epoch, stored.version
        for changed in [
            Changed("acme", "s", "another", 2, version + 1, turn),
            Changed("acme", "s", epoch, 2, version + 2, turn),
            Changed("acme", "s", epoch, 1, version, turn),
            Changed("acme", "s", epoch, 3, version + 1, turn),
        ]:
            assert not gate.follow(changed), changed
        assert ["a hotel in Lisbon"] == [t["text"] for t in gate.engine.turns_of("s")]
        assert gate.follow(Changed("acme", "s", epoch, 2, version + 1, turn))
        assert ["a hotel in Lisbon", "book it"] == [t["text"] for t in gate.engine.turns_of("s")]
        gate.read_again("s")  # its copy may differ from the store's: not followed
        assert not gate.follow(Changed("acme", "s", epoch, 2, version + 2, turn))


async def test_following_resumes_once_redis_is_back(
    tmp_path: Path, own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A replica whose listening broke with Redis says so once (each of the two here),
    listens again once Redis is back, and follows the writes made from then on.
    """
    async with _replicas(tmp_path, own_redis_server, follow=True) as (servers, clients):
        a, b = servers
        follower = b.follower
        with anyio.fail_after(60), caplog.at_level(logging.INFO, "preload.server._follow"):
            await follower.wait_until(lambda: follower.listening)
            await anyio.to_thread.run_sync(own_redis_server.stop)
            await follower.wait_until(lambda: not follower.listening)
            await anyio.to_thread.run_sync(own_redis_server.start)
            await follower.wait_until(lambda: follower.subscriptions == 2)
            await a.follower.wait_until(lambda: a.follower.subscriptions == 2)
            await _turn(clients[1], "a hotel in Lisbon", "Hotel Avenida is free.")
            await _turn(clients[0], "book it for two nights", "Booked.")
            await follower.wait_until(lambda: follower.followed == 2)
    warnings = [r for r in caplog.records if "not following" in r.getMessage()]
    again = [r for r in caplog.records if "writes again" in r.getMessage()]
    assert (2, 2) == (len(warnings), len(again))


class _BrokenGate:
    """
    A gate whose following fails once (failure injection), then counts.
    """

    def __init__(self) -> None:
        self.calls = 0

    def follow(self, changed: Changed) -> bool:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug")
        return True


async def test_a_change_that_fails_to_be_followed_is_logged_and_the_next_one_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    An error while following one change is logged; the follower goes on listening.
    """
    store = MemorySessionStore()
    gate = _BrokenGate()
    follower = Follower(store, {"acme": gate})  # type: ignore[dict-item]
    async with anyio.create_task_group() as tg:
        tg.start_soon(follower.run)
        with anyio.fail_after(10):
            await follower.wait_until(lambda: follower.listening)
            for n in range(2):
                async with store.hold("acme", "s") as held:
                    await held.append({"text": f"turn {n}"}, expected=n, epoch="e", user=None)
            await follower.wait_until(lambda: follower.received == 2)
        tg.cancel_scope.cancel()
    assert (2, 1, True) == (gate.calls, follower.followed, follower.listening is False)
    assert "following a write to session s failed" in caplog.text


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_store_keeps_a_sessions_last_turns_and_counts_them_all(
    kind: str, redis_server: RedisServer
) -> None:
    """
    A store keeping 3 turns of a session of 5 gives the last 3, its count still 5: turns
    asked from an index count from the session's first turn, and start at the first
    kept when asked from before it. Writes still check the whole count.
    """
    async with _store(kind, redis_server, max_turns=3) as store:
        for i in range(5):
            async with store.hold("acme", "s1") as held:
                await held.append({"text": f"t{i}"}, expected=i, epoch="e1", user="u")
        async with store.hold("acme", "s1", start=4) as held:
            assert (5, 4, ["t4"]) == (
                held.stored.count,
                held.stored.first,
                [t["text"] for t in held.stored.turns],
            )
            with pytest.raises(StoreConflict):
                await held.append({"text": "t3"}, expected=3, epoch="e1", user=None)
        async with store.hold("acme", "s1") as held:
            assert 6 == await held.update_last({"text": "t4", "system": "r4"}, count=5, epoch="e1")
        reads = [await store.read("acme", "s1", start) for start in (0, 1, 3, -2, 9)]
    assert [(2, ["t2", "t3", "t4"]), (2, ["t2", "t3", "t4"]), (3, ["t3", "t4"])] == [
        (r.first, [t["text"] for t in r.turns]) for r in reads[:3]
    ]
    assert [(3, 2), (5, 0)] == [(r.first, len(r.turns)) for r in reads[3:]]
    assert {5} == {r.count for r in reads} and "r4" == reads[0].turns[-1]["system"]


async def test_a_session_stored_before_its_count_was_kept_is_counted_by_its_list(
    redis_server: RedisServer,
) -> None:
    """
    On Redis, a session written before the store kept its turn count in the meta is
    counted by its list's length, and takes the next turn as before.
    """
    async with _store("redis", redis_server, max_turns=3) as store:
        assert isinstance(store, RedisSessionStore)
        for i in range(2):
            async with store.hold("acme", "old") as held:
                await held.append({"text": f"t{i}"}, expected=i, epoch="e1", user="u")
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            await client.hdel(store.keys("acme", "old")[1], "count")
        finally:
            await client.aclose()
        assert 2 == (await store.read("acme", "old")).count
        async with store.hold("acme", "old") as held:
            assert 3 == await held.append({"text": "t2"}, expected=2, epoch="e1", user=None)
        stored = await store.read("acme", "old", 1)
    assert (3, ["t1", "t2"]) == (stored.count, [t["text"] for t in stored.turns])


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_write_without_the_lease_needs_the_version_known_and_a_free_lease(
    kind: str, redis_server: RedisServer
) -> None:
    """
    A write without the lease goes through only at the session's current version and
    while nobody holds its lease; a refused one changes nothing and is not announced.
    """
    async with _store(kind, redis_server) as store, store.changes() as changes:
        async with store.hold("acme", "s1") as held:
            await held.append({"text": "hi"}, expected=0, epoch="e1", user="u")
        known = StoredSession("e1", None, 1, [], 1)
        behind = store.unleased("acme", "s1", StoredSession("e1", None, 1, [], 0))
        with pytest.raises(StoreConflict):
            await behind.update_last({"text": "hi", "system": "late"}, count=1, epoch="e1")
        async with store.hold("acme", "s1"):
            with pytest.raises(StoreConflict):
                await store.unleased("acme", "s1", known).append(
                    {"text": "held"}, expected=1, epoch="e1", user=None
                )
        written = store.unleased("acme", "s1", known)
        assert 2 == await written.append({"text": "b"}, expected=1, epoch="e1", user=None)
        answered = store.unleased("acme", "s1", StoredSession("e1", None, 2, [], 2))
        assert 3 == await answered.update_last({"text": "b", "system": "y"}, count=2, epoch="e1")
        stored = await store.read("acme", "s1")
        got = [await anext(aiter(changes)) for _ in range(3)]
    assert (2, 3) == (stored.count, stored.version)
    assert [None, "y"] == [t.get("system") for t in stored.turns]
    assert [(1, 1), (2, 2), (2, 3)] == [(c.count, c.version) for c in got]


async def test_a_change_is_written_without_the_lease_and_served_again_when_refused(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    A replica that made a session's last write serves its next change from its copy
    and writes it without the lease. When another replica wrote meanwhile (unseen
    here: nothing follows), that write is refused and the change served again under
    the lease, from the store: accepted in its place, with the other replica's
    exchange in its window. Each replica counts both on /metrics.
    """
    async with _replicas(tmp_path, redis_server, follow=False) as (servers, clients):
        a, b = servers
        first, second = b.gates["acme"], a.gates["acme"]
        with anyio.fail_after(30):
            await _turn(clients[1], "a hotel in Lisbon", "Hotel Avenida is free.")
            assert (1, 0) == (first.unleased, first.conflicts)  # the reply
            await _turn(clients[0], "book it for two nights", "Booked.")
            assert (1, 0) == (second.unleased, second.conflicts)
            third = await clients[1].post("/v1/sessions/s/requests", json={"text": "thanks"})
            metrics = (await clients[1].get("/metrics")).text
            stored = await b.store.read("acme", "s")
    assert (200, 2) == (third.status_code, third.json()["turn"])
    assert (2, 1) == (first.unleased, first.conflicts)
    assert "Booked." in third.json()["text"]
    assert ["a hotel in Lisbon", "book it for two nights", "thanks"] == [
        t["text"] for t in stored.turns
    ]
    assert ["Hotel Avenida is free.", "Booked.", None] == [t["system"] for t in stored.turns]
    assert 'preload_changes_unleased_total{tenant="acme"} 2.0' in metrics
    assert 'preload_change_conflicts_total{tenant="acme"} 1.0' in metrics


async def test_a_reply_to_a_request_another_replica_just_served_lands_on_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    A reply reaching a replica whose copy of the session ends with an answered turn
    (the request it answers was served by the other replica a moment ago, not yet
    seen here) is served under the lease, from the store: it answers that request and
    leaves the earlier answer as it was.
    """
    async with _replicas(tmp_path, redis_server, follow=False) as (servers, clients):
        _, b = servers
        with anyio.fail_after(30):
            await _turn(clients[1], "a hotel in Lisbon", "Hotel Avenida is free.")
            asked = await clients[0].post("/v1/sessions/s/requests", json={"text": "book it"})
            assert 200 == asked.status_code
            replied = await clients[1].post("/v1/sessions/s/replies", json={"text": "Booked."})
            stored = await b.store.read("acme", "s")
            gate = b.gates["acme"]  # the replicas close their engines as they stop
            copy = gate.engine.turns_of("s")
    assert 204 == replied.status_code
    assert ["Hotel Avenida is free.", "Booked."] == [t["system"] for t in stored.turns]
    assert ["Hotel Avenida is free.", "Booked."] == [t["system"] for t in copy]
    assert 1 == gate.conflicts


async def test_a_delete_waits_for_a_change_another_replica_holds_the_lease_for(
    tmp_path: Path,
) -> None:
    """
    A delete is served under the session's lease even when the replica knows the
    session as last written: it waits for the change another replica holds the lease
    for, and the session is gone once that change is written.
    """
    got: dict[str, httpx.Response] = {}
    async with _memory_replica(tmp_path) as (app, client):
        store = app.state.server.store
        with anyio.fail_after(30):
            await _turn(client, "a hotel in Lisbon", "Hotel Avenida is free.")

            async def delete() -> None:
                got["deleted"] = await client.delete("/v1/sessions/s")

            # The replica's loop monitors wake every 10 and 50 ms, so that
            # anyio.wait_all_tasks_blocked could take seconds to find the delete
            # blocked: the store's own hold says when the delete asks for the lease.
            asked = anyio.Event()
            hold = store.hold

            @asynccontextmanager
            async def observed(tenant: str, session_id: str, start: int = 0) -> Any:
                asked.set()
                async with hold(tenant, session_id, start) as held:
                    yield held

            async with anyio.create_task_group() as tg, store.hold("acme", "s") as held:
                store.hold = observed
                tg.start_soon(delete)
                await asked.wait()
                waited = "deleted" not in got
                turn = {"text": "and a car", "system": None}
                await held.append(turn, expected=1, epoch=held.stored.epoch, user=None)
        left = await store.read("acme", "s")
    assert waited, got["deleted"].text
    assert 204 == got["deleted"].status_code
    assert 0 == left.count


async def test_after_a_retried_request_the_next_one_reads_the_session_again(
    tmp_path: Path,
) -> None:
    """
    A retry of a request the store accepted is served again without a write, so the
    replica's copy of the session may differ from the store's (here the retry came
    after the reply): the next change reads the session under the lease, and its
    window holds the reply.
    """
    first = {"text": "a hotel in Lisbon", "request_id": "r1"}
    async with _memory_replica(tmp_path) as (app, client):
        with anyio.fail_after(30):
            assert 200 == (await client.post("/v1/sessions/s/requests", json=first)).status_code
            reply = {"text": "Hotel Avenida is free."}
            assert 204 == (await client.post("/v1/sessions/s/replies", json=reply)).status_code
            again = await client.post("/v1/sessions/s/requests", json=first)
            after = await client.post("/v1/sessions/s/requests", json={"text": "book it"})
            stored = await app.state.server.store.read("acme", "s")
    assert (0, True) == (again.json()["turn"], again.json()["repeated"])
    assert (200, 1) == (after.status_code, after.json()["turn"])
    assert "Hotel Avenida is free." in after.json()["text"]
    assert ["Hotel Avenida is free.", None] == [t["system"] for t in stored.turns]


async def test_a_tool_call_is_served_under_the_lease(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A tool call is always served under the session's lease, so that it runs once: a
    write without the lease refused after the tool ran (another replica wrote to the
    session meanwhile, unseen here) would have it run again.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    async with _replicas(tmp_path, redis_server, follow=False, tools="plugins:tools") as (
        _,
        clients,
    ):
        with anyio.fail_after(30):
            asked = await clients[1].post("/v1/sessions/s/requests", json={"text": "a room"})
            assert 200 == asked.status_code
            call = {"name": "book_room", "args": {"name": "Avenida"}}
            assert 200 == (await clients[0].post("/v1/sessions/s/calls", json=call)).status_code
            again = await clients[1].post("/v1/sessions/s/calls", json=call)
    assert "booking 1: Avenida" == again.json()["result"]


async def test_another_replicas_window_holds_an_earlier_turns_call_and_its_result(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A call made and answered on one replica is in the session as stored, with its
    result: the next request, on the other replica, finds it in its window's history.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    async with _replicas(tmp_path, redis_server, follow=False, tools="plugins:tools") as (
        _,
        clients,
    ):
        with anyio.fail_after(30):
            asked = await clients[0].post("/v1/sessions/s/requests", json={"text": "a room"})
            assert 200 == asked.status_code
            call = {"name": "book_room", "args": {"name": "Avenida"}}
            assert 200 == (await clients[0].post("/v1/sessions/s/calls", json=call)).status_code
            reply = {"text": "Done."}
            assert 204 == (await clients[0].post("/v1/sessions/s/replies", json=reply)).status_code
            after = await clients[1].post("/v1/sessions/s/requests", json={"text": "and a cab"})
    assert 200 == after.status_code
    expected = (
        'User: a room\nAssistant: [book_room({"name": "Avenida"}) -> booking 1: Avenida]\nDone.'
    )
    assert expected in after.json()["text"]


@pytest.mark.parametrize("replicas", [(0, 0), (0, 1)])
async def test_a_booking_is_not_run_again_after_its_request_is_retried(
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    replicas: tuple[int, int],
) -> None:
    """
    An agent that booked under a call id, then died, and sends its request again under
    the same request id (to the same replica, or the other) and the booking under the
    same call id:
    the request is served again, and the booking returns its recorded result without
    running again; the session keeps one turn with one call.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    async with _replicas(tmp_path, redis_server, follow=False, tools="plugins:tools") as (
        servers,
        clients,
    ):
        request = {"text": "a room", "request_id": "r1"}
        call = {"name": "book_room", "args": {"name": "Avenida"}, "call_id": "c1"}
        with anyio.fail_after(30):
            for client in clients:
                assert (
                    200 == (await client.post("/v1/sessions/s/requests", json=request)).status_code
                )
                done = await client.post("/v1/sessions/s/calls", json=call)
                assert 200 == done.status_code
            stored = await servers[0].store.read("acme", "s")
    assert ("booking 1: Avenida", True) == (done.json()["result"], done.json()["repeated"])
    (turn,) = stored.turns
    assert [("book_room", "c1")] == [(c["name"], c["call_id"]) for c in turn["tool_calls"]]


async def test_the_tenants_engines_share_their_requests_in_flight(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    One app's tenants' engines share the requests in flight their learners stand aside
    for (their worker threads share one interpreter); two apps do not.
    """
    keys = tmp_path / "keys.jsonl"
    append_key(keys, "acme")
    append_key(keys, "beta")
    config = write_config(tmp_path / "server.toml", redis_server.url)
    settings = ServerSettings(config=str(config), keys=str(keys))
    apps = [create_app(settings) for _ in range(2)]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        first, second = (
            {t: g.engine.requests_in_flight for t, g in app.state.server.gates.items()}
            for app in apps
        )
    assert first["acme"] is first["beta"]
    assert first["acme"] is not second["acme"]

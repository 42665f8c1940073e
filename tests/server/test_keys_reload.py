"""
``server.keys_reload_s``: a replica reads its keys file again when it changes, so that
a key made while it serves is accepted and a key revoked is refused, without a restart;
a file that does not read leaves the keys as they were. Apps of ``preload serve`` in
this process on the memory store, and one replica over real HTTP.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from preload import ConfigError, EngineConfig
from preload.experiments import read_outcomes
from preload.server import append_key, revoke_keys

from .conftest import EXPERIMENT, app_client, in_process, memory_settings

pytest.importorskip("fastapi")

from preload.server._app import ServerSettings

if TYPE_CHECKING:
    from ..conftest import RedisServer


@asynccontextmanager
async def _replica(
    tmp_path: Path, more: str = "", *, reload_s: float = 3600.0
) -> AsyncIterator[tuple[Any, dict[str, httpx.AsyncClient], Path]]:
    """
    One app on the memory store with tenants acme and beta, its keys file looked at
    every ``reload_s`` (an hour: the tests call the check themselves), a client of
    each tenant, and the keys file.
    """
    settings, keys = memory_settings(tmp_path, f"keys_reload_s = {reload_s}\n{more}")
    async with in_process(settings, keys) as (server, clients):
        yield server, clients, tmp_path / "keys.jsonl"


def _client(clients: dict[str, httpx.AsyncClient], key: str) -> httpx.AsyncClient:
    """
    Another client of the app of ``clients``, with ``key``.
    """
    transport = clients["acme"]._transport
    assert isinstance(transport, httpx.ASGITransport)
    return app_client(transport.app, key)


async def _asks(client: httpx.AsyncClient, session: str) -> int:
    answer = await client.post(f"/v1/sessions/{session}/requests", json={"text": "a hotel"})
    return answer.status_code


async def test_a_key_made_while_serving_is_accepted_and_its_tenant_opens(
    tmp_path: Path,
) -> None:
    """
    A key appended to the file is refused until the file is read again, then
    accepted; its new tenant's engine opens (every engine is kept open); the metrics
    count the keys and the reload. A check of a file that did not change reads
    nothing.
    """
    async with _replica(tmp_path) as (server, clients, keys_file):
        gamma = append_key(keys_file, "gamma")
        async with _client(clients, gamma) as client:
            assert 401 == await _asks(client, "g1")
            assert await server.keys_watcher.check()
            assert not await server.keys_watcher.check()  # unchanged since
            assert 200 == await _asks(client, "g1")
            metrics = (await client.get("/metrics")).text
        assert ["acme", "beta", "gamma"] == sorted(server.gates)
        assert ("acme", "beta", "gamma") == server.tenants.tenants
    assert "preload_keys 3.0" in metrics
    assert "preload_keys_reloads_total 1.0" in metrics
    assert "preload_keys_reload_failures_total 0.0" in metrics


async def test_a_revoked_tenant_is_refused_and_its_engine_closes_once_no_request_holds_it(
    tmp_path: Path,
) -> None:
    """
    Revoking a tenant's key refuses its next request at once; its engine stays open
    while a request holds it, closes as that request ends, and saves its experiment
    outcomes as it closes. The other tenant is served throughout.
    """
    saved = tmp_path / "outcomes"
    more = f'outcomes_dir = "{saved}"\n{EXPERIMENT}'
    async with _replica(tmp_path, more) as (server, clients, keys_file):
        assert 200 == await _asks(clients["acme"], "a1")
        async with server.tenants.using("acme"):  # a request of acme's in flight
            revoke_keys(keys_file, tenant="acme")
            assert await server.keys_watcher.check()
            assert 401 == await _asks(clients["acme"], "a2")
            assert "acme" in server.gates  # held
        assert "acme" not in server.gates
        await server.tenants.wait_closed("acme")
        assert ["a1"] == [
            o.session_id for f in (saved / "acme").glob("*") for o in read_outcomes(f)
        ]
        assert 200 == await _asks(clients["beta"], "b1")
        assert ("beta",) == server.tenants.tenants


async def test_a_tenant_revoked_then_added_again_is_served_by_a_new_engine(
    tmp_path: Path,
) -> None:
    """
    With engines opened at first request (``max_open_tenants``), a revoked tenant's
    idle engine closes at once, a new key of the tenant is served again, and the new
    tenant opens only at its first request.
    """
    async with _replica(tmp_path, "max_open_tenants = 4") as (server, clients, keys_file):
        assert 200 == await _asks(clients["acme"], "a1")
        fresh = append_key(keys_file, "acme")
        revoke_keys(keys_file, sha256=_digest_of(clients["acme"]))
        append_key(keys_file, "gamma")
        assert await server.keys_watcher.check()
        assert "acme" in server.gates  # a new key of the tenant: nothing closes
        assert 401 == await _asks(clients["acme"], "a2")
        assert "gamma" not in server.gates  # opens at its first request
        revoke_keys(keys_file, tenant="acme")
        assert await server.keys_watcher.check()
        assert "acme" not in server.gates  # idle: closed at once
        await server.tenants.wait_closed("acme")
        again = append_key(keys_file, "acme")
        assert await server.keys_watcher.check()
        for key in (fresh, again):
            async with _client(clients, key) as client:
                assert (401 if key == fresh else 200) == await _asks(client, "a3")
        assert (2, 1) == (server.tenants.opened, server.tenants.closed)


async def test_a_keys_file_that_does_not_read_keeps_the_keys_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A change that does not read (a bad line, the file gone) leaves every key accepted
    as it was, is logged once with the file and the line, and counted; the next change
    that reads is taken.
    """
    async with _replica(tmp_path) as (server, clients, keys_file):
        good = keys_file.read_text(encoding="utf-8")
        keys_file.write_text(good + '{"tenant": "gamma"}\n', encoding="utf-8")
        with caplog.at_level(logging.ERROR, logger="preload.server._keys_watch"):
            assert not await server.keys_watcher.check()
            assert not await server.keys_watcher.check()
        (logged,) = caplog.records
        assert f"{keys_file}:3: expected" in logged.getMessage()
        assert 200 == await _asks(clients["acme"], "a1")
        keys_file.unlink()
        assert not await server.keys_watcher.check()
        assert 200 == await _asks(clients["beta"], "b1")
        keys_file.write_text(good, encoding="utf-8")
        revoke_keys(keys_file, tenant="beta")
        assert await server.keys_watcher.check()
        assert 401 == await _asks(clients["beta"], "b2")
        metrics = (await clients["acme"].get("/metrics")).text
    assert (1, 2) == (server.keys_watcher.reloads, server.keys_watcher.failures)
    assert "preload_keys_reload_failures_total 2.0" in metrics


async def test_the_replica_looks_at_the_file_every_keys_reload_s(tmp_path: Path) -> None:
    """
    The watcher's own checks, every ``keys_reload_s``, take a new key (waited for by
    its signal of each check's end).
    """
    async with _replica(tmp_path, reload_s=0.01) as (server, clients, keys_file):
        gamma = append_key(keys_file, "gamma")
        with anyio.fail_after(30):
            while not server.keys_watcher.reloads:
                await server.keys_watcher.next_check()
        async with _client(clients, gamma) as client:
            assert 200 == await _asks(client, "g1")


async def test_keys_from_the_environment_or_a_zero_period_are_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Keys from ``PRELOAD_API_KEYS`` have no file to follow, and ``keys_reload_s = 0``
    reads the file at start only: no watcher either way.
    """
    keys_file = tmp_path / "keys.jsonl"
    key = append_key(keys_file, "acme")
    config = tmp_path / "server.toml"
    config.write_text('[cache]\nbackend = "memory"\n[server]\nkeys_reload_s = 0\n')
    async with in_process(ServerSettings(config=str(config), keys=str(keys_file)), {}) as (
        server,
        _,
    ):
        assert server.keys_watcher is None
    monkeypatch.setenv("PRELOAD_API_KEYS", f"acme:{_digest(key)}")
    async with in_process(ServerSettings(), {"acme": key}) as (server, clients):
        assert server.keys_watcher is None
        assert 200 == await _asks(clients["acme"], "a1")


def test_a_negative_period_names_its_key(tmp_path: Path) -> None:
    """
    ``server.keys_reload_s`` below 0 is an error naming the key.
    """
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nkeys_reload_s = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"server\.keys_reload_s"):
        EngineConfig.from_toml(path)


def test_a_served_replica_follows_the_keys_commands(
    redis_server: RedisServer, start_server: Any, keys: tuple[Path, dict[str, str]]
) -> None:
    """
    Over HTTP: ``preload keys new`` while ``preload serve`` runs gives a key the
    replica accepts, and ``preload keys revoke`` one it refuses, each within a bounded
    wait (the replica's own answer is the signal), with no restart.
    """
    keys_file, tenant_keys = keys
    replica = start_server(redis_server.url, keys_reload_s=0.05)
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "preload",
            "keys",
            "new",
            "--tenant",
            "gamma",
            "--keys",
            str(keys_file),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    gamma = made.stdout.strip()
    assert 200 == _status_once(replica.url, gamma, 200)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "preload",
            "keys",
            "revoke",
            "--tenant",
            "acme",
            "--keys",
            str(keys_file),
        ],
        check=True,
        capture_output=True,
    )
    assert 401 == _status_once(replica.url, tenant_keys["acme"], 401)
    assert 200 == _status_once(replica.url, tenant_keys["beta"], 200)


def _status_once(url: str, key: str, wanted: int) -> int:
    """
    The status of a request with ``key``, asked again until it is ``wanted`` or 30 s
    have passed (a bounded retry on the client, as the replica's start is waited for).
    """
    deadline = time.monotonic() + 30
    while True:
        status = httpx.post(
            f"{url}/v1/sessions/s1/requests",
            json={"text": "a hotel in Lisbon"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).status_code
        if status == wanted or time.monotonic() > deadline:
            return status


def _digest(key: str) -> str:
    from preload.server import digest

    return digest(key)


def _digest_of(client: httpx.AsyncClient) -> str:
    return _digest(client.headers["Authorization"].removeprefix("Bearer "))

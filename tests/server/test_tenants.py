"""
``server.max_open_tenants``: a replica opens a tenant's engine at its first request and
closes the least recently used one that no request holds when another must open; the
sessions live on in the store, and the experiment outcomes of each engine are saved as
it closes. Apps of ``preload serve`` in this process, on the memory store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from preload import ConfigError, EngineConfig
from preload.experiments import read_outcomes
from preload.server import append_key

from .conftest import EXPERIMENT, answered_turn, in_process

pytest.importorskip("fastapi")

from preload.server._app import ServerSettings, create_app


@asynccontextmanager
async def _replica(
    tmp_path: Path, max_open: int, more: str = ""
) -> AsyncIterator[tuple[Any, dict[str, httpx.AsyncClient]]]:
    """
    One app on the memory store with tenants acme, beta and gamma, at most
    ``max_open`` of them open, and a client of each tenant.
    """
    keys_file = tmp_path / "keys.jsonl"
    keys = {tenant: append_key(keys_file, tenant) for tenant in ("acme", "beta", "gamma")}
    config = tmp_path / "server.toml"
    config.write_text(
        f'[cache]\nbackend = "memory"\n[server]\nmax_open_tenants = {max_open}\n{more}',
        encoding="utf-8",
    )
    settings = ServerSettings(config=str(config), keys=str(keys_file))
    async with in_process(settings, keys) as replica:
        yield replica


async def test_engines_open_at_first_request_and_the_least_recently_used_closes(
    tmp_path: Path,
) -> None:
    """
    None is open at start; each tenant's opens at its first request; with two open,
    the one used least recently closes for a third, and its session, served again,
    goes on from the store with every turn it had.
    """
    async with _replica(tmp_path, max_open=2) as (server, clients):
        tenants = server.tenants
        assert [] == list(server.gates)
        await answered_turn(clients["acme"], "a1", "a hotel in Lisbon")
        await answered_turn(clients["beta"], "b1", "a train to Porto")
        await answered_turn(clients["acme"], "a1", "two nights")
        assert ["beta", "acme"] == list(server.gates)  # least recently used first
        await answered_turn(clients["gamma"], "g1", "a table for two")
        assert ["acme", "gamma"] == list(server.gates)
        await answered_turn(clients["beta"], "b1", "first class")  # acme closes for it
        assert ["gamma", "beta"] == list(server.gates)
        session = (await clients["beta"].get("/v1/sessions/b1")).json()
        metrics = (await clients["beta"].get("/metrics")).text
        assert (4, 2) == (tenants.opened, tenants.closed)
    assert ["a train to Porto", "first class"] == [t["text"] for t in session["turns"]]
    assert "preload_tenants_open 2.0" in metrics
    assert "preload_tenant_engines_opened_total 4.0" in metrics
    assert 'preload_requests_total{tenant="acme"}' not in metrics  # closed: not reported


async def test_an_engine_a_request_holds_is_never_closed_for_another(
    tmp_path: Path,
) -> None:
    """
    A tenant whose engine a request holds is not closed for another, which opens
    beyond the bound; the count comes back within it as the next one opens. Two
    first requests of one tenant at once open one engine.
    """
    async with _replica(tmp_path, max_open=1) as (server, clients):
        tenants = server.tenants
        async with tenants.using("acme"):
            async with anyio.create_task_group() as tg:
                for session in ("b1", "b2"):
                    tg.start_soon(answered_turn, clients["beta"], session, "a train to Porto")
            assert ["acme", "beta"] == list(server.gates)  # beyond the bound
        assert ["acme", "beta"] == list(server.gates)  # kept until another must open
        await answered_turn(clients["gamma"], "g1", "a table for two")
        assert ["gamma"] == list(server.gates)  # both closed for it
        assert (3, 2) == (tenants.opened, tenants.closed)


async def test_each_engine_saves_its_outcomes_as_it_closes(tmp_path: Path) -> None:
    """
    With an experiment and ``outcomes_dir``, a tenant's engine saves its outcomes as
    it closes, and the engine opened after it saves to a file of its own: the folder
    holds every session the tenant's engines served.
    """
    saved = tmp_path / "outcomes"
    more = f'outcomes_dir = "{saved}"\n{EXPERIMENT}'
    async with _replica(tmp_path, max_open=1, more=more) as (server, clients):
        await answered_turn(clients["acme"], "a1", "a hotel in Lisbon")
        await answered_turn(clients["beta"], "b1", "a train to Porto")  # acme closes
        await answered_turn(clients["acme"], "a2", "a hotel in Porto")  # beta closes
        assert ["acme"] == list(server.gates)
    first, *again = sorted((saved / "acme").glob("*.jsonl"), key=lambda f: len(f.name))
    assert [first.name.replace(".jsonl", "-2.jsonl")] == [f.name for f in again]
    assert [["a1"], ["a2"]] == [[o.session_id for o in read_outcomes(f)] for f in [first, *again]]
    assert ["b1"] == [o.session_id for f in (saved / "beta").glob("*") for o in read_outcomes(f)]


def test_a_negative_bound_names_its_key(tmp_path: Path) -> None:
    """
    ``server.max_open_tenants`` below 0 is an error naming the key.
    """
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nmax_open_tenants = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"server\.max_open_tenants"):
        EngineConfig.from_toml(path)


def test_an_unknown_encoding_stops_the_start_though_no_engine_opens_then(
    tmp_path: Path,
) -> None:
    """
    With ``max_open_tenants`` no engine opens at start, yet the tokenizer's encoding
    is loaded then: an unknown one is an error naming ``tokens.encoding`` before the
    server serves, not at each tenant's first request.
    """
    keys_file = tmp_path / "keys.jsonl"
    append_key(keys_file, "acme")
    config = tmp_path / "server.toml"
    config.write_text(
        '[cache]\nbackend = "memory"\n[tokens]\nencoding = "no_such_encoding"\n'
        "[server]\nmax_open_tenants = 2\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"tokens\.encoding"):
        create_app(ServerSettings(config=str(config), keys=str(keys_file)))

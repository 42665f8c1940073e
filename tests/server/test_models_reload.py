"""
``server.models_reload_s``: with ``server.share_models``, a replica follows its model
files, and once a change has stayed for one look more, every tenant's engine forecasts
from the new models, without a restart or a reopening; a change that does not read
leaves the models as they were. Apps of ``preload serve`` in this process, on the
memory store, with the tools of ``plugins.py``; and one replica over real HTTP.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from preload import ConfigError, EngineConfig
from preload.learning import EngineCallPredictor
from preload.server import append_key

from .conftest import in_process
from .test_shared_models import _hotel_sessions, _search, served_search

if TYPE_CHECKING:
    from conftest import RedisServer

pytest.importorskip("fastapi")

from preload.server._app import ServerSettings


def _save_model(path: Path, tool: str) -> None:
    """
    Save to ``path`` a call forecaster fitted on 30 logged searches by ``tool``
    (``find_hotels`` is a read-only tool of the test plugins; another name is no tool
    of theirs, so nothing is run ahead from it).
    """
    sessions = _hotel_sessions(30)
    for session in sessions:
        session["turns"][0]["tool_calls"][0]["name"] = tool
    predictor = EngineCallPredictor()
    predictor.model.fit(sessions)
    predictor.save(path)  # atomically, as preload train writes it


@asynccontextmanager
async def _replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, dict[str, httpx.AsyncClient], Path]]:
    """
    One app on the memory store with tenants acme and beta sharing a call forecaster
    of hotel searches, its files looked at every hour (the tests call the check
    themselves); a client of each tenant, and the model file.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    model = tmp_path / "calls.json"
    _save_model(model, "find_hotels")
    keys_file = tmp_path / "keys.jsonl"
    keys = {tenant: append_key(keys_file, tenant) for tenant in ("acme", "beta")}
    config = tmp_path / "server.toml"
    config.write_text(
        '[cache]\nbackend = "memory"\n[server]\nshare_models = true\nmodels_reload_s = 3600\n',
        encoding="utf-8",
    )
    settings = ServerSettings(
        config=str(config), keys=str(keys_file), tools="plugins:tools", calls_model=str(model)
    )
    async with in_process(settings, keys) as (server, clients):
        yield server, clients, model


async def test_every_engine_forecasts_from_a_retrained_model_once_it_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A model file written again is read at the look after the one that saw it change
    (it settled); from then on the engines, the same ones, forecast from it: the
    search the old model ran ahead for one tenant is not run ahead for the other (the
    first tenant's result is warm for its later sessions, as any result of its). The
    metrics count it.
    """
    async with _replica(tmp_path, monkeypatch) as (server, clients, model):
        acme = server.gates["acme"].engine
        with anyio.fail_after(30):
            await _search(server, clients["acme"], "acme", "s1")
            assert 1 == acme.call_statistics().call_hits  # run ahead from the first model
            _save_model(model, "find_flights")
            assert not await server.models_watcher.check()  # changed: settling
            assert await server.models_watcher.check()  # unchanged since: read
            assert not await server.models_watcher.check()
            await _search(server, clients["beta"], "beta", "s2")
        metrics = (await clients["acme"].get("/metrics")).text
        assert acme is server.gates["acme"].engine  # not reopened
        read = EngineCallPredictor.load(model).model.to_json()
        assert read == acme._calls.predictor.model.to_json()
        assert 0 == server.gates["beta"].engine.call_statistics().call_hits
    assert "preload_models_reloads_total 1.0" in metrics
    assert "preload_models_reload_failures_total 0.0" in metrics


async def test_a_model_file_that_does_not_read_keeps_the_model_and_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A model file that does not read (cut short) leaves the engines forecasting from
    the model read before, is logged once naming the file, and counted.
    """
    async with _replica(tmp_path, monkeypatch) as (server, clients, model):
        model.write_text(model.read_text(encoding="utf-8")[:100], encoding="utf-8")
        with caplog.at_level(logging.ERROR, logger="preload.server._watch"):
            assert not await server.models_watcher.check()  # settling
            assert not await server.models_watcher.check()  # read: it does not
            assert not await server.models_watcher.check()  # unchanged since: not again
        with anyio.fail_after(30):
            await _search(server, clients["acme"], "acme", "s1")
        assert 1 == server.gates["acme"].engine.call_statistics().call_hits
        metrics = (await clients["acme"].get("/metrics")).text
    (logged,) = caplog.records
    assert f"cannot load model file '{model}'" in logged.getMessage()
    assert "preload_models_reload_failures_total 1.0" in metrics


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("models_reload_s = 5", "share_models = true only"),
        ("models_reload_s = -1", "must not be negative"),
    ],
)
def test_models_reload_s_needs_shared_models_and_a_period(
    tmp_path: Path, server: str, problem: str
) -> None:
    """
    ``server.models_reload_s`` without ``share_models`` (each tenant's copy learns
    online), or below 0, is an error naming the key.
    """
    path = tmp_path / "bad.toml"
    path.write_text(f"[server]\n{server}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"server\.models_reload_s.*{problem}"):
        EngineConfig.from_toml(path)


def test_a_served_replica_follows_its_retrained_model(
    redis_server: RedisServer, start_server: Any, keys: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """
    Over HTTP: a ``preload serve`` replica sharing its call forecaster takes the
    model written again while it serves (its metrics say so, waited for by a bounded
    retry), and runs nothing ahead from it.
    """
    model = tmp_path / "calls.json"
    _save_model(model, "find_hotels")
    replica = start_server(
        redis_server.url,
        more="share_models = true\nmodels_reload_s = 0.05",
        args=["--calls-model", str(model)],
    )
    _save_model(model, "find_flights")
    deadline = time.monotonic() + 30
    while not re.search(
        r"^preload_models_reloads_total 1\.0$", _metrics(replica.url), re.MULTILINE
    ):
        assert time.monotonic() < deadline, "the replica did not take the new model"
    served_search(replica.url, keys[1]["acme"])
    assert re.search(
        r'^preload_call_hits_total\{tenant="acme"\} 0\.0$', _metrics(replica.url), re.MULTILINE
    )


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text

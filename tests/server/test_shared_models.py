"""
``server.share_models``: every tenant's engine reads one copy of the server's call
forecaster (``--calls-model``), runs ahead from it the calls of its own tools, and
learns nothing into it; without it, each engine has a copy of its own. Apps of
``preload serve`` in this process, on the memory store, with the tools of
``plugins.py``.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from preload import ConfigError, EngineConfig
from preload.learning import EngineCallPredictor, SharedCallPredictor

from .conftest import app_client, in_process, memory_settings

if TYPE_CHECKING:
    from conftest import RedisServer

pytest.importorskip("fastapi")

from preload.server._app import ModelsRead, create_app

CITIES = ["Lisbon", "Porto", "Faro", "Braga", "Coimbra", "Evora"]


def _hotel_sessions(n: int) -> list[dict[str, Any]]:
    """
    ``n`` logged sessions: a hotel search in a city the request says, then thanks.
    """
    return [
        {
            "session_id": f"log{i}",
            "turns": [
                {
                    "text": f"Find me hotels in {CITIES[i % len(CITIES)]} please.",
                    "system": "Here are three.",
                    "tool_calls": [
                        {
                            "name": "find_hotels",
                            "args": {"city": CITIES[i % len(CITIES)]},
                            "read_only": True,
                        }
                    ],
                },
                {"text": "Thanks, bye.", "system": "Goodbye."},
            ],
        }
        for i in range(n)
    ]


@pytest.fixture(name="calls_model", scope="module")
def _calls_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    A call forecaster fitted on 30 logged hotel searches, saved as ``preload train
    --calls-out`` saves it.
    """
    path = tmp_path_factory.mktemp("model") / "calls.json"
    predictor = EngineCallPredictor()
    predictor.model.fit(_hotel_sessions(30))
    predictor.save(path)
    return path


@asynccontextmanager
async def _replica(
    tmp_path: Path, calls_model: Path, share: bool, max_open: int = 0, *, learn: bool = False
) -> AsyncIterator[tuple[Any, dict[str, httpx.AsyncClient]]]:
    """
    One app on the memory store with tenants acme and beta, the test plugins' tools
    and ``calls_model``, with ``server.share_models = share`` and ``tenant_learning =
    learn``; a client of each tenant.
    """
    settings, keys = _settings(tmp_path, calls_model, share, max_open, learn=learn)
    async with in_process(settings, keys) as replica:
        yield replica


async def _search(
    server: Any, client: httpx.AsyncClient, tenant: str, session: str, city: str = "Lisbon"
) -> str:
    """
    A request that names ``city``, the background work it caused done, then the
    agent's search for hotels there; the search's result.
    """
    asked = await client.post(
        f"/v1/sessions/{session}/requests", json={"text": f"Find me hotels in {city} please."}
    )
    assert 200 == asked.status_code, asked.text
    await server.gates[tenant].engine.wait_idle()  # the search run ahead, or not
    call = {"name": "find_hotels", "args": {"city": city}}
    answer = await client.post(f"/v1/sessions/{session}/calls", json=call)
    assert 200 == answer.status_code, answer.text
    return str(answer.json()["result"])


async def test_tenants_read_one_model_run_their_own_tools_ahead_and_learn_nothing_into_it(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    With ``share_models``, both tenants' engines forecast from one model; each runs
    the search ahead with its own tools (the result names the tenant), and a session
    that ends changes nothing in the model.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    async with _replica(tmp_path, calls_model, share=True) as (server, clients):
        engines = {tenant: server.gates[tenant].engine for tenant in ("acme", "beta")}
        predictors = [engine._calls.predictor for engine in engines.values()]
        assert all(isinstance(p, SharedCallPredictor) for p in predictors)
        assert predictors[0].model is predictors[1].model
        learned = predictors[0].model.to_json()
        with anyio.fail_after(30):
            results = {t: await _search(server, clients[t], t, "s1") for t in engines}
            assert 204 == (await clients["acme"].delete("/v1/sessions/s1")).status_code
            await engines["acme"].wait_idle()  # the ended session learned from, or not
        hits = {t: engine.call_statistics().call_hits for t, engine in engines.items()}
    assert {"acme": 1, "beta": 1} == hits  # run ahead from the shared model
    # "run N: ...": the tool counts its runs, and a likely other city may run too
    assert results["acme"].endswith(": hotels in Lisbon for acme")
    assert results["beta"].endswith(": hotels in Lisbon for beta")
    assert learned == predictors[0].model.to_json()


async def test_without_sharing_each_tenant_has_a_copy_of_its_own(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    By default each tenant's engine has its own copy of the model, which learns from
    the tenant's sessions as they end.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    async with _replica(tmp_path, calls_model, share=False) as (server, clients):
        engines = {tenant: server.gates[tenant].engine for tenant in ("acme", "beta")}
        acme, beta = (engine._calls.predictor for engine in engines.values())
        assert isinstance(acme, EngineCallPredictor)
        assert acme.model is not beta.model
        learned = acme.model.to_json()
        with anyio.fail_after(30):
            await _search(server, clients["acme"], "acme", "s1")
            assert 204 == (await clients["acme"].delete("/v1/sessions/s1")).status_code
            await engines["acme"].wait_idle()
    assert learned != acme.model.to_json()
    assert 1 == engines["acme"].call_statistics().call_hits


@pytest.fixture(name="flights_model", scope="module")
def _flights_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    A call forecaster fitted on 30 logged flight searches: none of the test plugins'
    tools.
    """
    path = tmp_path_factory.mktemp("model") / "flights.json"
    predictor = EngineCallPredictor()
    sessions = _hotel_sessions(30)
    for session in sessions:
        call = session["turns"][0]["tool_calls"][0]
        call["name"], call["args"] = "find_flights", {"to": call["args"]["city"]}
    predictor.model.fit(sessions)
    predictor.save(path)
    return path


@pytest.mark.parametrize("learn", [True, False])
async def test_with_tenant_learning_a_tenant_runs_ahead_a_tool_the_shared_model_never_saw(
    tmp_path: Path, flights_model: Path, monkeypatch: pytest.MonkeyPatch, learn: bool
) -> None:
    """
    With ``share_models`` and a model that never saw the hotel search, a tenant whose
    engine learns over it (``tenant_learning``) runs the search ahead once it learned
    from six of its sessions that ended, as the same replica without it never does;
    the other tenant, which made no search, does not run it ahead; the shared model
    learns nothing. The metrics give the word counts of the tenant's own model.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    async with _replica(tmp_path, flights_model, share=True, learn=learn) as (server, clients):
        acme, beta = (server.gates[t].engine for t in ("acme", "beta"))
        saved = acme._calls.predictor.model.to_json()
        with anyio.fail_after(30):
            for i, city in enumerate(CITIES):
                client, session = clients["acme"], f"/v1/sessions/a{i}"
                text = {"text": f"Find me hotels in {city} please."}
                assert 200 == (await client.post(f"{session}/requests", json=text)).status_code
                call = {"name": "find_hotels", "args": {"city": city}}
                assert 200 == (await client.post(f"{session}/calls", json=call)).status_code
                assert 204 == (await client.delete(session)).status_code
                await acme.wait_idle()  # learned from, or not
            before = acme.call_statistics().call_hits
            # a city none of them searched: no result of the tenant's cache is its
            await _search(server, clients["acme"], "acme", "a-next", "Sintra")
            await _search(server, clients["beta"], "beta", "b-next", "Sintra")
            metrics = (await clients["beta"].get("/metrics")).text
        hits = (acme.call_statistics().call_hits - before, beta.call_statistics().call_hits)
        words = acme._calls.predictor.word_counts()
    assert ((1, 0) if learn else (0, 0)) == hits
    assert saved == acme._calls.predictor.model.to_json()
    # the tenant's own model's word counts; none for the shared model's, or for beta's
    assert (words > 0) is learn
    assert f'preload_learned_word_counts{{tenant="acme"}} {float(words)}' in metrics
    assert 'preload_learned_word_counts{tenant="beta"} 0.0' in metrics


async def test_a_closed_engine_has_what_it_learned_over_the_shared_model_taken_apart(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    With ``tenant_learning`` and ``max_open_tenants = 1``, an engine closed for
    another's has the call forecaster it learned taken apart in the background; the
    shared model is left whole: the other tenant and the first opened again run the
    search ahead from it.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    frees = _Frees(monkeypatch)
    async with _replica(tmp_path, calls_model, True, 1, learn=True) as (server, clients):
        with anyio.fail_after(30):
            await _search(server, clients["acme"], "acme", "a1")
            assert 204 == (await clients["acme"].delete("/v1/sessions/a1")).status_code
            predictor = server.gates["acme"].engine._calls.predictor
            await server.gates["acme"].engine.wait_idle()  # learned from
            own, shared = weakref.ref(predictor.own.model), predictor.model
            assert 1 == own().n_sessions_  # type: ignore[union-attr]
            del predictor
            await _search(server, clients["beta"], "beta", "b1")  # acme closes for it
            beta = server.gates["beta"].engine
            hits = [beta.call_statistics().call_hits]
            assert shared is beta._calls.predictor.model
            await frees.next_one()
            assert None is own()  # emptied, then freed
            await _search(server, clients["acme"], "acme", "a2", "Porto")
            hits.append(server.gates["acme"].engine.call_statistics().call_hits)
    assert [1, 1] == hits
    assert 30 == shared.n_sessions_


async def test_lazily_opened_engines_read_the_model_read_at_start(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    With ``max_open_tenants`` too, the model is read once at start: an engine that
    opens at its tenant's first request, and the one opened again after it closed,
    read that same copy, which none frees as it closes.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    frees = _Frees(monkeypatch)
    async with _replica(tmp_path, calls_model, share=True, max_open=1) as (server, clients):
        with anyio.fail_after(30):
            await _search(server, clients["acme"], "acme", "a1")
            first = server.gates["acme"].engine._calls.predictor.model
            await _search(server, clients["beta"], "beta", "b1")  # acme closes for it
            beta = server.gates["beta"].engine._calls.predictor.model
            await _search(server, clients["acme"], "acme", "a2")  # and opens again
            again = server.gates["acme"].engine._calls.predictor.model
        assert (3, 2) == (server.tenants.opened, server.tenants.closed)
    assert first is beta is again
    assert [] == frees.emptied  # the shared model is not an engine's to free


class _Frees:
    """
    The containers each call of the tenancy's ``free_gradually`` emptied, recorded in
    the worker thread that frees, and a way to wait for the next.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from preload.server import _app

        self.emptied: list[int] = []
        self._done = threading.Semaphore(0)
        real = _app.free_gradually

        def counted(*roots: object) -> int:
            self.emptied.append(real(*roots))
            self._done.release()
            return self.emptied[-1]

        monkeypatch.setattr(_app, "free_gradually", counted)

    async def next_one(self) -> None:
        """
        Wait (in a worker thread, at most 10 s) until one more free has ended.
        """
        assert await anyio.to_thread.run_sync(self._done.acquire, True, 10)


async def test_an_engine_that_closes_while_serving_has_its_copy_taken_apart(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Without ``share_models``, an engine closed for another's has its copy of the model
    taken apart (off the loop, a little at a time, in the background): nothing of it is
    left. The other tenant, and the first opened again, forecast from their own copies.
    A copy being freed as the server stops is freed before it has stopped; the engines
    that close as it stops drop theirs whole.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    frees = _Frees(monkeypatch)
    async with _replica(tmp_path, calls_model, share=False, max_open=1) as (server, clients):
        with anyio.fail_after(30):
            await _search(server, clients["acme"], "acme", "a1")
            model = weakref.ref(server.gates["acme"].engine._calls.predictor.model)
            assert model() is not None
            await _search(server, clients["beta"], "beta", "b1")  # acme closes for it
            await frees.next_one()  # in the background: the search did not wait for it
            assert 1 == len(frees.emptied) and frees.emptied[0] > 2  # more than the roots
            assert None is model()  # emptied, then freed: nothing else held it
            await _search(server, clients["acme"], "acme", "a2")  # beta closes
            hits = server.gates["acme"].engine.call_statistics().call_hits
    assert 1 == hits
    assert 2 == len(frees.emptied)  # beta's, waited for as it stopped; not acme's then


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_served_replica_runs_each_tenants_own_tools_from_the_shared_model(
    redis_server: RedisServer,
    start_server: Any,
    keys: tuple[Path, dict[str, str]],
    calls_model: Path,
) -> None:
    """
    ``preload serve`` with ``share_models`` and ``--calls-model``, over HTTP: each
    tenant's request and search are served, the search by the tenant's own tools.
    """
    replica = start_server(
        redis_server.url, more="share_models = true", args=["--calls-model", str(calls_model)]
    )
    results = {
        tenant: served_search(replica.url, key).partition(": ")[2]  # after "run N"
        for tenant, key in keys[1].items()
    }
    assert {"acme": "hotels in Lisbon for acme", "beta": "hotels in Lisbon for beta"} == results


def served_search(url: str, key: str, session: str = "s1") -> str:
    """
    Over HTTP with ``key``: a request that names a city, then the agent's search for
    hotels there; the search's result.
    """
    headers = {"Authorization": f"Bearer {key}"}
    asked = httpx.post(
        f"{url}/v1/sessions/{session}/requests",
        json={"text": "Find me hotels in Lisbon please."},
        headers=headers,
        timeout=30,
    )
    assert 200 == asked.status_code, asked.text
    answer = httpx.post(
        f"{url}/v1/sessions/{session}/calls",
        json={"name": "find_hotels", "args": {"city": "Lisbon"}},
        headers=headers,
        timeout=30,
    )
    assert 200 == answer.status_code, answer.text
    return str(answer.json()["result"])


def _settings(
    tmp_path: Path, calls_model: Path, share: bool, max_open: int = 0, *, learn: bool = False
) -> tuple[Any, dict[str, str]]:
    """
    The settings of an app on the memory store with tenants acme and beta, the test
    plugins' tools and a copy of ``calls_model`` (``calls.json`` in ``tmp_path``), with
    ``server.share_models = share``, ``max_open_tenants`` and ``tenant_learning =
    learn``; and each tenant's key.
    """
    copy = tmp_path / "calls.json"
    copy.write_bytes(calls_model.read_bytes())
    server = (
        f"share_models = {json.dumps(share)}\nmax_open_tenants = {max_open}\n"
        f"tenant_learning = {json.dumps(learn)}\n"
    )
    return memory_settings(tmp_path, server, tools="plugins:tools", calls_model=str(copy))


def _cut_short(path: Path) -> None:
    path.write_text("{", encoding="utf-8")


async def test_the_app_serve_checks_with_reads_no_model_file_again(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    ``preload serve`` with one process serves the app its start-up check made, with the
    models the check read: a shared model file cut short after the check does not stop
    the start, and both tenants run the search ahead from what was read.
    """
    from preload.server._serve import check

    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    settings, keys = _settings(tmp_path, calls_model, share=True)
    _, app = check(settings, 1)
    _cut_short(tmp_path / "calls.json")  # were it read again, the start would fail
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        server = app.state.server
        with anyio.fail_after(30):
            for tenant, key in keys.items():
                client = await stack.enter_async_context(app_client(app, key))
                await _search(server, client, tenant, "s1")
        hits = [server.gates[t].engine.call_statistics().call_hits for t in keys]
    assert [1, 1] == hits


async def test_the_first_tenant_takes_the_copy_the_check_read_and_the_next_reads_its_own(
    tmp_path: Path, calls_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Without ``share_models`` the model the check read is one tenant's copy; another
    tenant reads a copy of its own from the file.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:tools
    settings, keys = _settings(tmp_path, calls_model, share=False)
    read = ModelsRead.read(settings)
    checked = read.calls
    app = create_app(settings, read=read)
    async with app.router.lifespan_context(app):
        models = [app.state.server.gates[t].engine._calls.predictor.model for t in keys]
    assert None is read.calls  # taken
    assert sum(model is checked for model in models) == 1
    assert models[0] is not models[1]


def test_share_models_must_be_a_boolean(tmp_path: Path) -> None:
    """
    ``server.share_models`` of another type is refused, naming the key.
    """
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nshare_models = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="server.share_models"):
        EngineConfig.from_toml(path)


def test_tenant_learning_needs_share_models(tmp_path: Path) -> None:
    """
    ``server.tenant_learning`` without ``share_models`` is refused, naming the key.
    """
    path = tmp_path / "bad.toml"
    path.write_text("[server]\ntenant_learning = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"server\.tenant_learning.*share_models"):
        EngineConfig.from_toml(path)

"""
The HTTP API: an ASGI app (FastAPI) over one engine per tenant.

``create_app`` builds it from a :class:`ServerSettings`; ``app_from_environment`` is
the factory ``preload serve`` gives uvicorn (its worker processes read the settings
from ``PRELOAD_SERVE_SETTINGS``). The routes are under ``/v1``; ``docs/server.md``
describes each with its errors.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._config import EngineConfig
from .._errors import ConfigError, InputTooLargeError
from .._sources import JsonlKnowledgeSource, Source
from .._tokens import TiktokenCounter
from ..calls import CallSource, backend_of
from ..engine import PreloadEngine, RequestsInFlight
from ..learning import (
    CallPredictor,
    EngineCallPredictor,
    EngineForecaster,
    Forecaster,
    SharedModels,
    read_models,
    read_only_tools,
)
from ..learning._freeing import free_gradually
from ._follow import Follower
from ._gate import SessionGate
from ._keys import KeyRing
from ._monitor import IdleCollector, LoopMonitor, Reservoir, server_timing, watch_gc
from ._outcomes import OutcomesWriter
from ._routes import ApiError, router
from ._store import SessionBusy, SessionStore, StoreConflict, StoreUnavailable
from ._store_memory import MemorySessionStore
from ._store_redis import RedisSessionStore
from ._tenants import OpenTenants
from ._watch import FileWatcher

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from graph import CallForecaster

__all__ = [
    "ModelsRead",
    "ServerSettings",
    "app_from_environment",
    "check_tools",
    "create_app",
]

logger = logging.getLogger(__name__)

#: The environment variable through which ``preload serve`` hands its settings to
#: uvicorn's worker processes.
SETTINGS_ENV = "PRELOAD_SERVE_SETTINGS"

#: The environment variable that may hold the keys (``tenant:sha256,...``).
KEYS_ENV = "PRELOAD_API_KEYS"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """
    What a server is made of; all paths, so that worker processes can rebuild it.

    Args:
        config: The engine configuration file (the embedded default when None).
        model: A model file from ``preload train``, loaded for every tenant at start.
        knowledge: A knowledge file (JSONL) every tenant reads from.
        keys: The keys file (else ``PRELOAD_API_KEYS``).
        sources: ``module:attribute``, a callable taking the tenant and returning more
            sources by name.
        tools: ``module:attribute``, a callable taking the tenant and returning call
            sources for ``/calls``.
        calls_model: A call forecaster from ``preload train --calls-out``, loaded for
            every tenant at start (else each learns from its own sessions).
    """

    config: str | None = None
    model: str | None = None
    knowledge: str | None = None
    keys: str | None = None
    sources: str | None = None
    tools: str | None = None
    calls_model: str | None = None

    def to_json(self) -> str:
        """
        The settings as JSON, for the environment of worker processes.
        """
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        """
        Settings from :meth:`to_json`.
        """
        return cls(**json.loads(text))


@dataclass(slots=True)
class _Server:
    config: EngineConfig
    keys: KeyRing
    store: SessionStore
    tenants: OpenTenants
    monitor: LoopMonitor
    timings: Reservoir
    gc_pauses: Reservoir
    collector: IdleCollector
    follower: Follower | None
    keys_watcher: FileWatcher[KeyRing] | None = None  # with server.keys_reload_s
    models_watcher: FileWatcher[SharedModels] | None = None  # with server.models_reload_s

    @property
    def gates(self) -> Mapping[str, SessionGate]:
        """
        The open tenants' gates.
        """
        return self.tenants.gates


def _outcomes_writer(
    config: EngineConfig, gates: Mapping[str, SessionGate]
) -> OutcomesWriter | None:
    """
    The writer of the experiment outcomes into ``server.outcomes_dir``, when it is set
    and the tenants run an experiment (every tenant's engine has the configuration).
    """
    folder = config.server.outcomes_dir
    if not folder or not config.experiments.enabled:
        return None
    return OutcomesWriter(Path(folder), gates, config.server.outcomes_every_s)


def _check_folder(key: str, folder: str) -> None:
    """
    Raises:
        ConfigError: ``folder`` (the value of ``key``) cannot be created or written to.
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(key, f"{folder!r}: cannot write there ({exc.strerror or exc})") from None


@dataclass(slots=True)
class ModelsRead:
    """
    ``--model`` and ``--calls-model`` as ``preload serve``'s start-up check read them,
    for the app of the same process to take rather than read them again: the shared
    models, or the first tenant's copies.
    """

    forecaster: EngineForecaster | None = None
    calls: CallForecaster | None = None

    @classmethod
    def read(cls, settings: ServerSettings) -> ModelsRead:
        """
        The model files of ``settings``, read.

        Raises:
            InputError: A file is missing or not a model of its kind.
        """
        return cls(*read_models(settings.model, settings.calls_model))

    def take(
        self, settings: ServerSettings
    ) -> tuple[EngineForecaster | None, CallForecaster | None]:
        """
        The models of ``settings``: those read at start, the first time (each is taken
        once); after that, the files read now.
        """
        forecaster, calls = self.forecaster, self.calls
        self.forecaster = self.calls = None
        fresh = read_models(
            settings.model if forecaster is None else None,
            settings.calls_model if calls is None else None,
        )
        return (
            fresh[0] if forecaster is None else forecaster,
            fresh[1] if calls is None else calls,
        )


class _Tenancy:
    """
    What each tenant's engine is made of (the settings' files and plugins, the
    server's configuration) and how one opens, with its own copies of the models.

    Args:
        settings: The server's settings.
        config: The engine configuration every tenant's engine has (with its name).
        in_flight: The requests in flight, counted for every tenant's learner.
    """

    def __init__(
        self,
        settings: ServerSettings,
        config: EngineConfig,
        in_flight: RequestsInFlight,
        read: ModelsRead | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.in_flight = in_flight
        self.read = read or ModelsRead()
        self.knowledge = JsonlKnowledgeSource(settings.knowledge) if settings.knowledge else None
        self.more_sources = _factory(settings.sources, "--sources")
        self.tools = _factory(settings.tools, "--tools")
        # The encoding loaded now, before serving (about 120 ms, which the first engine
        # opened while serving, with server.max_open_tenants or a key added, would
        # otherwise spend on the loop); an unknown one fails the start.
        TiktokenCounter(config.tokens.encoding)
        self._loading = anyio.CapacityLimiter(1)
        self.shared: SharedModels | None = None
        #: Set as the server stops: an engine's copies are then dropped whole.
        self.stopping = False
        #: Where a closed engine's copies are freed (:meth:`open_gate`), one at a time.
        self.frees: TaskGroup | None = None
        self._freeing = anyio.CapacityLimiter(1)

    def load_shared(self) -> None:
        """
        With ``server.share_models``, read ``--model`` and ``--calls-model`` once, for
        every tenant's engine to read (at start, before the server serves).
        """
        if self.config.server.share_models:
            self.shared = SharedModels(*self.read.take(self.settings))

    def models_of(
        self, call_sources: Sequence[CallSource]
    ) -> tuple[Forecaster | None, CallPredictor | None]:
        """
        A tenant's own copies of ``--model`` and ``--calls-model`` (CPU-bound: read in a
        worker thread when a tenant opens while requests are served), or its views of
        the shared ones.
        """
        shared = self.shared
        if shared is not None:
            learn = self.config.server.tenant_learning
            calls = shared.call_predictor(read_only_tools(call_sources), learn=learn)
            return shared.forecaster(), calls
        forecaster, calls = self.read.take(self.settings)
        if forecaster is not None:
            forecaster.observe_every = self.config.prediction.observe_every
        call_predictor = (
            None
            if calls is None
            else EngineCallPredictor(calls, tools=read_only_tools(call_sources))
        )
        return forecaster, call_predictor

    @asynccontextmanager
    async def open_gate(self, tenant: str, store: SessionStore) -> AsyncIterator[SessionGate]:
        """
        Open the tenant's engine and its gate on ``store``; leaving closes them. The
        models are read in a worker thread, one tenant at a time (an engine may open
        while requests are served: at a tenant's first request, or for a tenant the
        keys file gained; a burst of them loads no more at once). An engine that closes
        while the replica serves has its copies (with ``tenant_learning``, the call
        forecaster it learned over the shared one) freed a little at a time in a worker
        thread, in :attr:`frees` (:func:`~preload.learning._freeing.free_gradually`).
        """
        knowledge = self.knowledge
        sources: dict[str, Source] = {} if knowledge is None else {knowledge.name: knowledge}
        if self.more_sources is not None:
            sources.update(self.more_sources(tenant))
        call_sources: Sequence[CallSource] = self.tools(tenant) if self.tools is not None else ()
        forecaster, call_predictor = await anyio.to_thread.run_sync(
            self.models_of, call_sources, limiter=self._loading
        )
        async with PreloadEngine(
            replace(self.config, tenant=tenant),
            sources=sources,
            forecaster=forecaster,
            call_sources=call_sources,
            call_predictor=call_predictor,
            max_sessions=self.config.server.max_sessions,
            requests_in_flight=self.in_flight,
        ) as engine:
            yield SessionGate(tenant, engine, store, max_sessions=engine.max_sessions)
        own = self.shared is None or self.config.server.tenant_learning
        if own and not self.stopping and self.frees is not None:
            # The engine closed while the replica serves (server.max_open_tenants, or
            # its tenant gone): its copies (or what it learned over the shared models,
            # which are left whole) are freed a little at a time in a worker thread,
            # since dropping them at once would hold the loop for tens of ms; in the
            # background, so that the engine opening next does not wait for it.
            self.frees.start_soon(self._free, tenant, (forecaster, call_predictor))

    async def _free(self, tenant: str, models: tuple[object, ...]) -> None:
        try:
            await anyio.to_thread.run_sync(free_gradually, *models, limiter=self._freeing)
        except Exception:  # what is left is freed when the last reference drops
            logger.exception("freeing tenant %s's closed engine's models failed", tenant)


async def _open_tenants(
    stack: AsyncExitStack, tenancy: _Tenancy, keys: KeyRing, store: SessionStore
) -> tuple[OpenTenants, OutcomesWriter | None]:
    """
    The tenants' engines, every one opened now, or none with ``server.max_open_tenants``
    (each then opens at its first request), closed as ``stack`` unwinds, after their
    outcomes are saved; and the outcomes writer, when there is one.
    """
    config = tenancy.config
    lazy = config.server.max_open_tenants > 0
    tenancy.load_shared()
    tenants = OpenTenants(
        keys.tenants,
        partial(tenancy.open_gate, store=store),
        max_open=config.server.max_open_tenants,
    )
    # Entered before the engines' keepers, so left after them: a closed engine's
    # copies being freed are, before the server stops.
    tenancy.frees = await stack.enter_async_context(anyio.create_task_group())
    writer = _outcomes_writer(config, tenants.gates)
    if writer is not None:  # a tenant's last save as its engine closes
        tenants.before_close = writer.retire
    tenants.start(await stack.enter_async_context(anyio.create_task_group()))

    async def close_all() -> None:
        tenancy.stopping = True
        await tenants.aclose()

    stack.push_async_callback(close_all)  # the outcomes saved, then closed
    if not lazy:
        await tenants.open_all()
    return tenants, writer


def create_app(
    settings: ServerSettings | None = None, *, read: ModelsRead | None = None
) -> FastAPI:
    """
    The API over one engine per tenant of the keys (``read``: the model files, already
    read, for its engines to take rather than read them again).

    Raises:
        ConfigError, InputError: A file of the settings is not usable.
        ValueError: ``PRELOAD_API_KEYS`` is malformed, or no keys are given.
    """
    settings = settings or ServerSettings()
    config = EngineConfig.from_toml(settings.config) if settings.config else EngineConfig()
    keys = _keys(settings)
    # the tenants' learners stand aside for any request
    tenancy = _Tenancy(settings, config, RequestsInFlight(), read)
    if config.server.outcomes_dir:  # fail at start, not at the first save
        _check_folder("server.outcomes_dir", config.server.outcomes_dir)
    sys.setswitchinterval(config.server.switch_interval_s)
    timings = Reservoir()
    collector = IdleCollector(config.server.gc_thresholds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = _store(config)
            stack.push_async_callback(store.aclose)
            await store.ping()  # fail fast: the store is required
            tenants, writer = await _open_tenants(stack, tenancy, keys, store)
            monitor = LoopMonitor()
            tg = await stack.enter_async_context(anyio.create_task_group())
            tg.start_soon(monitor.run)
            stack.callback(tg.cancel_scope.cancel)
            if writer is not None:
                tg.start_soon(writer.run)
            follower = None
            if config.server.follow and store.shared:
                follower = Follower(store, tenants.gates)
                tg.start_soon(follower.run)
            gc_pauses = Reservoir()
            server = app.state.server = _Server(
                config, keys, store, tenants, monitor, timings, gc_pauses, collector, follower
            )
            for watcher in _watchers(server, settings, tenancy):
                tg.start_soon(watcher.run)
            # What start-up made (the models above all) lives as long as the process:
            # out of the collector's sight, a full collection no longer walks it while
            # requests wait.
            gc.collect()
            gc.freeze()
            # Young passes a little rarer, the long passes over the oldest much rarer,
            # and run between requests (see IdleCollector).
            stack.enter_context(collector.serving())
            tg.start_soon(collector.run)
            stack.enter_context(watch_gc(gc_pauses))  # the pauses while serving
            logger.info("serving tenants %s on a %s store", keys.tenants, type(store).__name__)
            yield

    app = FastAPI(
        title="preload",
        version="1",
        summary="Predictive context preloading: the context of each request, within budget.",
        lifespan=lifespan,
    )
    _add_errors(app)
    app.include_router(router)
    app.add_middleware(
        _Limits,
        max_body_bytes=config.server.max_body_bytes,
        timings=timings,
        collector=collector,
    )
    return app


def _watchers(
    server: _Server, settings: ServerSettings, tenancy: _Tenancy
) -> list[FileWatcher[Any]]:
    """
    The files followed while serving: the keys file (``server.keys_reload_s``) and,
    with ``server.share_models``, the model files (``server.models_reload_s``); each
    watcher set on ``server`` too.
    """
    reload = server.config.server
    if settings.keys and reload.keys_reload_s:
        server.keys_watcher = FileWatcher(
            "keys file",
            [Path(settings.keys)],
            server.keys,
            reload.keys_reload_s,
            partial(KeyRing.from_file, settings.keys),
            partial(_keys_changed, server),
        )
    shared = tenancy.shared
    if shared is not None and reload.models_reload_s:
        files = [Path(f) for f in (settings.model, settings.calls_model) if f]
        server.models_watcher = FileWatcher(
            "model files",
            files,
            shared,
            reload.models_reload_s,
            partial(SharedModels.load, settings.model, settings.calls_model),
            partial(_models_changed, shared),
            settle=True,  # a model copied in place is not read half-written
        )
    return [w for w in (server.keys_watcher, server.models_watcher) if w is not None]


async def _keys_changed(server: _Server, before: KeyRing, keys: KeyRing) -> None:
    """
    Take the keys read again: a key gone is refused from the next request on, and the
    tenants follow (see :meth:`OpenTenants.set_tenants`).
    """
    server.keys = keys
    server.tenants.set_tenants(keys.tenants)
    added = sorted(set(keys.tenants) - set(before.tenants))
    removed = sorted(set(before.tenants) - set(keys.tenants))
    logger.info("%d keys now; tenants added %s, removed %s", len(keys), added, removed)


async def _models_changed(shared: SharedModels, before: SharedModels, models: SharedModels) -> None:
    """
    Forecast from the models read again, in every tenant's engine (their views of
    ``shared`` follow it; each replaced under its lock, in a worker thread, since a
    forecast may hold it).
    """
    await anyio.to_thread.run_sync(shared.replace_with, models)


def app_from_environment() -> FastAPI:
    """
    The app of the settings in ``PRELOAD_SERVE_SETTINGS`` (uvicorn's factory).
    """
    return create_app(ServerSettings.from_json(os.environ.get(SETTINGS_ENV, "{}")))


def _keys(settings: ServerSettings) -> KeyRing:
    if settings.keys:
        return KeyRing.from_file(settings.keys)
    value = os.environ.get(KEYS_ENV)
    if not value:
        raise ValueError(
            f"no API keys: pass --keys FILE or set {KEYS_ENV}; make one with "
            "'preload keys new --tenant NAME --keys keys.jsonl'"
        )
    return KeyRing.from_env(value)


def _store(config: EngineConfig) -> SessionStore:
    server = config.server
    if config.cache.backend == "redis":
        return RedisSessionStore(
            config.cache.redis_url,
            prefix=f"{config.cache.namespace or 'preload'}:session",
            session_ttl_s=server.session_ttl_s,
            lease_ttl_s=server.lease_ttl_s,
            lease_wait_s=server.lease_wait_s,
            timeout_s=max(config.cache.redis_timeout_s, 1.0),
            max_turns=config.limits.max_session_turns,
        )
    return MemorySessionStore(
        lease_wait_s=server.lease_wait_s, max_turns=config.limits.max_session_turns
    )


def check_tools(settings: ServerSettings) -> None:
    """
    The call sources ``--tools`` gives the first tenant of the keys, tried once before
    the server listens: each a :class:`~preload.calls.CallSource`, whose optional
    ``backend_name`` is a name (what a tenant's engine would refuse as it opens).

    Raises:
        ValueError: A source's ``backend_name`` is not a name, or the factory or the keys
            cannot be read; the message names ``--tools`` and the tenant.
        TypeError: The factory gives something that is not a call source.
    """
    tools = _factory(settings.tools, "--tools")
    tenants = _keys(settings).tenants
    if tools is None or not tenants:
        return
    where = f"--tools {settings.tools!r}, tenant {tenants[0]!r}"
    for source in tools(tenants[0]):
        if not isinstance(source, CallSource):
            raise TypeError(f"{where}: {source!r:.80} is not a call source (name, read_only, call)")
        try:
            backend_of(source)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


def _factory(spec: str | None, option: str) -> Callable[[str], Any] | None:
    """
    The callable ``module:attribute`` names.

    Raises:
        ValueError: It cannot be imported.
        TypeError: It is not callable.
    """
    if spec is None:
        return None
    module, sep, attribute = spec.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"{option} {spec!r}: expected module:attribute")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{option} {spec!r}: cannot import it: {exc}") from None
    if not callable(found):
        raise TypeError(f"{option} {spec!r} is not callable")
    return found  # type: ignore[no-any-return]


# -- errors ----------------------------------------------------------------------------


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


#: The codes of the errors the web framework answers itself (no route, no method).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _add_errors(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.code, exc.message, exc.field)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0]
        where = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query")]
        if first.get("type") == "json_invalid":  # its loc is where the JSON broke off
            where = []
        field = ".".join(where) or "body"
        return _error(422, "invalid_request", f"{field}: {first.get('msg', 'invalid')}", field)

    async def too_large(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InputTooLargeError)
        return _error(413, "too_large", str(exc), exc.field or exc.key)

    async def busy(request: Request, exc: Exception) -> Response:
        return _error(409, "session_busy", "another request of this session is still being served")

    async def conflict(request: Request, exc: Exception) -> Response:
        return _error(409, "conflict", "the session changed meanwhile; send the request again")

    async def unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("session store unavailable: %s", exc)
        return _error(503, "store_unavailable", "the session store cannot be reached; retry")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body FastAPI could not parse: nested past reading
            return _error(422, "invalid_request", "body: cannot be read as JSON", "body")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(InputTooLargeError, too_large)
    app.add_exception_handler(SessionBusy, busy)
    app.add_exception_handler(StoreConflict, conflict)
    app.add_exception_handler(StoreUnavailable, unavailable)


# -- routes ----------------------------------------------------------------------------


class _Limits:
    """
    ASGI middleware: refuses a body above ``max_body_bytes`` with 413 (by its
    Content-Length, or as a chunked body streams in), times every request of the
    API (the ``Server-Timing`` header, and ``timings`` for the metrics) and counts the
    requests in flight for ``collector``.
    """

    def __init__(
        self, app: Any, *, max_body_bytes: int, timings: Reservoir, collector: IdleCollector
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timings = timings
        self.collector = collector

    def _too_large(self) -> JSONResponse:
        """
        The 413 answer to a body above the limit (made only when sent).
        """
        limit = self.max_body_bytes
        return _error(413, "too_large", f"the body is above {limit:,} bytes", "body")

    async def __call__(
        self,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.collector.enter()
        try:
            start = time.perf_counter()  # uvloop's clock counts whole milliseconds
            limit = self.max_body_bytes
            length = dict(scope.get("headers") or ()).get(b"content-length")
            if length is not None:
                if not length.isdigit() or int(length) > limit:
                    await self._too_large()(scope, receive, send)  # type: ignore[arg-type]
                    return
            elif scope.get("method") in ("POST", "PUT", "PATCH"):  # chunked: read it here
                chunks, size, more = [], 0, True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    more = message.get("more_body", False)
                    if size > limit:
                        await self._too_large()(scope, receive, send)  # type: ignore[arg-type]
                        return
                body = b"".join(chunks)
                delivered = False

                async def replay() -> Any:
                    nonlocal delivered
                    if delivered:
                        return await receive()
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}

                receive = replay
            timed_path = str(scope.get("path", "")).startswith("/v1/")

            async def timed(message: Any) -> None:
                if message["type"] == "http.response.start":
                    elapsed = time.perf_counter() - start
                    message = dict(message)
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"server-timing", server_timing({"app": elapsed}).encode()),
                    ]
                    if timed_path:
                        self.timings.add(elapsed)
                await send(message)

            await self.app(scope, receive, timed)
        finally:
            self.collector.leave()  # the last one out collects what is due

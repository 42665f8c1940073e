"""
The tool backend ``serve_calls_bench --shared-backend`` gives both of its replicas: one
process they call over HTTP, as the replicas of a chat server share their tools'
backend in production, rather than each its own in-process copy.

It serves the tools of the sessions of ``PRELOAD_BENCH_SESSIONS`` exactly as a
replica's in-process backend does (``serve_plugins.simulated_backend``: the result each
call recorded, after a lognormal latency drawn for the call itself, median
``PRELOAD_BENCH_CALL_MEDIAN_MS``, p95 ``PRELOAD_BENCH_CALL_P95_MS``, seeded by
``PRELOAD_BENCH_SEED``), at most ``PRELOAD_BENCH_CALL_CAPACITY`` calls at once (0: no
bound). Being one process, that bound holds for both replicas together: the calls over
it wait their turn, first come first served, whichever replica sent them. The replicas
reach it through ``serve_plugins.tools`` once ``PRELOAD_BENCH_BACKEND_URL`` names it;
the bench starts it (:class:`SharedBackend`) before the replicas and stops it after,
one per strategy run.

- ``POST /call`` with ``{"name": ..., "args": {...}}``: ``{"result": "..."}``; 404 with
  an error naming a tool no session calls, 400 for a body that is not such an object,
  500 when the source fails.
- ``GET /health``: 200 once the tools are loaded, with the tools, the calls served so
  far and the capacity.

    python -m simulations.serve_backend --port 8700 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulations.serve_bench import ROOT, free_port, wait_ready
from simulations.serve_plugins import simulated_backend

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.source = simulated_backend()  # in the loop, which its capacity's semaphore uses
    yield


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def call(request: Request) -> JSONResponse:
    """
    One tool call: ``{"name": ..., "args": {...}}`` in, ``{"result": ...}`` out.
    """
    source = request.app.state.source
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body is not JSON: send {name, args}")
    name = body.get("name") if isinstance(body, dict) else None
    args = body.get("args", {}) if isinstance(body, dict) else None
    if not isinstance(name, str) or not isinstance(args, dict):
        return _error(400, 'the body must be {"name": "<tool>", "args": {...}}')
    if source.read_only(name) is None:
        return _error(404, f"no tool {name!r}: no session of PRELOAD_BENCH_SESSIONS calls it")
    try:
        result = await source.call(name, args)
    except Exception as exc:
        logger.exception("tool %r failed", name)
        return _error(500, f"tool {name!r} failed: {exc!r}")
    return JSONResponse({"result": result})


async def health(request: Request) -> JSONResponse:
    """
    Ready: the tools are loaded.
    """
    source = request.app.state.source
    return JSONResponse(
        {"tools": len(source.tools), "calls": source.calls, "capacity": source.capacity}
    )


app = Starlette(
    routes=[Route("/call", call, methods=["POST"]), Route("/health", health, methods=["GET"])],
    lifespan=_lifespan,
)


class SharedBackend:
    """
    One ``serve_backend`` process on a free loopback port, with the environment
    ``env`` (the ``PRELOAD_BENCH_*`` settings of its tools).
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        """
        Start it; returns once ``/health`` answers 200.

        Raises:
            RuntimeError: The process exited before it was ready.
            TimeoutError: It was not ready in ``timeout_s``.
        """
        command = [sys.executable, "-m", "simulations.serve_backend", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, cwd=ROOT)
        wait_ready(f"{self.url}/health", self.process, "serve_backend", timeout_s)

    def calls(self) -> int:
        """
        The calls it has served (0 when it does not answer).
        """
        try:
            served: int = httpx.get(f"{self.url}/health", timeout=10).json()["calls"]
        except httpx.HTTPError:
            return 0
        return served

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

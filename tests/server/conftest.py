"""
Real servers for the HTTP tests: ``preload serve`` subprocesses on free loopback
ports, on the real Redis of the tests' conftest, with a keys file of two tenants; and
apps of ``preload serve`` in this process with their tenants' clients.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from preload.server import append_key

if TYPE_CHECKING:
    from preload.server._app import ServerSettings

HERE = Path(__file__).parent

KNOWLEDGE = [
    {"key": "service:hotels", "text": "Hotels: search by city and dates; book a room."},
    {"key": "service:trains", "text": "Trains: find departures between two stations."},
]

#: A server configuration's experiment: two arms, one with a smaller budget.
EXPERIMENT = """
[experiments]
name = "budget"
[experiments.arms.control]
weight = 1
[experiments.arms.small]
weight = 1
overlay = { budget = { total_tokens = 4000 } }
"""


class ServerProcess:
    """
    One ``preload serve`` replica.

    Args:
        config: Its configuration file.
        keys: Its keys file.
        knowledge: Its knowledge file.
        env: More environment variables.
        args: More arguments of ``preload serve``.
    """

    def __init__(
        self,
        config: Path,
        keys: Path,
        knowledge: Path,
        env: dict[str, str],
        args: Sequence[str] = (),
    ) -> None:
        with socket.socket() as sock:  # a port free on the loopback interface now
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.args = [
            sys.executable,
            "-m",
            "preload",
            "serve",
            "--config",
            str(config),
            "--keys",
            str(keys),
            "--knowledge",
            str(knowledge),
            "--sources",
            "plugins:sources",
            "--tools",
            "plugins:tools",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *args,
        ]
        self.env = {**os.environ, "PYTHONPATH": str(HERE), **env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """
        Start it and return once /healthz answers (a bounded retry on the client; a
        server that exits early fails the test with its output).
        """
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            try:
                self.process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"preload serve exited: {self.output()}")

    def output(self) -> str:
        """
        What the process printed (once it has exited).
        """
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout.read().decode(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


def app_client(app: Any, key: str) -> httpx.AsyncClient:
    """
    A client of ``app`` in this process, with ``key``.
    """
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://replica",
        headers={"Authorization": f"Bearer {key}"},
    )


@asynccontextmanager
async def in_process(
    settings: ServerSettings, keys: Mapping[str, str]
) -> AsyncIterator[tuple[Any, dict[str, httpx.AsyncClient]]]:
    """
    An app of ``preload serve`` in this process, started (its lifespan entered), and a
    client of each tenant of ``keys`` (tenant to key); yields the app's server state
    and the clients.
    """
    from preload.server._app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        clients = {
            tenant: await stack.enter_async_context(app_client(app, key))
            for tenant, key in keys.items()
        }
        yield app.state.server, clients


def memory_settings(
    tmp_path: Path, server: str = "", **files: str
) -> tuple[ServerSettings, dict[str, str]]:
    """
    The settings of an app on the memory store with tenants acme and beta (a keys
    file in ``tmp_path``; ``server``: lines of its ``[server]`` section, and what
    follows; ``files``: more settings), and each tenant's key.
    """
    from preload.server._app import ServerSettings

    keys_file = tmp_path / "keys.jsonl"
    keys = {tenant: append_key(keys_file, tenant) for tenant in ("acme", "beta")}
    config = tmp_path / "server.toml"
    config.write_text(f'[cache]\nbackend = "memory"\n[server]\n{server}', encoding="utf-8")
    return ServerSettings(config=str(config), keys=str(keys_file), **files), keys


async def answered_turn(
    client: httpx.AsyncClient, session: str, text: str, state: str | None = None
) -> None:
    """
    A request of ``session`` (with ``state``) and its reply, "Done.", both accepted.
    """
    request = {"text": text, "state": state}
    answer = await client.post(f"/v1/sessions/{session}/requests", json=request)
    assert 200 == answer.status_code, answer.text
    replied = await client.post(f"/v1/sessions/{session}/replies", json={"text": "Done."})
    assert 204 == replied.status_code


def write_config(
    path: Path, redis_url: str, more: str = "", *, turns: int = 1000, **server: object
) -> Path:
    """
    A server configuration on ``redis_url`` with small limits, so that tests can
    exceed them cheaply (``turns``: ``limits.max_session_turns``); ``more`` is TOML
    added at the end.
    """
    extra = "\n".join(f"{k} = {v!r}" for k, v in server.items())
    path.write_text(
        f"""
[cache]
backend = "redis"
redis_url = "{redis_url}"
namespace = "test"

[preloader]
request_deadline_s = 10.0

[limits]
max_request_chars = 2000
max_reply_chars = 2000
max_needs = 8
max_session_turns = {turns}

[server]
max_body_bytes = 20000
lease_wait_s = 20.0
{extra}
{more}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(name="keys")
def _keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """
    A keys file of tenants ``acme`` and ``beta``, and each tenant's key.
    """
    path = tmp_path / "keys.jsonl"
    return path, {tenant: append_key(path, tenant) for tenant in ("acme", "beta")}


@pytest.fixture(name="knowledge_file")
def _knowledge_file(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "knowledge.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in KNOWLEDGE), encoding="utf-8")
    return path


@pytest.fixture(name="start_server")
def _start_server(
    tmp_path: Path, keys: tuple[Path, dict[str, str]], knowledge_file: Path
) -> Iterator[object]:
    """
    Starts replicas on a Redis URL; stops them all after the test.
    """
    started: list[ServerProcess] = []

    def start(
        redis_url: str,
        env: dict[str, str] | None = None,
        more: str = "",
        args: Sequence[str] = (),
        **server: object,
    ) -> ServerProcess:
        config = write_config(tmp_path / f"server{len(started)}.toml", redis_url, more, **server)
        replica = ServerProcess(config, keys[0], knowledge_file, env or {}, args)
        started.append(replica)
        replica.start()
        return replica

    yield start
    for replica in started:
        replica.stop()

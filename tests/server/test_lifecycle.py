"""
A server's life with real signals and a real Redis: shutdown with a request in
flight, Redis unreachable at start, Redis down and back mid-run.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from .conftest import write_config

if TYPE_CHECKING:
    from conftest import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_finishes_the_request_in_flight_then_exits(
    redis_server: RedisServer,
    start_server: Any,
    keys: tuple[Any, dict[str, str]],
    signum: signal.Signals,
) -> None:
    """
    SIGTERM (or a hang-up) while a request waits for a slow load: the server stops
    accepting connections, serves that request in full (200, its turn stored) and
    exits 0.
    """
    with socket.create_server(("127.0.0.1", 0)) as gate:
        gate.settimeout(60)
        port = gate.getsockname()[1]
        replica = start_server(redis_server.url, {"PRELOAD_TEST_GATE_PORT": str(port)})
        answer: dict[str, httpx.Response] = {}

        def ask() -> None:
            answer["got"] = httpx.post(
                f"{replica.url}/v1/sessions/s/requests",
                json={"text": "the slow one", "needs": ["slow:1"]},
                headers={"Authorization": f"Bearer {keys[1]['acme']}"},
                timeout=60,
            )

        asking = threading.Thread(target=ask)
        asking.start()
        load, _ = gate.accept()  # the request is in flight, its load waits for us
        with load:
            replica.signal(signum)
            refused = False
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the listener is closed
                try:
                    with socket.create_connection(("127.0.0.1", replica.port), timeout=1):
                        pass
                except OSError:
                    refused = True
                    break
            assert refused, f"the server kept accepting connections after {signum.name}"
            load.sendall(b"!")
        asking.join(timeout=60)
    assert replica.process.wait(timeout=60) == 0
    got = answer["got"]
    assert 200 == got.status_code, got.text
    assert "the slow item slow:1" in got.json()["text"]
    with redis.Redis(port=redis_server.port) as client:
        assert 1 == client.llen("test:session:acme:s:turns")


def _serve_once(config: Path, keys: Path) -> subprocess.CompletedProcess[str]:
    """
    ``preload serve`` with ``config`` and ``keys``, run to its end (a server that
    fails at start).
    """
    return subprocess.run(
        [sys.executable, "-m", "preload", "serve", "--config", str(config), "--keys", str(keys)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_redis_unreachable_at_start_fails_fast(
    tmp_path: Path, keys: tuple[Any, dict[str, str]]
) -> None:
    """
    With nothing listening at the configured Redis, serve exits 2 at once with one
    line naming the URL and the key to change.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nothing listens on it
    config = write_config(tmp_path / "s.toml", f"redis://127.0.0.1:{port}/0")
    done = _serve_once(config, keys[0])
    assert 2 == done.returncode
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0 (cache.redis_url)" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_outcomes_dir_it_cannot_write_fails_at_start(
    tmp_path: Path, keys: tuple[Any, dict[str, str]], redis_server: RedisServer
) -> None:
    """
    A ``server.outcomes_dir`` that cannot be made (under a file) stops serve at start
    with exit code 2 and one line naming the key, not at its first save.
    """
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    config = write_config(tmp_path / "s.toml", redis_server.url, outcomes_dir=str(blocker / "x"))
    done = _serve_once(config, keys[0])
    assert 2 == done.returncode
    assert "server.outcomes_dir" in done.stderr and "cannot write there" in done.stderr
    assert "Traceback" not in done.stderr


def test_redis_down_mid_run_is_503_then_serves_again(
    own_redis_server: RedisServer, start_server: Any, keys: tuple[Any, dict[str, str]]
) -> None:
    """
    While Redis is down a request is refused with 503 (store_unavailable,
    Retry-After) and /readyz says not ready; nothing is accepted that Redis did not
    store, a session's first turn included. Once Redis is back the same server serves
    again, those sessions too.
    """
    replica = start_server(own_redis_server.url)
    headers = {"Authorization": f"Bearer {keys[1]['acme']}"}
    with httpx.Client(base_url=replica.url, headers=headers, timeout=30) as http:
        assert 200 == http.post("/v1/sessions/a/requests", json={"text": "one"}).status_code
        own_redis_server.stop()
        down = http.post("/v1/sessions/a/requests", json={"text": "two"})
        assert (503, "store_unavailable", "1") == (
            down.status_code,
            down.json()["error"]["code"],
            down.headers.get("retry-after"),
        )
        first = http.post("/v1/sessions/new/requests", json={"text": "a first turn"})
        assert 503 == first.status_code  # refused: its engine copy is taken back too
        assert 503 == http.get("/readyz").status_code
        assert 200 == http.get("/healthz").status_code
        own_redis_server.start()
        statuses = []
        for _ in range(5):  # the client's pool reconnects within a few calls
            statuses.append(
                http.post("/v1/sessions/b/requests", json={"text": "three"}).status_code
            )
            if statuses[-1] == 200:
                break
        assert 200 == statuses[-1], statuses
        assert 200 == http.get("/readyz").status_code
        assert ["three"] == [t["text"] for t in http.get("/v1/sessions/b").json()["turns"]]
        again = http.post("/v1/sessions/new/requests", json={"text": "a first turn"})
        assert (200, 0) == (again.status_code, again.json()["turn"])

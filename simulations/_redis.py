"""
A ``redis-server`` of a benchmark's own, on a free loopback port, without persistence.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

__all__ = ["free_port", "start_redis"]


def free_port() -> int:
    """
    A free TCP port on the loopback interface.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    """
    Start a ``redis-server`` and wait until it answers: the process and its URL, or None
    when the binary is missing or it did not start within 10 s.
    """
    if shutil.which("redis-server") is None:
        return None
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                return None
            try:
                proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"

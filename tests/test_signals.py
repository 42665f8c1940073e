"""
Stopping: SIGINT, SIGTERM and SIGHUP end ``preload simulate`` within 2 s, with one line,
exit code 128 + the signal, and no process left behind (worker processes included).

Each test starts a real ``preload simulate`` in a process group of its own, reads its
output until it reports progress (its workers are replaying by then), sends a real
signal and measures how long the process takes to end. No sleeping: the process's own
output and exit are the only synchronisation.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: How long the command may take to stop after the signal.
STOP_WITHIN_S = 2.0

#: How long it may take to start replaying (imports, demo generation, forks).
START_WITHIN_S = 60.0


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Path:
    """
    A configuration whose demo is large enough to replay for several seconds.
    """
    path = tmp_path / "big.toml"
    path.write_text("[replay]\ndemo_sessions = 600\n")
    return path


class Command:
    """
    ``preload simulate`` in a process group of its own, its stderr read unbuffered.
    """

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "preload", "simulate", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, as a shell job has
            bufsize=0,
        )
        assert self.process.stderr is not None
        self.stderr = self.process.stderr
        self.pgid = self.process.pid
        self.err = b""

    def read_until(self, text: str, timeout: float) -> None:
        """
        Read stderr until ``text`` appears; fail if the process ends or the time runs
        out first.
        """
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.stderr, selectors.EVENT_READ)
            while text.encode() not in self.err:
                left = deadline - time.monotonic()
                assert left > 0, f"no {text!r} within {timeout} s: {self.err!r}"
                if selector.select(left):
                    chunk = os.read(self.stderr.fileno(), 65536)
                    assert chunk, f"the command ended before {text!r}: {self.err!r}"
                    self.err += chunk

    def read_to_end(self, timeout: float) -> bytes:
        """
        Read stderr until every process holding it (workers inherit it) has closed it;
        return what came after what was read before.
        """
        seen = len(self.err)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.stderr, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                assert left > 0, f"stderr still open after {timeout} s: {self.err!r}"
                if selector.select(left):
                    chunk = os.read(self.stderr.fileno(), 65536)
                    if not chunk:
                        return self.err[seen:]
                    self.err += chunk

    def children(self) -> list[str]:
        """
        The process ids of the command's children (Linux /proc), or [] where /proc
        cannot tell.
        """
        path = Path(f"/proc/{self.pgid}/task/{self.pgid}/children")
        return path.read_text().split() if path.exists() else []

    def kill(self) -> None:
        """
        Kill whatever is left of the group (only when a test failed) and reap it.
        """
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.stderr.close()


@pytest.fixture(name="command")
def _command() -> Iterator[list[Command]]:
    """
    Holds the started command; whatever a failing test leaves is killed.
    """
    started: list[Command] = []
    yield started
    for command in started:
        command.kill()


@pytest.mark.parametrize(
    ("processes", "signum", "to_group"),
    [
        pytest.param("2", signal.SIGTERM, False, id="SIGTERM-to-main-with-workers"),
        pytest.param("2", signal.SIGINT, True, id="Ctrl-C-to-group-with-workers"),
        pytest.param("2", signal.SIGINT, False, id="SIGINT-to-main-with-workers"),
        pytest.param("1", signal.SIGTERM, False, id="SIGTERM-in-process"),
        pytest.param("1", signal.SIGINT, True, id="Ctrl-C-in-process"),
        pytest.param("2", signal.SIGHUP, False, id="SIGHUP-to-main-with-workers"),
        pytest.param("2", signal.SIGHUP, True, id="hang-up-to-group-with-workers"),
        pytest.param("1", signal.SIGHUP, False, id="SIGHUP-in-process"),
    ],
)
def test_a_signal_stops_the_replay_and_leaves_no_process(
    processes: str,
    signum: signal.Signals,
    to_group: bool,
    config: Path,
    command: list[Command],
) -> None:
    """
    The signal ends the run within 2 s with one line naming it and exit code 128 + its
    number; stderr closes (no worker holds it any more) and the process group is empty.
    A Ctrl-C reaches the whole group, workers included; a service manager or
    ``timeout -s INT`` signals the main process only.
    """
    run = Command("--config", str(config), "--strategies", "lru,popular", "--processes", processes)
    command.append(run)
    run.read_until("replaying 2 strategies: 10%", START_WITHIN_S)
    if processes == "2" and Path(f"/proc/{run.pgid}/task").exists():
        assert 2 == len(run.children()), "the workers should be replaying now"

    sent = time.monotonic()
    (os.killpg if to_group else os.kill)(run.pgid, signum)
    rest = run.read_to_end(STOP_WITHIN_S + 5)
    code = run.process.wait(timeout=STOP_WITHIN_S + 5)
    stopped_after = time.monotonic() - sent

    print(f"{signum.name} to {'group' if to_group else 'main'}: stopped in {stopped_after:.3f} s")
    assert stopped_after < STOP_WITHIN_S
    assert 128 + signum == code
    lines = rest.decode().splitlines()
    assert [f"stopped by {signum.name}: the run did not finish"] == [
        line for line in lines if "replaying 2 strategies" not in line
    ]
    with pytest.raises(ProcessLookupError):
        os.killpg(run.pgid, 0)

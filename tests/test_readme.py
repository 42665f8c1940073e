"""
The README's library example runs as written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def _run(code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """
    Run ``code`` as a script in ``folder``, as a user would.
    """
    script = folder / "example.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_library_example_runs_as_a_script(tmp_path: Path) -> None:
    """
    The first Python block of the README is a complete script: it prints the context and
    the metrics and exits 0.
    """
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert block is not None
    done = _run(block.group(1), tmp_path)
    assert 0 == done.returncode, done.stderr
    assert "tokens" in done.stdout
    assert "MetricsSnapshot(requests=1" in done.stdout


def test_the_tool_call_example_runs_as_a_script(tmp_path: Path) -> None:
    """
    The README's tool-call example runs as written: each session's call returns its
    result, and the third session's search, learned from the first two, was run ahead
    and served from the speculation.
    """
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    [block] = [b for b in blocks if "call_sources=[backend]" in b]
    done = _run(block, tmp_path)
    assert 0 == done.returncode, done.stderr
    assert [
        "3 Italian restaurants in San Jose",
        "3 Thai restaurants in Oakland",
        "3 Italian restaurants in Oakland",
    ] == done.stdout.splitlines()[:3]
    stats = done.stdout.splitlines()[3]
    assert "calls=3, read_only_calls=3, call_hits=1," in stats
    assert "speculative=1, speculative_used=1," in stats


def test_the_chained_call_example_runs_as_a_script(tmp_path: Path) -> None:
    """
    The README's example of a call that takes what the last one returned runs as
    written: the fifth session's account call ran after its lookup, before the agent
    asked for it.
    """
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    [block] = [b for b in blocks if "call_sources=[accounts]" in b]
    done = _run(block, tmp_path)
    assert 0 == done.returncode, done.stderr
    lines = done.stdout.splitlines()
    assert 5 == len(lines) and lines[-1] == "ed_fox: 3 orders (run after a call so far: 1)"
    assert all(line.endswith("so far: 0)") for line in lines[:4])

"""
Each framework example runs offline, as a user would run it, and prints what the
model received: the engine's context on every turn.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize(
    "name", ["pydantic_ai_agent.py", "langchain_agent.py", "openai_agents_session.py"]
)
def test_the_example_runs(name: str) -> None:
    """
    The example exits cleanly after three turns, each model call shown with the
    engine's context, the history among it from the second turn on.
    """
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    turns = done.stdout.split("=== user: ")[1:]
    assert 3 == len(turns)
    for i, turn in enumerate(turns):
        assert "the model received" in turn
        assert "Context for this request" in turn
        assert ("user_history" in turn) == (i > 0)
        assert "=== agent: " in turn

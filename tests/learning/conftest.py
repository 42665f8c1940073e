"""
What the call predictors' tests share: sessions that say a city their call takes, and
a predictor's guesses for a request.
"""

from __future__ import annotations

from typing import Any

CITIES = ["Lisbon", "Porto", "Faro", "Braga", "Coimbra", "Evora"]


def said_session(tool: str, arg: str, city: str, text: str) -> list[dict[str, Any]]:
    """
    A session's turns: a request that says ``city`` (``text`` formatted with it), whose
    turn calls ``tool`` with ``arg`` = ``city``, then thanks.
    """
    call = {"name": tool, "args": {arg: city}, "read_only": True}
    return [
        {"text": text.format(city=city), "system": "Here they are.", "tool_calls": [call]},
        {"text": "Thanks, bye.", "system": "Goodbye."},
    ]


def guesses(predictor: Any, text: str) -> list[tuple[str, dict[str, Any]]]:
    """
    The names and arguments ``predictor`` guesses (3 at most) for a first request of
    ``text``.
    """
    return [(g.name, dict(g.args)) for g in predictor.predict_calls("s", [], {"text": text}, k=3)]

"""
The engine inside Pydantic AI agents (``pip install 'preload[pydantic-ai]'``)::

    agent = Agent(model, capabilities=[PreloadCapability(engine)], tools=[wrapped])

.. versionadded:: 0.4
"""

from __future__ import annotations

from ._pydantic_ai import PreloadCapability, current_turn, prompt_text

__all__ = ["PreloadCapability", "current_turn", "prompt_text"]

"""
integrations: the engine inside agent frameworks, each an optional extra that imports
its framework only when its module is imported (``import preload`` never does).

- :mod:`preload.integrations.pydantic_ai` (``preload[pydantic-ai]``): ``PreloadCapability``.
- :mod:`preload.integrations.langchain` (``preload[langchain]``): ``PreloadMiddleware`` for
  ``create_agent`` and ``CompressedChatMessageHistory``.
- :mod:`preload.integrations.openai_agents` (``preload[openai-agents]``): ``PreloadSession``.

What they share is here: :func:`tool` wraps an async tool so that its calls go through
the engine for the session the adapter sets.

.. versionadded:: 0.4
"""

from __future__ import annotations

from ._common import CONTEXT_HEADER as CONTEXT_HEADER
from ._common import HISTORY_HEADER as HISTORY_HEADER
from ._common import tool as tool

__all__ = ["CONTEXT_HEADER", "HISTORY_HEADER", "tool"]

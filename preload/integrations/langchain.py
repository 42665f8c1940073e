"""
The engine inside LangChain v1 agents (``pip install 'preload[langchain]'``)::

    agent = create_agent(model, tools, middleware=[PreloadMiddleware(engine)])

and a chat message history over a compressed conversation.

.. versionadded:: 0.4
"""

from __future__ import annotations

from ._langchain import CompressedChatMessageHistory, PreloadMiddleware, thread_id

__all__ = ["CompressedChatMessageHistory", "PreloadMiddleware", "thread_id"]

"""
The engine behind OpenAI Agents SDK sessions (``pip install 'preload[openai-agents]'``)::

    session = PreloadSession(engine, "chat-1")
    run_config = RunConfig(call_model_input_filter=session.input_filter)
    await Runner.run(agent, text, session=session, run_config=run_config)

.. versionadded:: 0.4
"""

from __future__ import annotations

from ._openai_agents import PreloadSession, item_text

__all__ = ["PreloadSession", "item_text"]

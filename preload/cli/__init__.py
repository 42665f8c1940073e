"""
The ``preload`` command: ``simulate``, ``report``, ``train``, ``predict``, ``serve`` and
``keys``, a module each.

Bad input ends with a one-line ``error: ...`` naming the file, line, key or argument,
and exit code 2, never a traceback; every argument and output path is checked before
the work starts. SIGINT (Ctrl-C), SIGTERM and SIGHUP stop a run at once, worker
processes included, with one line saying so and exit code 130, 143 or 129 (128 + the
signal); ``serve`` stops gracefully on each.
"""

from __future__ import annotations

from ._main import main as main

__all__ = ["main"]

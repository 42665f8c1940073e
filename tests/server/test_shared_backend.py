"""
Tenants whose tools are one client to one backend (``--tools`` giving every tenant the
same call source object) share what their engines know of its load; tenants given
tools of their own do not. Apps of ``preload serve`` in this process, on the memory
store.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from .conftest import in_process, memory_settings

pytest.importorskip("fastapi")


@pytest.mark.parametrize(("tools", "shared"), [("shared_tools", True), ("tools", False)])
async def test_tenants_given_one_source_object_share_its_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools: str, shared: bool
) -> None:
    """
    Each tenant makes a request and a call over the API; with the same source object the two
    engines count them at one source (its limit timed both calls), with sources of
    their own, each its own call.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins
    import plugins  # type: ignore[import-not-found]

    monkeypatch.setattr(plugins, "SHARED", plugins.backend())  # none of its calls timed yet
    settings, keys = memory_settings(tmp_path, tools=f"plugins:{tools}")
    name = "lookup" if shared else "find_hotels"
    async with in_process(settings, keys) as (server, clients):
        with anyio.fail_after(30):
            for tenant, client in clients.items():
                asked = await client.post("/v1/sessions/s1/requests", json={"text": "Hello."})
                assert 200 == asked.status_code, asked.text
                call = {"name": name, "args": {"city": tenant}}
                answer = await client.post("/v1/sessions/s1/calls", json=call)
                assert 200 == answer.status_code, answer.text
        limits = [
            next(iter(server.gates[t].engine._calls._loads.values())).limit
            for t in ("acme", "beta")
        ]
    assert shared == (limits[0] is limits[1])
    assert ([2, 2] if shared else [1, 1]) == [limit._timed for limit in limits]

"""
Sources the server tests load with ``preload serve --sources plugins:sources`` (the
tests put this folder on PYTHONPATH).

- ``private``: one item, ``secret``, whose text names the tenant: what tenant
  isolation must never mix up.
- ``tools``: call sources for ``--tools plugins:tools``; ``shared_tools``: one
  client (``SHARED``) for every tenant.
- ``gate``: items ``slow:*`` whose load connects to the test's listener on
  ``PRELOAD_TEST_GATE_PORT`` and waits for a byte from it, so that the test knows a
  request is in flight (its listener accepted) and decides when it ends.
"""

from __future__ import annotations

import os

import anyio

from preload import DictSource, MissingItemError, Source
from preload.calls import CallSource, ToolSet


class GatedSource:
    """
    Items whose load waits for the test's go-ahead over TCP.
    """

    name = "gate"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.startswith("slow:")

    async def fetch(self, key: str) -> str:
        if key not in self:
            raise MissingItemError(self.name, key)
        port = int(os.environ["PRELOAD_TEST_GATE_PORT"])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.receive(1)
        return f"the slow item {key}"


def sources(tenant: str) -> dict[str, Source]:
    """
    A tenant's extra sources.
    """
    return {
        "private": DictSource({"secret": f"the secret of tenant {tenant}"}, name="private"),
        "gate": GatedSource(),
    }


def tools(tenant: str) -> list[CallSource]:
    """
    A tenant's tools: a read-only search that counts its runs in its answer, a booking
    that is not read-only, another that counts its runs (``book_room``), and a tool
    that always fails.
    """
    runs = {"n": 0}
    bookings = {"n": 0}
    toolset = ToolSet("hotels")

    async def find_hotels(city: str) -> str:
        runs["n"] += 1
        return f"run {runs['n']}: hotels in {city} for {tenant}"

    async def book_hotel(name: str) -> str:
        return f"booked {name}"

    async def book_room(name: str) -> str:
        bookings["n"] += 1
        return f"booking {bookings['n']}: {name}"

    async def broken() -> str:
        raise RuntimeError("the backend is down")

    toolset.add("find_hotels", find_hotels, read_only=True)
    toolset.add("book_hotel", book_hotel, read_only=False)
    toolset.add("book_room", book_room, read_only=False)
    toolset.add("broken", broken, read_only=True)
    return [toolset]


def backend() -> ToolSet:
    """
    A backend's client with one read-only tool, ``lookup``.
    """

    async def lookup(city: str) -> str:
        return f"the weather in {city}"

    toolset = ToolSet("backend")
    toolset.add("lookup", lookup, read_only=True)
    return toolset


#: The client ``shared_tools`` gives every tenant (a test may put a new one here).
SHARED = backend()


def shared_tools(tenant: str) -> list[CallSource]:
    """
    One client to one backend for every tenant: the same call source object.
    """
    return [SHARED]


def bad_backend_tools(tenant: str) -> list[CallSource]:
    """
    A call source whose ``backend_name`` is not a name: what ``preload serve`` refuses
    before it listens.
    """
    source = ToolSet("crm")
    source.backend_name = ""  # type: ignore[attr-defined]
    return [source]

"""
Sources the server tests load with ``preload serve --sources plugins:sources`` (the
tests put this folder on PYTHONPATH).

- ``private``: one item, ``secret``, whose text names the tenant: what tenant
  isolation must never mix up.
- ``gate``: items ``slow:*`` whose load connects to the test's listener on
  ``PRELOAD_TEST_GATE_PORT`` and waits for a byte from it, so that the test knows a
  request is in flight (its listener accepted) and decides when it ends.
"""

from __future__ import annotations

import os

import anyio

from preload import DictSource, MissingItemError, Source


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

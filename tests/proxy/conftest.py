"""Fixtures shared by the proxy tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.proxy.raw import Handler, RawServer


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()

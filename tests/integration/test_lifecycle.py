"""Given a broker process, when it is told to stop or a client goes quiet, then it behaves as Kafka does."""

from __future__ import annotations

import socket

from moldau.client.client import Client
from moldau.protocol.records import Record, build_batch


def test_sigterm_shuts_down_cleanly_and_restart_keeps_data(broker_process, tmp_path):
    data_dir = tmp_path / "data"
    broker = broker_process(data_dir)
    with Client(broker.bootstrap_servers) as client:
        client.create_topic("kept", 2)
        client.produce("kept", 1, build_batch([Record(0, 5, b"k", b"v", [])]))
    assert broker.stop() == 0
    assert (data_dir / ".kafka_cleanshutdown").exists()
    assert "clean_shutdown=True" not in broker.log_text()

    again = broker_process(data_dir, port=broker.port)
    with Client(again.bootstrap_servers) as client:
        assert client.partitions_of("kept") == [0, 1]
        assert client.list_offset("kept", 1, -1) == 1
    assert "clean_shutdown=True" in again.log_text()
    # The marker is removed while running, so a later crash is recognised as one.
    assert not (data_dir / ".kafka_cleanshutdown").exists()


def test_idle_connections_are_closed(broker_process):
    broker = broker_process(connections_max_idle_ms=300)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        assert sock.recv(1) == b""  # closed by the broker, well before the 10 s timeout

"""Given a broker running on a log dir, when a second broker (a process, or embedded in Python) is started
on the same dir, then it refuses with one line naming the dir and the holder, and exits non-zero; the
first broker keeps serving, and once it stops the dir can be used again (Kafka's `.lock`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.client.client import Client
from moldau.protocol.records import Record, build_batch
from moldau.storage.log_dir_lock import LogDirLockedError
from moldau.testing import running_broker
from tests.fixtures import BrokerProcess, fetched_values


def test_second_broker_process_on_the_same_log_dir_refuses_to_start(tmp_path: Path):
    data_dir = tmp_path / "data"
    first = BrokerProcess(data_dir).start()
    second = BrokerProcess(data_dir)
    try:
        with Client(first.bootstrap_servers) as client:
            client.create_topic("locked", 1)
            client.produce("locked", 0, build_batch([Record(0, 1000, None, b"before", [])]))
        with pytest.raises(RuntimeError, match="exited with"):
            second.start()
        assert second.process is not None and second.process.wait(10) != 0
        refusals = [line for line in second.log_text().splitlines() if "broker failed" in line]
        assert len(refusals) == 1, second.log_text()
        assert str(data_dir) in refusals[0] and f"pid {first.process.pid}" in refusals[0]
        assert f"127.0.0.1:{first.port}" in refusals[0]
        assert "Traceback" not in second.log_text()
        with Client(first.bootstrap_servers) as client:  # the holder is untouched
            client.produce("locked", 0, build_batch([Record(0, 1000, None, b"after", [])]))
    finally:
        assert first.stop() == 0
    second.start()  # released at shutdown
    try:
        assert fetched_values(second.bootstrap_servers, "locked") == [b"before", b"after"]
    finally:
        assert second.stop() == 0


def test_embedded_broker_refuses_a_log_dir_a_broker_process_holds(tmp_path: Path):
    process = BrokerProcess(tmp_path / "data").start()
    try:
        with pytest.raises(LogDirLockedError, match=f"pid {process.process.pid}"), \
                running_broker(tmp_path / "data"):
            pass
    finally:
        assert process.stop() == 0
    with running_broker(tmp_path / "data") as embedded:
        # and an embedded holder refuses another embedded broker
        with pytest.raises(LogDirLockedError), running_broker(tmp_path / "data"):
            pass
        assert embedded.broker.log_manager.failure_channel.offline_log_dirs() == {}


def test_a_sigkilled_broker_leaves_no_stale_lock(tmp_path: Path):
    data_dir = tmp_path / "data"
    first = BrokerProcess(data_dir).start()
    with Client(first.bootstrap_servers) as client:
        client.create_topic("killed", 1)
        client.produce("killed", 0, build_batch([Record(0, 1000, None, b"acked", [])]))
    first.kill()  # the kernel drops the flock with the process; the .lock file stays
    assert (data_dir / ".lock").exists()
    second = BrokerProcess(data_dir).start()
    try:
        assert fetched_values(second.bootstrap_servers, "killed") == [b"acked"]
    finally:
        assert second.stop() == 0

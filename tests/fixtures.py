"""Helpers for starting brokers (in-process and as real processes), shared by every test module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROCESS_START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)  # polling a port: there is no event to await across processes
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


class BrokerProcess:
    """`moldau server` as a real child process, on a free loopback port, with a given data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, **overrides: object) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.overrides = {"listeners": f"PLAINTEXT://127.0.0.1:{self.port}", "log.dirs": str(data_dir)}
        self.overrides.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"broker-{self.port}.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> BrokerProcess:
        args = [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "INFO"]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ))
        wait_for_port(self.port, PROCESS_START_TIMEOUT_S, self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no clean-shutdown marker."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else 0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def broker():
    """An in-process broker with 3 default partitions on a free port and a temporary data dir."""
    from moldau.testing import running_broker

    with running_broker(num_partitions=3) as embedded:
        yield embedded


@pytest.fixture
def broker_process(tmp_path):
    """A real `moldau server` process; stopped (or killed) at the end of the test."""
    started: list[BrokerProcess] = []

    def start(data_dir: Path | None = None, **overrides: object) -> BrokerProcess:
        process = BrokerProcess(data_dir or tmp_path / "data", **overrides).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def read_all(bootstrap: str, topic: str, partition: int = 0) -> list[bytes]:
    """Every record value of a partition, from its log start offset to its high watermark (own client)."""
    from moldau.client.client import Client
    from moldau.protocol.records import decode_batch, iter_batches

    values: list[bytes] = []
    with Client(bootstrap) as client:
        end = client.list_offset(topic, partition, -1)
        offset = client.list_offset(topic, partition, -2)
        while offset < end:
            data = bytes(client.fetch(topic, partition, offset, max_wait_ms=0).records or b"")
            assert data, f"no data at offset {offset} below the high watermark {end}"
            for pos, header in iter_batches(data):
                for record in decode_batch(data[pos : pos + header.size_in_bytes]):
                    if record.offset >= offset:
                        values.append(record.value)
                offset = header.last_offset + 1
    return values


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


# Group tests run with short timers: Kafka's 3 s initial rebalance delay and 6 s minimum session timeout
# would make each rebalance scenario take many seconds. Few __consumer_offsets partitions keep startup quick.
GROUP_TEST_OVERRIDES = {
    "group.initial.rebalance.delay.ms": 100,
    "group.min.session.timeout.ms": 500,
    "offsets.topic.num.partitions": 5,
}


@pytest.fixture
def group_broker():
    """An in-process broker tuned for consumer-group tests (6 default partitions, fast rebalances)."""
    from moldau.testing import running_broker

    with running_broker(num_partitions=6, **{k.replace(".", "_"): v for k, v in GROUP_TEST_OVERRIDES.items()}) as b:
        yield b

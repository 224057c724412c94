"""Run a real broker inside this process, for tests and embedded use.

    from moldau.testing import running_broker

    with running_broker(num_partitions=3) as broker:
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers})

The broker gets a free loopback port and a temporary data directory (or `data_dir`), and runs on
its own event loop in a background thread, so synchronous client code can talk to it directly.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moldau.broker.config import BrokerConfig
from moldau.broker.server import Broker

START_TIMEOUT_S = 30.0


class EmbeddedBroker:
    """A broker running on a background thread. Use `running_broker()` rather than this directly."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.broker = Broker(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="moldau-broker", daemon=True)

    @property
    def bootstrap_servers(self) -> str:
        """host:port of the PLAINTEXT listener (or of the first listener when there is none)."""
        return self.bootstrap("PLAINTEXT" if "PLAINTEXT" in self.broker.bound else next(iter(self.broker.bound)))

    def bootstrap(self, listener: str) -> str:
        """host:port of the listener named `listener` (e.g. "SASL_SSL")."""
        host, port = self.broker.bound[listener.upper()]
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return self.broker.bound["PLAINTEXT"][1]

    def call(self, coro: Any, timeout: float = START_TIMEOUT_S) -> Any:
        """Run a coroutine on the broker's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.call(self.broker.start())

    def stop(self) -> None:
        try:
            self.call(self.broker.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            self._loop.close()


@contextmanager
def running_broker(data_dir: str | Path | None = None, **overrides: Any) -> Iterator[EmbeddedBroker]:
    """Start a broker on 127.0.0.1 with a free port; keyword overrides use `_` for `.` in Kafka's names."""
    with tempfile.TemporaryDirectory(prefix="moldau-") as tmp:
        settings: dict[str, Any] = {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "log.dirs": str(data_dir or tmp),
        }
        settings.update({key.replace("_", "."): value for key, value in overrides.items()})
        embedded = EmbeddedBroker(BrokerConfig(settings))
        embedded.start()
        try:
            yield embedded
        finally:
            embedded.stop()

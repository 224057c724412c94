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
        host, port = self.broker.bound["PLAINTEXT"]
        return f"{host}:{port}"

    @property
    def schema_registry_url(self) -> str:
        """The built-in schema registry's URL (start with `running_broker(schema_registry=True)`)."""
        if self.broker.schema_registry is None:
            raise RuntimeError("no schema registry: start the broker with running_broker(schema_registry=True)")
        return str(self.broker.schema_registry.url)

    @property
    def port(self) -> int:
        return self.broker.bound["PLAINTEXT"][1]

    def call(self, coro: Any, timeout: float = START_TIMEOUT_S) -> Any:
        """Run a coroutine on the broker's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        try:
            self.call(self.broker.start())
        except BaseException:
            # e.g. LogDirLockedError: another broker holds the log dir. Leave no loop or lock behind.
            self.broker.log_manager.unlock_log_dirs()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            self._loop.close()
            raise

    def stop(self) -> None:
        try:
            self.call(self.broker.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            self._loop.close()


@contextmanager
def running_broker(data_dir: str | Path | None = None, schema_registry: bool = False,
                   **overrides: Any) -> Iterator[EmbeddedBroker]:
    """Start a broker on 127.0.0.1 with a free port; keyword overrides use `_` for `.` in Kafka's names.

    `schema_registry=True` also starts the built-in schema registry on a free port: `broker.schema_registry_url`.
    """
    with tempfile.TemporaryDirectory(prefix="moldau-") as tmp:
        settings: dict[str, Any] = {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "log.dirs": str(data_dir or tmp),
        }
        if schema_registry:
            settings["schema.registry.listeners"] = "http://127.0.0.1:0"
        settings.update({key.replace("_", "."): value for key, value in overrides.items()})
        embedded = EmbeddedBroker(BrokerConfig(settings))
        embedded.start()
        try:
            yield embedded
        finally:
            embedded.stop()

"""The broker process: storage, metadata and listeners on one asyncio event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from moldau.broker.config import BrokerConfig, Listener
from moldau.broker.connection import KafkaConnection
from moldau.broker.dynamic_config import ConfigManager
from moldau.broker.fetch_session import FetchSessionCache
from moldau.broker.handlers import HANDLERS, supported_versions
from moldau.broker.log_flusher import LogFlusher
from moldau.broker.log_retention import LogRetention
from moldau.broker.producer_id_manager import ProducerIdManager
from moldau.broker.replica_manager import ReplicaManager
from moldau.broker.topic_config import broker_default_log_config
from moldau.cluster.metadata_store import LocalMetadataStore
from moldau.coordinator.service import Coordinator
from moldau.coordinator.transaction_coordinator import TransactionCoordinator
from moldau.storage.errors import StorageError
from moldau.storage.log_cleaner import CleanerConfig, LogCleaner
from moldau.storage.log_manager import LogManager

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class BrokerEndpoint:
    node_id: int
    host: str
    port: int
    rack: str | None = None


def new_cluster_id() -> str:
    """Kafka's `Uuid.randomUuid().toString()`: 22 characters of URL-safe base64."""
    return urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class Broker:
    """A single Kafka-compatible broker. `await start()`, then `await stop()`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.connections: set[KafkaConnection] = set()
        self.handlers = HANDLERS
        self.supported_versions = supported_versions()
        self.fetch_sessions = FetchSessionCache()
        self.servers: list[asyncio.base_events.Server] = []
        self.bound: dict[str, tuple[str, int]] = {}
        self._background: list[asyncio.Task[None]] = []
        self.schema_registry: Any = None  # moldau.registry.RegistryServer when schema.registry.listeners is set
        log_dirs = config.log_dirs
        self.store = LocalMetadataStore(log_dirs[0])
        self.log_manager = LogManager(log_dirs, broker_default_log_config(config))
        self.replica_manager = ReplicaManager(config, self.log_manager, self.store)
        self.producer_id_manager = ProducerIdManager(log_dirs[0])
        self.log_cleaner = LogCleaner(
            CleanerConfig(
                num_threads=config["log.cleaner.threads"],
                dedupe_buffer_size=config["log.cleaner.dedupe.buffer.size"],
                backoff_ms=config["log.cleaner.backoff.ms"],
                enable_cleaner=config["log.cleaner.enable"],
            ),
            log_dirs,
            self.log_manager.all_logs,
        )
        self.config_manager = ConfigManager(config, self.replica_manager)
        self.log_retention = LogRetention(config, self.log_manager)
        self.log_flusher = LogFlusher(config, self.log_manager)
        self.group_coordinator = Coordinator(config, self.replica_manager)
        self.transaction_coordinator = TransactionCoordinator(config, self.replica_manager,
                                                              self.producer_id_manager, self.group_coordinator)

    @property
    def cluster_id(self) -> str:
        return self.store.cluster_id

    def endpoints(self, listener_name: str) -> list[BrokerEndpoint]:
        """The brokers of the cluster as clients on `listener_name` should reach them."""
        for listener in self.config.advertised_listeners:
            if listener.name == listener_name:
                host, port = listener.host, listener.port
                if port == 0 and listener_name in self.bound:
                    port = self.bound[listener_name][1]
                if host in ("", "0.0.0.0", "::"):
                    host = socket.gethostname()
                return [BrokerEndpoint(self.node_id, host, port)]
        host, port = self.bound.get(listener_name, ("localhost", 9092))
        return [BrokerEndpoint(self.node_id, host, port)]

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        started = time.monotonic()
        self.log_manager.lock_log_dirs(self._lock_holder())  # before anything reads or writes a log dir
        if not self.store.cluster_id:
            self.store.set_cluster_id(self.config["cluster.id"] or new_cluster_id())
        self.config_manager.load()  # dynamic broker configs, before the logs take their defaults
        await asyncio.to_thread(self.log_manager.startup)
        self.replica_manager.load()
        self.log_cleaner.startup()  # compaction threads (log.cleaner.enable)
        self.group_coordinator.load()  # replay __consumer_offsets before serving
        self.transaction_coordinator.load()  # replay __transaction_state before serving
        for listener in self.config.listeners:
            await self._listen(listener)
        self._background.append(self.loop.create_task(self._housekeeping()))
        self._background += [self.loop.create_task(task) for task in self.log_flusher.tasks()]
        self._background.append(self.loop.create_task(self._expire_producer_ids()))
        self._background.append(self.loop.create_task(self.log_retention.run()))
        self._background.append(self.loop.create_task(self.group_coordinator.run_expiry()))
        self._background.append(self.loop.create_task(self.transaction_coordinator.run()))
        await self._start_schema_registry()
        log.info("broker %d of cluster %s started in %.0f ms, listening on %s", self.node_id,
                 self.cluster_id, (time.monotonic() - started) * 1000,
                 ", ".join(f"{name}://{h}:{p}" for name, (h, p) in self.bound.items()))

    def _lock_holder(self) -> str:
        listeners = ",".join(f"{lst.name}://{lst.host}:{lst.port}" for lst in self.config.listeners)
        return f"pid {os.getpid()} on host {socket.gethostname()}, node.id {self.node_id}, listeners {listeners}"

    async def _start_schema_registry(self) -> None:
        """`schema.registry.listeners`: run the registry beside the broker, a Kafka client of it over loopback
        (moldau.registry never imports the broker)."""
        if not self.config["schema.registry.listeners"]:
            return
        from moldau.registry.server import RegistryConfig, RegistryServer

        host, port = next(iter(self.bound.values()))
        users = dict(pair.split(":", 1) for pair in self.config["schema.registry.basic.auth.users"])
        self.schema_registry = RegistryServer(RegistryConfig(
            bootstrap_servers=f"{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{port}",
            listener=self.config["schema.registry.listeners"][0],
            topic=self.config["schema.registry.kafkastore.topic"],
            replication_factor=self.config["offsets.topic.replication.factor"],
            basic_auth_users=users or None,
        ))
        await asyncio.to_thread(self.schema_registry.start)  # its Kafka client needs this loop running

    async def _listen(self, listener: Listener) -> None:
        server = await self.loop.create_server(
            lambda: KafkaConnection(self, listener.name),
            host=listener.host or None,
            port=listener.port,
            reuse_address=True,
            backlog=1024,
        )
        for sock in server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = server.sockets[0].getsockname()[:2]
        self.bound[listener.name] = (listener.host or host, port)
        self.servers.append(server)

    async def _housekeeping(self) -> None:
        """Idle connections (flushes and checkpoints: `log_flusher`)."""
        idle_limit = self.config["connections.max.idle.ms"] / 1000
        while True:
            await asyncio.sleep(0.5)
            try:
                now = self.loop.time()
                for connection in list(self.connections):
                    if now - connection.last_active > idle_limit:
                        log.info("closing idle connection from %s (connections.max.idle.ms)", connection.peer)
                        connection.close()
            except Exception:
                log.exception("housekeeping failed; retrying")

    async def _expire_producer_ids(self) -> None:
        """Kafka's PeriodicProducerExpirationCheck: forget producers idle for `producer.id.expiration.ms`."""
        while True:
            await asyncio.sleep(self.config["producer.id.expiration.check.interval.ms"] / 1000)
            now_ms = int(time.time() * 1000)
            expiration_ms = self.config["producer.id.expiration.ms"]
            for partition_log in self.log_manager.all_logs():
                expired = partition_log.remove_expired_producers(now_ms, expiration_ms)
                if expired:
                    log.info("expired %d producer id(s) of %s", expired, partition_log.dir.name)

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, close connections, flush and checkpoint every log."""
        if self.schema_registry is not None:
            await asyncio.to_thread(self.schema_registry.stop)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)  # retention finishes its deletes
        self.group_coordinator.shutdown()
        for server in self.servers:
            server.close()
        tasks = [c.task for c in self.connections if c.task is not None]
        for connection in list(self.connections):
            connection.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()
        await asyncio.to_thread(self.log_cleaner.shutdown)
        await asyncio.to_thread(self.log_manager.shutdown)
        log.info("broker %d stopped", self.node_id)

    async def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down cleanly."""
        await self.start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("received shutdown signal")
        await self.stop()


def run_broker(config: BrokerConfig) -> None:
    """Run a broker in this process until it is told to stop."""
    runner: Callable[[Coroutine[Any, Any, None]], None]
    if config["moldau.event.loop"] == "uvloop":
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    for directory in config.log_dirs:
        os.makedirs(directory, exist_ok=True)
    try:
        runner(Broker(config).serve_forever())
    except (OSError, StorageError) as exc:
        # Most often a port already in use or a log dir another broker holds: one readable line.
        log.error("broker failed: %s", exc)
        raise SystemExit(1) from None

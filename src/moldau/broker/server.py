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
from typing import TYPE_CHECKING, Any

from moldau.broker.config import BrokerConfig, Listener
from moldau.broker.connection import KafkaConnection
from moldau.broker.controller import Controller
from moldau.broker.coordinator_partitions import build_group_coordinator, build_transaction_coordinator
from moldau.broker.dynamic_config import ConfigManager
from moldau.broker.fetch_session import FetchSessionCache
from moldau.broker.handlers import HANDLERS, supported_versions
from moldau.broker.log_flusher import LogFlusher
from moldau.broker.log_retention import LogRetention
from moldau.broker.producer_id_manager import ProducerIdManager
from moldau.broker.replica_manager import ReplicaManager
from moldau.broker.throttling import QuotaEnforcer
from moldau.broker.topic_config import broker_default_log_config
from moldau.clock import SYSTEM_CLOCK, Clock
from moldau.cluster.config_store import ConfigStore, EtcdConfigStore, LocalConfigStore
from moldau.cluster.metadata_store import LocalMetadataStore
from moldau.errors import MoldauError
from moldau.security.authorizer import STANDARD_AUTHORIZER, StandardAuthorizer, parse_super_users
from moldau.security.config import ListenerConfig, listener_keystore_config
from moldau.security.listener_security import ListenerSecurity
from moldau.security.listeners import SecurityConfigError, inter_broker_listener, listener_protocols
from moldau.security.scram_store import ScramCredentialStore
from moldau.security.ssl_context import reload_keystore
from moldau.storage.errors import StorageError
from moldau.storage.log_cleaner import CleanerConfig, LogCleaner
from moldau.storage.log_manager import LogManager

if TYPE_CHECKING:
    from moldau.broker.cluster_member import ClusterMember

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

    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self.config = config
        # Kafka's Time: every wall-clock and monotonic reading of the broker goes through it (moldau/clock.py).
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.node_id = config.node_id
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.connections: set[KafkaConnection] = set()
        self.handlers = HANDLERS
        self.supported_versions = supported_versions()
        self.fetch_sessions = FetchSessionCache(clock=self.clock)
        self.servers: list[asyncio.base_events.Server] = []
        self.bound: dict[str, tuple[str, int]] = {}
        self._background: list[asyncio.Task[None]] = []
        self.schema_registry: Any = None  # moldau.registry.RegistryServer when schema.registry.listeners is set
        self.listener_security = listener_security(config)
        log_dirs = config.log_dirs
        self.store = LocalMetadataStore(log_dirs[0])
        # Dynamic configs, ACLs, SCRAM credentials and client quotas: this broker's metadata file, or the
        # cluster's etcd (attached by ClusterMember.connect), behind one interface (cluster/config_store.py).
        self.config_store: ConfigStore = LocalConfigStore(self.store) if config["metadata.store"] == "local" \
            else EtcdConfigStore()
        self.scram_credentials = ScramCredentialStore(self.config_store)
        self.authorizer = new_authorizer(config, self.config_store)
        self.quotas = QuotaEnforcer(config, self.config_store, self.clock)
        self.log_manager = LogManager(log_dirs, broker_default_log_config(config), now_ms=self.clock.time_ms)
        self.replica_manager = ReplicaManager(config, self.log_manager, self.store, clock=self.clock)
        # `metadata.store=etcd://...`: one broker of a cluster (broker/cluster_member.py); else a single broker.
        self.cluster: ClusterMember | None = None
        self.controller: Controller
        if config["metadata.store"] != "local":
            from moldau.broker.cluster_admin import ClusterTopicController
            from moldau.broker.cluster_member import ClusterMember
            from moldau.broker.inter_broker import InterBrokerSecurity

            # Followers and the marker channel reach other brokers on the inter-broker listener, with TLS and
            # SASL as it asks; a config that cannot log in is refused now (SecurityConfigError), as Kafka does.
            self.replica_manager.inter_broker = InterBrokerSecurity.from_config(config)
            self.controller = ClusterTopicController(config, self.store, self.replica_manager)
            self.cluster = ClusterMember(self)
        else:
            self.controller = Controller(config, self.store, self.replica_manager)
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
            time_ms=self.clock.time_ms,
        )
        self.config_manager = ConfigManager(config, self.replica_manager, self.config_store)
        self.config_manager.keystore_hook = self._keystore_changed
        self.log_retention = LogRetention(config, self.log_manager, self.clock)
        self.log_flusher = LogFlusher(config, self.log_manager, self.clock)
        self.group_coordinator = build_group_coordinator(config, self.replica_manager, self.controller,
                                                         clock=self.clock)
        self.transaction_coordinator = build_transaction_coordinator(
            config, self.replica_manager, self.controller, self.producer_id_manager, self.group_coordinator,
            clock=self.clock)

    @property
    def cluster_id(self) -> str:
        return self.store.cluster_id

    @property
    def controller_id(self) -> int:
        """The "controller" Metadata names to clients: this broker. Clients route controller requests there,
        and any broker serves them (they are etcd writes); a KRaft broker names a random live broker too
        (getRandomAliveBrokerId, KIP-590). Naming the elected controller sent librdkafka's admin client to a
        broker that had just died, to wait out its request timeout."""
        return self.node_id

    @property
    def elected_controller_id(self) -> int:
        """The controller DescribeCluster names (for operators: Java's describeCluster().controller(),
        `moldau cluster status`): the elected one while it is a live broker, else this broker."""
        if self.cluster is None:
            return self.node_id
        elected = self.cluster.controller_id
        return elected if elected in self.replica_manager.brokers else self.node_id

    def endpoints(self, listener_name: str, local: bool = False) -> list[BrokerEndpoint]:
        """The live brokers of the cluster (or only this one, `local`) as clients on `listener_name` should
        reach them."""
        registered = self.replica_manager.brokers
        if registered and not local:  # a cluster: the live brokers' registrations, at their endpoint for this listener
            found = []
            for broker_id in sorted(registered):
                registration = registered[broker_id]
                endpoint = registration.endpoint(listener_name)
                if endpoint is not None:
                    found.append(BrokerEndpoint(broker_id, endpoint.host, endpoint.port, registration.rack))
            return found
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
        if not self.store.cluster_id and self.cluster is None:  # a cluster member takes the cluster's id
            self.store.set_cluster_id(self.config["cluster.id"] or new_cluster_id())
        self.config_manager.load()  # dynamic broker configs, before the logs take their defaults
        self._load_dynamic_keystores()
        await asyncio.to_thread(self.log_manager.startup)
        if self.cluster is not None:
            # Lead or follow every hosted partition as etcd says; the coordinators load the internal
            # partitions this broker leads, as their leadership arrives.
            await self.cluster.connect()
            self.group_coordinator.state.loaded = True
        else:
            await asyncio.to_thread(self.controller.load)  # opens topics; rolls back half-done creates
            self.group_coordinator.load()  # replay __consumer_offsets before serving
            self.transaction_coordinator.load()  # replay __transaction_state before serving
        self.log_cleaner.startup()  # compaction threads (log.cleaner.enable)
        await self._refresh_jwks_once()
        for listener in self.config.listeners:
            await self._listen(listener)
        self._background.append(self.loop.create_task(self._housekeeping()))
        self._background.append(self.loop.create_task(self._refresh_jwks()))
        self._background += [self.loop.create_task(task) for task in self.log_flusher.tasks()]
        self._background.append(self.loop.create_task(self._expire_producer_ids()))
        self._background.append(self.loop.create_task(self.log_retention.run()))
        self._background.append(self.loop.create_task(self.group_coordinator.run_expiry()))
        self._background.append(self.loop.create_task(self.transaction_coordinator.run()))
        if self.cluster is not None:
            await self.cluster.register()  # now reachable: other brokers and clients may be sent here
        await self._start_schema_registry()
        log.info("broker %d of cluster %s started in %.0f ms, listening on %s", self.node_id,
                 self.cluster_id, (time.monotonic() - started) * 1000,
                 ", ".join(f"{name}://{h}:{p} ({self.listener_security[name].protocol.value})"
                           for name, (h, p) in self.bound.items()))

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
            ssl=self.listener_security[listener.name].ssl_context,
        )
        for sock in server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = server.sockets[0].getsockname()[:2]
        self.bound[listener.name] = (listener.host or host, port)
        self.servers.append(server)

    def _keystore_changed(self, configs: dict[str, str], validate_only: bool) -> None:
        """Dynamic `listener.name.<l>.ssl.keystore.*` (AlterConfigs): load the new certificate into the listener."""
        by_listener: dict[str, dict[str, str]] = {}
        for key, value in configs.items():
            by_listener.setdefault(str(listener_keystore_config(key)).upper(), {})[key] = value
        for name, values in by_listener.items():
            security = self.listener_security.get(name)
            if security is None:
                raise SecurityConfigError(f"{', '.join(values)}: this broker has no listener {name}")
            security.reload_keystore(values, validate_only)
            if not validate_only:
                inter_broker = self.replica_manager.inter_broker
                if name == inter_broker.listener and inter_broker.ssl_context is not None:
                    # Kafka reloads the inter-broker client side too: new connections to brokers present it.
                    reload_keystore(inter_broker.ssl_context, security.config)
                log.info("listener %s: reloaded its keystore (%s)", name, ", ".join(sorted(values)))

    def _load_dynamic_keystores(self) -> None:
        layers = {**self.config_manager.cluster_defaults(), **self.config_manager.node_configs()}
        keystores = {k: v for k, v in layers.items() if listener_keystore_config(k) is not None}
        if keystores:
            try:
                self._keystore_changed(keystores, False)
            except MoldauError as exc:  # keep the static keystore rather than not starting
                log.error("ignoring the dynamic keystore configs: %s", exc)

    async def _refresh_jwks_once(self) -> float | None:
        """Load the OAUTHBEARER key sets (sasl.oauthbearer.jwks.endpoint.url) in a thread; the next interval."""
        interval = None
        for security in self.listener_security.values():
            refresher = security.jwks_refresher()
            if refresher is not None:
                try:
                    await asyncio.to_thread(refresher[0])
                except (OSError, ValueError, ImportError) as exc:  # keep the old keys until the JWKS is reachable
                    log.warning("cannot load the JWKS of listener %s: %s", security.name, exc)
                interval = refresher[1] if interval is None else min(interval, refresher[1])
        return interval

    async def _refresh_jwks(self) -> None:
        intervals = [r[1] for s in self.listener_security.values() if (r := s.jwks_refresher()) is not None]
        while intervals:
            await asyncio.sleep(min(intervals))
            await self._refresh_jwks_once()

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
            now_ms = self.clock.time_ms()
            expiration_ms = self.config["producer.id.expiration.ms"]
            for partition_log in self.log_manager.all_logs():
                expired = partition_log.remove_expired_producers(now_ms, expiration_ms)
                if expired:
                    log.info("expired %d producer id(s) of %s", expired, partition_log.dir.name)

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, close connections, flush and checkpoint every log."""
        if self.cluster is not None:
            await self.cluster.stop()  # controlled shutdown: leaderships move now
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
        await self.replica_manager.shutdown()  # replica fetchers and ISR checks, before the logs close
        await self.controller.shutdown()  # topic changes in progress finish before the logs close
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


def listener_security(config: BrokerConfig) -> dict[str, ListenerSecurity]:
    """Each listener's security protocol, TLS context and SASL mechanisms; refuses inconsistent configs."""
    protocol_map = config["listener.security.protocol.map"]
    protocols = listener_protocols([listener.name for listener in config.listeners], protocol_map)
    advertised = listener_protocols([listener.name for listener in config.advertised_listeners], protocol_map)
    inter_broker_listener(advertised, config["inter.broker.listener.name"], config["security.inter.broker.protocol"],
                          config.is_set("security.inter.broker.protocol"))
    return {name: ListenerSecurity(name, protocol, ListenerConfig(name, config.__getitem__, config.originals))
            for name, protocol in protocols.items()}


def new_authorizer(config: BrokerConfig, store: ConfigStore) -> StandardAuthorizer | None:
    """`authorizer.class.name`: Kafka's StandardAuthorizer (or AclAuthorizer, same semantics), or none."""
    name = config["authorizer.class.name"]
    if not name:
        return None
    if not name.endswith(("StandardAuthorizer", "AclAuthorizer")):
        log.warning("authorizer.class.name %s is not available; using %s semantics", name, STANDARD_AUTHORIZER)
    return StandardAuthorizer(store, parse_super_users(config["super.users"]),
                              config["allow.everyone.if.no.acl.found"])


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
        broker = Broker(config)
    except MoldauError as exc:  # SecurityConfigError: a listener's TLS or SASL settings
        log.error("broker failed to start: %s", exc)
        raise SystemExit(2) from None
    try:
        runner(broker.serve_forever())
    except (OSError, StorageError, MoldauError) as exc:
        # Most often a port already in use, a log dir another broker holds, or an etcd that can't be reached
        # or belongs to another cluster: one readable line.
        log.error("broker failed: %s", exc)
        raise SystemExit(1) from None

"""Run the registry: the Kafka store, the service and the HTTP listener on a thread of its own.

The HTTP server (uvicorn) gets its own thread and event loop, so schema parsing and compatibility checks never
run on a broker's event loop; its Kafka client talks to the broker over loopback. The same class runs the
standalone `moldau registry` process.

    with RegistryServer(RegistryConfig("127.0.0.1:9092", listener="http://127.0.0.1:0")) as registry:
        print(registry.url)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

import uvicorn

from moldau.errors import MoldauError
from moldau.registry.app import build_app
from moldau.registry.kafka_store import (
    DEFAULT_REPLICATION_FACTOR,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOPIC,
    KafkaStore,
)
from moldau.registry.service import SchemaRegistry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RegistryConfig:
    """Confluent's names: `kafkastore.bootstrap.servers`, `listeners`, `kafkastore.topic`, ..."""

    bootstrap_servers: str
    listener: str = "http://0.0.0.0:8081"
    topic: str = DEFAULT_TOPIC
    replication_factor: int = DEFAULT_REPLICATION_FACTOR
    timeout_s: float = DEFAULT_TIMEOUT_S
    basic_auth_users: dict[str, str] | None = None  # user -> password; None: no authentication
    client_config: dict[str, Any] = field(default_factory=dict)  # extra librdkafka settings (security, ...)

    @classmethod
    def from_properties(cls, properties: dict[str, str]) -> RegistryConfig:
        """Confluent's `schema-registry.properties` names: `listeners`, `kafkastore.bootstrap.servers`,
        `kafkastore.topic`, `kafkastore.topic.replication.factor`, `kafkastore.timeout.ms`; any other
        `kafkastore.<name>` (security.protocol, sasl.*, ssl.*) goes to the Kafka client as `<name>`."""
        known = {"kafkastore.bootstrap.servers", "kafkastore.topic", "kafkastore.topic.replication.factor",
                 "kafkastore.timeout.ms"}
        servers = [s.strip().split("://")[-1] for s in properties.get("kafkastore.bootstrap.servers", "").split(",")
                   if s.strip()]
        if not servers:
            raise MoldauError("kafkastore.bootstrap.servers is required (host:port of the Kafka cluster)")
        return cls(
            bootstrap_servers=",".join(servers),
            listener=properties.get("listeners", "http://0.0.0.0:8081").split(",")[0].strip(),
            topic=properties.get("kafkastore.topic", DEFAULT_TOPIC),
            replication_factor=int(properties.get("kafkastore.topic.replication.factor",
                                                  DEFAULT_REPLICATION_FACTOR)),
            timeout_s=int(properties.get("kafkastore.timeout.ms", DEFAULT_TIMEOUT_S * 1000)) / 1000,
            client_config={k.removeprefix("kafkastore."): v for k, v in properties.items()
                           if k.startswith("kafkastore.") and k not in known},
        )


def parse_listener(listener: str) -> tuple[str, int]:
    parts = urlsplit(listener)
    if parts.scheme != "http" or parts.port is None:
        raise MoldauError(f"Invalid schema registry listener {listener!r}: expected http://host:port "
                          "(https is not supported)")
    return parts.hostname or "0.0.0.0", parts.port


class RegistryServer:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.kafka = KafkaStore(config.bootstrap_servers, config.topic, config.replication_factor,
                                config.timeout_s, config.client_config)
        self.registry = SchemaRegistry(self.kafka)
        host, port = parse_listener(config.listener)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit TCP_NODELAY (Linux). Without it h11 writes headers and body separately and
        # the body waits for the client's delayed ACK: 40 ms per response (bench/registry_bench.py).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((host, port))
        self._socket.listen(1024)
        self.host, self.port = host, self._socket.getsockname()[1]
        self._uvicorn = uvicorn.Server(uvicorn.Config(build_app(self.registry, config.basic_auth_users),
                                                      log_level="warning", access_log=False, lifespan="off"))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Read `_schemas` to the end, then serve HTTP; raises if the store cannot be read."""
        self.kafka.start()
        self.registry.repair_overridden()
        self._thread = threading.Thread(target=self._serve, name="schema-registry-http", daemon=True)
        self._thread.start()
        log.info("schema registry serving %s from topic %s at %s", self.url, self.config.topic,
                 self.config.bootstrap_servers)

    def _serve(self) -> None:
        # uvicorn installs no signal handlers off the main thread, so the broker keeps its own.
        asyncio.run(self._uvicorn.serve(sockets=[self._socket]))

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(self.config.timeout_s)
        self._socket.close()
        self.kafka.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

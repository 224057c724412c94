"""Run a real broker inside this process, for tests and embedded use.

    from moldau.testing import running_broker

    with running_broker(num_partitions=3) as broker:
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers})

    with running_secure_broker(users={"alice": "alice-secret"}) as broker:   # SASL_SSL, throw-away certs
        producer = confluent_kafka.Producer(broker.client_config("alice"))

The broker gets a free loopback port and a temporary data directory (or `data_dir`), and runs on
its own event loop in a background thread, so synchronous client code can talk to it directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moldau.broker.config import BrokerConfig
from moldau.broker.server import Broker

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
ABORT_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


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

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the broker, then its loop and thread, in at most about `timeout` + 10 seconds.

        A clean stop flushes and checkpoints every log. If that does not finish in time, the stop is
        cancelled, every connection and task is aborted, and TimeoutError says where the loop was: the broker
        no longer listens either way, so a hung stop cannot leave a broker behind for the tests that follow.
        """
        if self._loop.is_closed():
            return
        error: BaseException | None = None
        if self._thread.is_alive():
            stop_task: list[asyncio.Task[None]] = []

            async def stop_broker() -> None:
                stop_task.append(asyncio.current_task())  # type: ignore[arg-type]
                await self.broker.stop()

            stopping = asyncio.run_coroutine_threadsafe(stop_broker(), self._loop)
            try:
                stopping.result(timeout)
            except concurrent.futures.TimeoutError:
                stuck = self._loop_stack()
                awaiting = awaited_by(stop_task[0]) if stop_task else "(the stop never started)"
                stopping.cancel()
                self._abort()
                error = TimeoutError(f"broker on {self._address()} did not stop within {timeout} s; "
                                     f"aborted it. The stop was awaiting:\n{awaiting}\n"
                                     f"The loop thread was at:\n{stuck}")
            except BaseException as exc:  # noqa: BLE001 (re-raised below, after the loop is down)
                self._abort()
                error = exc
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(ABORT_TIMEOUT_S)
        if self._thread.is_alive():
            # Something blocks the loop itself: nothing scheduled on it runs, and closing a running loop is
            # an error. Stop listening from this thread, and leave the daemon thread to the interpreter.
            self._shutdown_listeners()
            stuck = self._loop_stack()
            log.error("broker loop thread is still running after stop; its listeners are shut. It is at:\n%s",
                      stuck)
            error = error or TimeoutError(f"broker loop thread did not stop; it is at:\n{stuck}")
        else:
            self._loop.close()
        if error is not None:
            raise error

    def _address(self) -> str:
        return ", ".join(f"{name}://{host}:{port}" for name, (host, port) in self.broker.bound.items())

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._thread.ident or -1)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(thread not running)"

    def _abort(self) -> None:
        """Close listeners and connections and cancel every task, without waiting on logs or threads."""
        aborted = threading.Event()

        def abort() -> None:  # a plain callback: it needs no task, so it also runs on a loop that stopped
            for server in self.broker.servers:
                server.close()
            for connection in list(self.broker.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            aborted.set()

        self._loop.call_soon_threadsafe(abort)
        aborted.wait(ABORT_TIMEOUT_S)  # if the loop is blocked, stop() shuts the listeners from outside
        self.broker.log_cleaner.shutdown(ABORT_TIMEOUT_S)  # not the loop's threads: no test inherits them

    def _shutdown_listeners(self) -> None:
        for server in self.broker.servers:
            for transport_socket in server.sockets or ():
                try:
                    # A duplicate descriptor of the same socket: shutting it down stops the listener for all.
                    with socket.socket(fileno=os.dup(transport_socket.fileno())) as listener:
                        listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def awaited_by(task: asyncio.Task[Any]) -> str:
    """Where a suspended task is, coroutine by coroutine down its await chain, and what the innermost awaits
    (Task.print_stack shows only the outermost coroutine)."""
    lines = []
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        lines.append(f'  File "{frame.f_code.co_filename}", line {frame.f_lineno}, in {frame.f_code.co_name}')
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    # The future the task sleeps on (a gather, an executor job, an event's waiter) names what it waits for.
    lines.append(f"  awaiting {getattr(task, '_fut_waiter', None)!r}"[:400])
    return "\n".join(lines)


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


class SecureBroker(EmbeddedBroker):
    """A broker with a SASL_SSL (or SASL_PLAINTEXT) listener, throw-away certificates and users.

    `bootstrap_servers` is the secured listener; `admin_bootstrap_servers` a PLAINTEXT loopback listener
    whose `User:ANONYMOUS` is a super user (for test setup). `client_config("alice")` gives the
    librdkafka/confluent-kafka settings, `client_properties("alice")` Kafka's client.properties text.
    """

    users: dict[str, str]
    ca_location: str | None
    listener: str

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap(self.listener)

    @property
    def admin_bootstrap_servers(self) -> str:
        return self.bootstrap("PLAINTEXT")

    def client_config(self, user: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.listener,
                  "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": self.users[user]}
        if self.ca_location:
            config["ssl.ca.location"] = self.ca_location
        return config

    def client_properties(self, user: str, mechanism: str = "SCRAM-SHA-512") -> str:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        lines = [f"security.protocol={self.listener}", f"sasl.mechanism={mechanism}",
                 f'sasl.jaas.config={module} required username="{user}" password="{self.users[user]}";']
        if self.ca_location:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca_location}"]
        return "\n".join(lines) + "\n"


@contextmanager
def running_secure_broker(data_dir: str | Path | None = None, *, users: dict[str, str] | None = None,
                          tls: bool = True, authorizer: bool = False, super_users: tuple[str, ...] = ("admin",),
                          **overrides: Any) -> Iterator[SecureBroker]:
    """Start a broker whose clients authenticate with SASL (PLAIN and SCRAM-SHA-256/512) over TLS.

        with running_secure_broker(users={"alice": "alice-secret"}, authorizer=True) as broker:
            producer = confluent_kafka.Producer(broker.client_config("alice"))

    Every user (default: admin/admin-secret) gets PLAIN and SCRAM credentials; with `authorizer=True`
    ACLs are enforced and `super_users` (plus the PLAINTEXT admin listener's ANONYMOUS) may do anything.
    TLS certificates are generated with `cryptography` (a test dependency).
    """
    users = {"admin": "admin-secret", **(users or {})}
    listener = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    with tempfile.TemporaryDirectory(prefix="moldau-") as tmp:
        jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required " + " ".join(
            f'user_{name}="{password}"' for name, password in users.items()) + ";"
        settings: dict[str, Any] = {
            "listeners": f"PLAINTEXT://127.0.0.1:0,{listener}://127.0.0.1:0",
            "log.dirs": str(data_dir or Path(tmp) / "data"),
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.{listener.lower()}.plain.sasl.jaas.config": jaas,
        }
        ca_location = None
        if tls:
            from moldau.testing_certs import generate_certificates

            certs = generate_certificates(Path(tmp) / "certs")
            settings["ssl.keystore.location"] = str(certs.server_keystore)
            settings["ssl.truststore.location"] = str(certs.ca)
            ca_location = str(certs.ca)
        if authorizer:
            settings["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            settings["super.users"] = ";".join([f"User:{u}" for u in super_users] + ["User:ANONYMOUS"])
        settings.update({key.replace("_", "."): value for key, value in overrides.items()})
        embedded = SecureBroker(BrokerConfig(settings))
        embedded.users, embedded.ca_location, embedded.listener = users, ca_location, listener
        embedded.start()
        try:
            embedded.call(_add_scram_users(embedded.broker, users))
            yield embedded
        finally:
            embedded.stop()


async def _add_scram_users(broker: Broker, users: dict[str, str]) -> None:
    from moldau.security.sasl.scram import MECHANISMS, new_credential

    await broker.scram_credentials.apply(
        [(name, mechanism, new_credential(mechanism, password)) for name, password in users.items()
         for mechanism in MECHANISMS], [])


def __getattr__(name: str) -> Any:
    """`running_cluster` (etcd + broker processes, with fault injection) lives in moldau.testing_cluster; it is
    offered here too, imported on first use so that a single embedded broker does not load etcd's client."""
    if name in ("running_cluster", "RunningCluster"):
        from moldau import testing_cluster

        return getattr(testing_cluster, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

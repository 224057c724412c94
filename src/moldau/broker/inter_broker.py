"""An authenticated asyncio connection from this broker to broker N (Kafka's inter-broker channel).

Followers fetch from their leaders and the transaction coordinator writes markers to remote leaders over
the *inter-broker listener* (`inter.broker.listener.name`, else the listener named by
`security.inter.broker.protocol`), as Kafka's `ReplicaFetcherBlockingSend` and
`TransactionMarkerChannelManager` do through `ChannelBuilders.clientChannelBuilder`:

- TLS with the listener's own `listener.name.<l>.ssl.*` (else `ssl.*`) configs in client mode: the truststore
  checks the peer, the keystore answers `ssl.client.auth=required`, and `ssl.endpoint.identification.algorithm`
  (default `https`) checks the host name;
- SASL with `sasl.mechanism.inter.broker.protocol` (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 here; Kafka's
  default GSSAPI is not supported) and the `username`/`password` options of
  `listener.name.<l>.<mechanism>.sasl.jaas.config` (else `sasl.jaas.config`), driven by the same sans-I/O
  exchange as Moldau's own client (security/sasl/client.py).

A refused login (or TLS handshake) logs one ERROR line per remote broker until a login succeeds again: the
callers retry with their backoff, quietly, as Kafka's NetworkClient does after an AuthenticationException.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from moldau.broker.config import BrokerConfig
from moldau.broker.frame_reader import FrameReader
from moldau.cluster.state import BrokerRegistration
from moldau.protocol import api
from moldau.security.config import ListenerConfig
from moldau.security.listeners import SecurityConfigError, SecurityProtocol, parse_protocol_map
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.client import CLIENT_MECHANISMS, SaslClientExchange
from moldau.security.sasl.jaas import parse_jaas_options
from moldau.security.ssl_context import client_context

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker can't be reached (no registration, connection refused or lost, a timeout)."""


class InterBrokerAuthenticationError(BrokerUnavailable):
    """The remote broker refused this broker's TLS handshake or SASL credentials."""


def inter_broker_listener_name(config: BrokerConfig) -> str:
    return (config["inter.broker.listener.name"] or config["security.inter.broker.protocol"] or "PLAINTEXT").upper()


@dataclass(slots=True, frozen=True)
class InterBrokerSecurity:
    """How this broker reaches the others: the inter-broker listener, its protocol, TLS context and login."""

    listener: str = "PLAINTEXT"
    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    ssl_context: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_config(cls, config: BrokerConfig) -> InterBrokerSecurity:
        """Raises SecurityConfigError with the config to fix (checked at startup, as Kafka's KafkaConfig does)."""
        listener = inter_broker_listener_name(config)
        protocols = parse_protocol_map(config["listener.security.protocol.map"])
        protocol = protocols.get(listener, SecurityProtocol.PLAINTEXT)
        if protocol == SecurityProtocol.PLAINTEXT:
            return cls(listener)
        settings = ListenerConfig(listener, config.__getitem__, config.originals)
        context = client_context(settings) if protocol.uses_tls else None
        if not protocol.uses_sasl:
            return cls(listener, protocol, context)
        mechanism = (config["sasl.mechanism.inter.broker.protocol"] or "GSSAPI").upper()
        if mechanism not in CLIENT_MECHANISMS:
            raise SecurityConfigError(
                f"sasl.mechanism.inter.broker.protocol {mechanism} is not supported for inter-broker connections on "
                f"listener {listener}: set it to one of {', '.join(CLIENT_MECHANISMS)} (Kafka's default is GSSAPI)")
        if mechanism not in [m.upper() for m in settings["sasl.enabled.mechanisms"]]:
            raise SecurityConfigError(  # Kafka's KafkaConfig check, word for word
                f"sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms when SASL is "
                f"used for inter-broker communication (listener {listener}, mechanism {mechanism})")
        jaas = settings.mechanism(mechanism, "sasl.jaas.config")
        options = parse_jaas_options(jaas) if jaas else {}
        username, password = options.get("username"), options.get("password")
        if username is None or password is None:
            raise SecurityConfigError(
                f"The inter-broker listener {listener} uses SASL {mechanism}: set this broker's login as "
                f"username=\"...\" password=\"...\" in listener.name.{listener.lower()}.{mechanism.lower()}"
                ".sasl.jaas.config")
        return cls(listener, protocol, context, mechanism, username, password)

    def address(self, registration: BrokerRegistration | None) -> tuple[str, int] | None:
        """Where a registered broker serves the inter-broker listener (its first endpoint if it has none)."""
        if registration is None or not registration.endpoints:
            return None
        endpoint = registration.endpoint(self.listener) or registration.endpoints[0]
        return endpoint.host, endpoint.port


class BrokerConnection:
    """One request at a time to one broker, connected (TLS, SASL) on first use and after every failure."""

    def __init__(self, broker_id: int, host: str, port: int, client_id: str, timeout_s: float,
                 security: InterBrokerSecurity | None = None) -> None:
        self.broker_id, self.host, self.port, self.client_id, self.timeout_s = broker_id, host, port, client_id, \
            timeout_s
        self.security = security or InterBrokerSecurity()
        self._protocol: FrameReader | None = None
        self._correlation_id = 0
        self._refused: str | None = None  # the first authentication failure since the last success, logged

    async def send(self, api_key: int, version: int, body: Any, extra_timeout_s: float = 0.0) -> Any:
        if self._protocol is None:
            await self._connect()
        return await self._round_trip(api_key, version, body, extra_timeout_s)

    async def _connect(self) -> None:
        context = self.security.ssl_context
        try:
            async with asyncio.timeout(self.timeout_s):
                _, self._protocol = await asyncio.get_running_loop().create_connection(
                    FrameReader, self.host, self.port, ssl=context,
                    server_hostname=self.host if context is not None else None)
        except ssl.SSLError as exc:
            self.close()
            self._authentication_failed(f"TLS handshake failed: {exc}")
        except (OSError, TimeoutError) as exc:
            self.close()
            raise BrokerUnavailable(f"{self.host}:{self.port}: {exc!r}") from None
        if self.security.mechanism is not None:
            await self._authenticate()
        if self._refused is not None:
            log.info("inter_broker.authenticated broker=%d listener=%s: connected again", self.broker_id,
                     self.security.listener)
            self._refused = None

    async def _authenticate(self) -> None:
        security = self.security
        assert security.mechanism is not None and security.username is not None and security.password is not None
        steps = SaslClientExchange(security.mechanism, security.username, security.password).steps()
        try:
            request = next(steps)
            while True:
                response = await self._round_trip(*request)
                try:
                    request = steps.send(response)
                except StopIteration:
                    return
        except SaslAuthenticationError as exc:
            self.close()
            self._authentication_failed(f"SASL {security.mechanism} as {security.username}: {exc}")

    def _authentication_failed(self, reason: str) -> None:
        if self._refused is None:
            log.error("inter_broker.authentication_failed broker=%d listener=%s at %s:%d: %s; retrying quietly "
                      "(check this broker's inter-broker credentials and certificates)", self.broker_id,
                      self.security.listener, self.host, self.port, reason)
            self._refused = reason
        raise InterBrokerAuthenticationError(f"broker {self.broker_id}: {reason}")

    async def _round_trip(self, api_key: int, version: int, body: Any, extra_timeout_s: float = 0.0) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            raise BrokerUnavailable(f"{self.host}:{self.port}: not connected")
        try:
            self._correlation_id += 1
            protocol.transport.write(api.encode_request(api_key, version, self._correlation_id, self.client_id,
                                                        body))
            await protocol.drain()
            async with asyncio.timeout(self.timeout_s + extra_timeout_s):
                frame = await protocol.read_frame()
        except (OSError, TimeoutError) as exc:
            self.close()
            raise BrokerUnavailable(f"{self.host}:{self.port}: {exc!r}") from None
        correlation_id, response = api.decode_response(api_key, version, frame)
        if correlation_id != self._correlation_id:
            self.close()
            raise BrokerUnavailable(f"{self.host}:{self.port}: response {correlation_id} to request "
                                    f"{self._correlation_id}")
        return response

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

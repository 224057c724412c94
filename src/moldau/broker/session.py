"""Who is on the other end of a connection: the listener's security protocol, TLS peer and SASL state.

`KafkaConnection` owns one `Session`. It derives the principal (Kafka's DefaultKafkaPrincipalBuilder:
`User:ANONYMOUS` on PLAINTEXT and on TLS without a client certificate, the certificate's mapped DN on SSL,
the authenticated name on SASL), keeps a SASL connection to the authentication APIs until it is
authenticated, and handles the bare SASL tokens that follow SaslHandshake v0.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

from moldau.security import acl_table
from moldau.security.acl import RESOURCE_OPERATIONS, AclOperation, ResourceType
from moldau.security.principal import ANONYMOUS, KafkaPrincipal
from moldau.security.rate_limited_log import RateLimitedLog
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.authenticator import IllegalSaslState, SaslAuthenticator

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger(__name__)
auth_failures = RateLimitedLog(log, interval_s=10.0)
_SIZE = struct.Struct(">i")
INIT_PRODUCER_ID = 22
CONFIG_RESOURCE_TOPIC, CONFIG_RESOURCE_GROUP = 2, 32  # ConfigResource.Type; BROKER (4) and others: the cluster


class Session:
    def __init__(self, broker: Broker, listener_name: str) -> None:
        self.quotas = broker.quotas
        self.listener = broker.listener_security[listener_name]
        self.principal: KafkaPrincipal = ANONYMOUS
        self.client_host = ""
        self.sasl: SaslAuthenticator | None = None
        self.close_after_reply = False
        # Until authenticated, frames are capped lower (Kafka's SaslServerAuthenticator), so an
        # unauthenticated peer cannot make the broker buffer socket.request.max.bytes.
        self.max_receive_size: int = self.listener.config["sasl.server.max.receive.size"]
        self.authorizer = broker.authorizer  # None: authorizer.class.name is empty, everything is allowed
        self.admitted = False
        self.mute_until = 0.0  # loop time until which the channel is muted (quota throttling, KIP-219)
        if self.listener.protocol.uses_sasl:
            self.sasl = self.listener.new_authenticator(broker.scram_credentials.lookup, broker.clock.time_ms)

    def connected(self, transport: Any, peer: str, now: float) -> bool:
        """Admit the connection (KIP-612) and take the principal from the TLS peer; False closes it."""
        peername = transport.get_extra_info("peername")
        self.client_host = peername[0] if peername else ""
        admitted, delay = self.quotas.admit(self.listener.name, self.listener.config["max.connection.creation.rate"],
                                            self.client_host)
        if not admitted:
            return False
        self.quotas.opened(self.client_host)
        self.admitted = True
        self.mute_until = now + delay
        if self.listener.protocol.uses_tls and self.sasl is None:
            try:
                self.principal = self.listener.ssl_principal(transport.get_extra_info("ssl_object"))
            except PermissionError as exc:
                auth_failures.warning(("ssl", self.client_host), "SSL authentication of %s failed: %s", peer, exc)
                return False
        return True

    def disconnected(self) -> None:
        if self.admitted:
            self.admitted = False
            self.quotas.closed(self.client_host)

    def throttle(self, client_id: str | None, api_key: int, frame_size: int, response: Any, elapsed_s: float,
                 now: float) -> None:
        """Record the request against the client's quotas; mute the channel for the throttle time."""
        if not self.quotas.active:
            return
        throttle_ms = self.quotas.after_request(self.principal.name, client_id or "", api_key, frame_size, response,
                                                elapsed_s)
        if throttle_ms:
            self.mute_until = now + throttle_ms / 1000

    @property
    def authenticated(self) -> bool:
        return self.sasl is None or self.sasl.authenticated

    def permits(self, api_key: int) -> bool:
        """May this request be served now? (A SASL connection serves only SASL until authenticated.)"""
        return self.sasl is None or self.sasl.permits(api_key)

    @property
    def expects_raw_token(self) -> bool:
        return self.sasl is not None and self.sasl.raw_tokens

    def raw_token(self, frame: bytes | bytearray, peer: str) -> bytes | None:
        """SaslHandshake v0: one bare token in, the size-prefixed answer out; None closes the connection."""
        assert self.sasl is not None
        try:
            challenge = self.sasl.authenticate(bytes(frame))
        except (SaslAuthenticationError, IllegalSaslState) as exc:
            self.authentication_failed(peer, str(exc))
            return None
        self.authentication_succeeded()
        return _SIZE.pack(len(challenge)) + challenge

    def authentication_succeeded(self) -> None:
        sasl = self.sasl
        if sasl is not None and sasl.authenticated and sasl.principal_name is not None:
            self.principal = KafkaPrincipal("User", sasl.principal_name)

    def authentication_failed(self, peer: str, reason: str) -> None:
        mechanism = self.sasl.mechanism if self.sasl is not None else None
        auth_failures.warning(("sasl", self.client_host), "Failed authentication with %s (mechanism %s, listener "
                              "%s): %s", peer, mechanism, self.listener.name, reason)

    # -- authorization (security/acl_table.py lists what each API checks) ------------------------------

    def allowed(self, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
        authorizer = self.authorizer
        return authorizer is None or authorizer.authorize(self.principal, self.client_host, operation,
                                                          resource_type, name)

    def authorized_operations(self, resource_type: ResourceType, name: str) -> int | None:
        """KIP-430's bitfield for `name`; None without an authorizer (the handler reports every operation)."""
        if self.authorizer is None:
            return None
        return self.authorizer.authorized_operations(self.principal, self.client_host, resource_type, name)

    def operations_bitfield(self, resource_type: ResourceType, name: str) -> int:
        """KIP-430: the allowed operations; every operation of the type when there is no authorizer."""
        bits = self.authorized_operations(resource_type, name)
        if bits is None:
            bits = sum(1 << op for op in RESOURCE_OPERATIONS.get(resource_type, ()))
        return bits

    def refused_response(self, api_key: int, version: int, request: Any) -> Any | None:
        """The error response when the principal may not make this request at all, else None."""
        if self.authorizer is None:
            return None
        for resource_type, operation, name in acl_table.required(api_key, version, request):
            if not self.allowed(operation, resource_type, name):
                return acl_table.error_response(api_key, request, acl_table.ERROR_FOR[resource_type])
        if api_key == INIT_PRODUCER_ID and request.transactional_id is None and not self.idempotent_write_allowed():
            return acl_table.error_response(api_key, request, acl_table.ERROR_FOR[ResourceType.CLUSTER])
        return None

    def config_resource_error(self, operation: AclOperation, config_resource_type: int, name: str) -> Any:
        """DescribeConfigs/AlterConfigs: topics need the operation on the topic, brokers on the cluster."""
        if self.authorizer is None:
            return None
        if config_resource_type == CONFIG_RESOURCE_TOPIC:
            if not self.allowed(operation, ResourceType.TOPIC, name):
                return acl_table.ERROR_FOR[ResourceType.TOPIC]
        elif config_resource_type == CONFIG_RESOURCE_GROUP:
            if not self.allowed(operation, ResourceType.GROUP, name):
                return acl_table.ERROR_FOR[ResourceType.GROUP]
        elif not self.allowed(operation, ResourceType.CLUSTER, "kafka-cluster"):
            return acl_table.ERROR_FOR[ResourceType.CLUSTER]
        return None

    def idempotent_write_allowed(self) -> bool:
        """KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic, lets a producer be idempotent."""
        authorizer = self.authorizer
        return authorizer is None or self.allowed(AclOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER,
                                                  "kafka-cluster") or authorizer.authorize_any(
            self.principal, self.client_host, AclOperation.WRITE, ResourceType.TOPIC)

    def refuse(self, api_key: int, peer: str) -> None:
        """Log why a request before (or after the expiry of) authentication closes the connection."""
        expired = self.sasl is not None and self.sasl.authenticated
        auth_failures.warning(("refused", self.client_host), "closing connection from %s: %s", peer,
                              f"SASL session expired (connections.max.reauth.ms), request api key {api_key}"
                              if expired else f"unexpected request (api key {api_key}) during SASL authentication")

"""TLS and SASL for Moldau's own client, configured with Kafka's client properties (`--command-config`).

    security.protocol=SASL_SSL
    ssl.truststore.location=/etc/moldau/ca.pem          # PEM (ssl.ca.location, librdkafka's name, also works)
    sasl.mechanism=SCRAM-SHA-512
    sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
        username="alice" password="alice-secret";
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moldau.errors import MoldauError
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.client import SaslClientExchange
from moldau.security.sasl.jaas import parse_jaas_options
from moldau.security.sasl.scram import MECHANISMS


class ClientSecurityError(MoldauError):
    """The client properties are incomplete, or the broker refused the credentials."""


@dataclass(slots=True)
class ClientSecurity:
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    check_hostname: bool = True
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> ClientSecurity:
        protocol = props.get("security.protocol", "PLAINTEXT").upper()
        result = cls(protocol=protocol)
        if protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(
                cafile=props.get("ssl.truststore.location") or props.get("ssl.ca.location"))
            if props.get("ssl.truststore.certificates"):
                context.load_verify_locations(cadata=props["ssl.truststore.certificates"])
            keystore = props.get("ssl.keystore.location")
            if keystore:
                context.load_cert_chain(keystore, password=props.get("ssl.key.password"))
            elif props.get("ssl.certificate.location"):
                context.load_cert_chain(props["ssl.certificate.location"], props.get("ssl.key.location"),
                                        password=props.get("ssl.key.password"))
            # Kafka's ssl.endpoint.identification.algorithm: empty turns host name checks off.
            result.check_hostname = props.get("ssl.endpoint.identification.algorithm", "https") != ""
            context.check_hostname = result.check_hostname
            result.ssl_context = context
        if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            result.mechanism = props.get("sasl.mechanism", "GSSAPI").upper()
            if result.mechanism != "PLAIN" and result.mechanism not in MECHANISMS:
                raise ClientSecurityError(f"sasl.mechanism {result.mechanism} is not supported by the moldau CLI "
                                          "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
            options = parse_jaas_options(props["sasl.jaas.config"]) if props.get("sasl.jaas.config") else {}
            result.username = options.get("username") or props.get("sasl.username")
            result.password = options.get("password") or props.get("sasl.password")
            if result.username is None or result.password is None:
                raise ClientSecurityError("SASL needs a username and password in sasl.jaas.config "
                                          "(or sasl.username/sasl.password)")
        return result

    def wrap(self, sock: socket.socket, host: str) -> socket.socket:
        if self.ssl_context is None:
            return sock
        return self.ssl_context.wrap_socket(sock, server_hostname=host)

    def authenticate(self, send: Callable[[int, Any, int], Any]) -> None:
        """Drive the sans-I/O SASL exchange (security/sasl/client.py) over `send(api_key, body, version)`."""
        if self.mechanism is None:
            return
        assert self.username is not None and self.password is not None
        steps = SaslClientExchange(self.mechanism, self.username, self.password).steps()
        try:
            api_key, version, body = next(steps)
            while True:
                response = send(api_key, body, version)
                try:
                    api_key, version, body = steps.send(response)
                except StopIteration:
                    return
        except SaslAuthenticationError as exc:
            raise ClientSecurityError(str(exc)) from None

"""The client side of SASL as a sans-I/O exchange: the requests to send, fed the broker's responses.

Kafka's `SaslClientAuthenticator`: SaslHandshake v1 names the mechanism, then SaslAuthenticate carries the
mechanism's tokens (KIP-152). The exchange never touches a socket, so Moldau's blocking client
(`moldau.client.security`) and the brokers' asyncio inter-broker connections (`moldau.broker.inter_broker`)
drive the same steps and the same SCRAM math:

    exchange = SaslClientExchange("SCRAM-SHA-512", "broker", "secret")
    steps = exchange.steps()
    request = next(steps)
    while True:
        response = send(*request)                   # (api_key, version, body) -> decoded response
        try:
            request = steps.send(response)
        except StopIteration:
            break                                   # authenticated; SaslAuthenticationError if refused
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from moldau.protocol import messages
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.scram import MECHANISMS as SCRAM_MECHANISMS
from moldau.security.sasl.scram import ScramClient

SASL_HANDSHAKE, SASL_HANDSHAKE_VERSION = 17, 1
SASL_AUTHENTICATE, SASL_AUTHENTICATE_VERSION = 36, 2
CLIENT_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)

Request = tuple[int, int, Any]  # (api_key, version, body)


class SaslMechanismNotOffered(SaslAuthenticationError):
    """The broker's SaslHandshake answered UNSUPPORTED_SASL_MECHANISM."""


class SaslClientExchange:
    """PLAIN or SCRAM-SHA-256/512 with a username and password (Kafka's PlainLoginModule / ScramLoginModule)."""

    def __init__(self, mechanism: str, username: str, password: str) -> None:
        if mechanism not in CLIENT_MECHANISMS:
            raise ValueError(f"SASL mechanism {mechanism} has no client here; use one of {', '.join(CLIENT_MECHANISMS)}")
        self.mechanism = mechanism
        self.username = username
        self._password = password

    def steps(self) -> Generator[Request, Any, None]:
        """Yields each request; is sent each decoded response; returns once authenticated."""
        handshake = yield (SASL_HANDSHAKE, SASL_HANDSHAKE_VERSION,
                           messages.SaslHandshakeRequest(mechanism=self.mechanism))
        if handshake.error_code:
            raise SaslMechanismNotOffered(f"The broker does not offer {self.mechanism} (it offers "
                                          f"{', '.join(handshake.mechanisms)})")
        if self.mechanism == "PLAIN":
            yield from self._token(f"\0{self.username}\0{self._password}".encode())
            return
        scram = ScramClient(self.mechanism, self.username, self._password)
        server_first = yield from self._token(scram.first_message())
        server_final = yield from self._token(scram.final_message(server_first))
        scram.verify_server_final(server_final)

    @staticmethod
    def _token(token: bytes) -> Generator[Request, Any, bytes]:
        response = yield (SASL_AUTHENTICATE, SASL_AUTHENTICATE_VERSION,
                          messages.SaslAuthenticateRequest(auth_bytes=token))
        if response.error_code:
            message = response.error_message or "SASL_AUTHENTICATION_FAILED"
            raise SaslAuthenticationError(message if message.startswith("Authentication failed")
                                          else f"Authentication failed: {message}")
        return bytes(response.auth_bytes)

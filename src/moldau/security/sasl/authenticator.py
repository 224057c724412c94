"""The SASL state of one connection (Kafka's SaslServerAuthenticator), sans I/O.

Before authentication a SASL listener serves only ApiVersions, SaslHandshake and SaslAuthenticate.
SaslHandshake v1 is followed by SaslAuthenticate requests (KIP-152); v0 by raw SASL tokens in plain
size-prefixed frames, the pre-KIP-152 format. Once authenticated, a new SaslHandshake re-authenticates
(KIP-368): the principal may not change, and when `connections.max.reauth.ms` is set a session that
was not re-authenticated in time ends at its next request.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from moldau.protocol.errors import ErrorCode
from moldau.security.sasl import SaslAuthenticationError, SaslServer

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36


class SaslState(enum.Enum):
    HANDSHAKE = "handshake"  # waiting for ApiVersions or SaslHandshake
    AUTHENTICATE = "authenticate"  # mechanism chosen, tokens flowing
    COMPLETE = "complete"
    REAUTH_AUTHENTICATE = "reauth-authenticate"
    FAILED = "failed"


class IllegalSaslState(Exception):
    """A request arrived that the SASL state does not allow; Kafka answers ILLEGAL_SASL_STATE or closes."""


class SaslAuthenticator:
    def __init__(self, mechanisms: dict[str, Callable[[], SaslServer]], reauth_ms: int,
                 now_ms: Callable[[], int]) -> None:
        self._factories = mechanisms
        self._reauth_ms = reauth_ms
        self._now_ms = now_ms
        self.state = SaslState.HANDSHAKE
        self.raw_tokens = False  # SaslHandshake v0: the next frames are bare tokens
        self.server: SaslServer | None = None
        self.principal_name: str | None = None
        self.mechanism: str | None = None
        self.session_expires_ms: int | None = None
        self.reauthentications = 0

    @property
    def enabled_mechanisms(self) -> list[str]:
        return list(self._factories)

    @property
    def authenticated(self) -> bool:
        return self.state in (SaslState.COMPLETE, SaslState.REAUTH_AUTHENTICATE)

    def permits(self, api_key: int) -> bool:
        """May a request with this API key be handled now (the others close the connection)?"""
        if self.state is SaslState.COMPLETE:
            return not self.session_expired() or api_key == SASL_HANDSHAKE
        if self.state is SaslState.REAUTH_AUTHENTICATE:
            return api_key == SASL_AUTHENTICATE
        if self.state is SaslState.HANDSHAKE:
            return api_key in (API_VERSIONS, SASL_HANDSHAKE)
        if self.state is SaslState.AUTHENTICATE:
            return api_key == SASL_AUTHENTICATE and not self.raw_tokens
        return False

    def session_expired(self) -> bool:
        return self.session_expires_ms is not None and self._now_ms() >= self.session_expires_ms

    def handshake(self, mechanism: str, version: int) -> ErrorCode:
        reauth = self.state is SaslState.COMPLETE
        if self.state is not SaslState.HANDSHAKE and not reauth:
            self.state = SaslState.FAILED
            return ErrorCode.ILLEGAL_SASL_STATE
        if reauth and (version < 1 or mechanism != self.mechanism):
            # KIP-368: re-authentication uses SaslAuthenticate and the same mechanism.
            self.state = SaslState.FAILED
            return ErrorCode.ILLEGAL_SASL_STATE if version < 1 else ErrorCode.UNSUPPORTED_SASL_MECHANISM
        factory = self._factories.get(mechanism)
        if factory is None:
            self.state = SaslState.FAILED
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM
        self.server = factory()
        self.mechanism = mechanism
        self.raw_tokens = version == 0
        self.state = SaslState.REAUTH_AUTHENTICATE if reauth else SaslState.AUTHENTICATE
        return ErrorCode.NONE

    def authenticate(self, token: bytes) -> bytes:
        """Feed one client token; returns the server's token. Raises SaslAuthenticationError on failure."""
        if self.server is None or self.state not in (SaslState.AUTHENTICATE, SaslState.REAUTH_AUTHENTICATE):
            self.state = SaslState.FAILED
            raise IllegalSaslState(f"SaslAuthenticate in state {self.state.value}")
        try:
            challenge = self.server.evaluate(token)
        except SaslAuthenticationError:
            self.state = SaslState.FAILED
            raise
        if self.server.complete:
            name = self.server.authorization_id
            if self.state is SaslState.REAUTH_AUTHENTICATE and name != self.principal_name:
                self.state = SaslState.FAILED
                raise SaslAuthenticationError(f"Cannot change principals during re-authentication from "
                                              f"{self.principal_name} to {name}")
            if self.state is SaslState.REAUTH_AUTHENTICATE:
                self.reauthentications += 1
            self.principal_name = name
            self.state = SaslState.COMPLETE
            self.raw_tokens = False
            self._start_session(self.server.credential_expires_ms)
        return challenge

    def _start_session(self, credential_expires_ms: int | None) -> None:
        if self._reauth_ms <= 0:
            self.session_expires_ms = None
            return
        expires = self._now_ms() + self._reauth_ms
        if credential_expires_ms is not None:
            expires = min(expires, credential_expires_ms)
        self.session_expires_ms = expires

    def session_lifetime_ms(self) -> int:
        """SaslAuthenticate v1's session_lifetime_ms: 0 means the client need not re-authenticate."""
        if self.session_expires_ms is None:
            return 0
        return max(1, self.session_expires_ms - self._now_ms())

"""SASL server mechanisms (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and the per-connection authenticator.

A mechanism is a sans-I/O `SaslServer`: `evaluate(token) -> challenge` until `complete`, raising
`SaslAuthenticationError` when the client fails to prove who it is.
"""

from __future__ import annotations

from typing import Protocol

from moldau.errors import MoldauError


class SaslAuthenticationError(MoldauError):
    """The client's credentials or tokens are wrong; answered with SASL_AUTHENTICATION_FAILED."""


class SaslServer(Protocol):
    mechanism: str
    complete: bool
    authorization_id: str
    # Lifetime of the credential (OAUTHBEARER token expiry), in ms since the epoch; None: unbounded.
    credential_expires_ms: int | None

    def evaluate(self, token: bytes) -> bytes: ...

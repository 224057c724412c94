"""The sans-I/O SASL client exchange against the sans-I/O broker authenticator: no sockets on either side."""

from __future__ import annotations

from typing import Any

import pytest

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.authenticator import SaslAuthenticator
from moldau.security.sasl.client import (
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    SaslClientExchange,
    SaslMechanismNotOffered,
)
from moldau.security.sasl.plain import PlainServer
from moldau.security.sasl.scram import ScramServer, new_credential

CREDENTIALS = {m: new_credential(m, "broker-secret", 4096) for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")}


def broker_side() -> SaslAuthenticator:
    return SaslAuthenticator({
        "PLAIN": lambda: PlainServer({"broker": "broker-secret"}),
        "SCRAM-SHA-512": lambda: ScramServer("SCRAM-SHA-512",
                                             lambda u, m: CREDENTIALS[m] if u == "broker" else None),
    }, 0, lambda: 0)


def answer(server: SaslAuthenticator, api_key: int, body: Any) -> Any:
    """What the broker's SaslHandshake / SaslAuthenticate handlers answer."""
    if api_key == SASL_HANDSHAKE:
        error = server.handshake(body.mechanism, 1)
        return messages.SaslHandshakeResponse(error_code=error, mechanisms=server.enabled_mechanisms)
    assert api_key == SASL_AUTHENTICATE
    try:
        token = server.authenticate(bytes(body.auth_bytes))
    except SaslAuthenticationError as exc:
        return messages.SaslAuthenticateResponse(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                                                 error_message=str(exc), auth_bytes=b"", session_lifetime_ms=0)
    return messages.SaslAuthenticateResponse(error_code=0, error_message=None, auth_bytes=token,
                                             session_lifetime_ms=0)


def run(exchange: SaslClientExchange, server: SaslAuthenticator) -> int:
    steps = exchange.steps()
    request = next(steps)
    round_trips = 0
    while True:
        round_trips += 1
        try:
            request = steps.send(answer(server, request[0], request[2]))
        except StopIteration:
            return round_trips


@pytest.mark.parametrize(("mechanism", "round_trips"), [("PLAIN", 2), ("SCRAM-SHA-512", 3)])
def test_the_right_password_authenticates(mechanism: str, round_trips: int) -> None:
    server = broker_side()
    assert run(SaslClientExchange(mechanism, "broker", "broker-secret"), server) == round_trips
    assert server.authenticated


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_wrong_password_is_refused(mechanism: str) -> None:
    server = broker_side()
    with pytest.raises(SaslAuthenticationError, match="Authentication failed"):
        run(SaslClientExchange(mechanism, "broker", "not-the-password"), server)
    assert not server.authenticated


def test_a_mechanism_the_broker_does_not_offer() -> None:
    with pytest.raises(SaslMechanismNotOffered, match="does not offer SCRAM-SHA-256"):
        run(SaslClientExchange("SCRAM-SHA-256", "broker", "broker-secret"), broker_side())

"""SaslHandshake (17): choose the SASL mechanism (v0: bare tokens follow; v1: SaslAuthenticate, KIP-152)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 17

Response = messages.SaslHandshakeResponse


async def handle(conn, header, request: messages.SaslHandshakeRequest) -> messages.SaslHandshakeResponse:
    session = conn.session
    if session.sasl is None:
        # Kafka's KafkaApis: a handshake on a listener without SASL (or after it) is out of place.
        return Response(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    error = session.sasl.handshake(request.mechanism or "", header.api_version)
    if error != ErrorCode.NONE:
        session.authentication_failed(conn.peer, f"SaslHandshake for {request.mechanism!r}: {error.name}")
        session.close_after_reply = True
    return Response(error_code=error, mechanisms=session.sasl.enabled_mechanisms)

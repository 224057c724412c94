"""SaslAuthenticate (36): one SASL token each way (KIP-152); v1+ tells the session lifetime (KIP-368)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.authenticator import IllegalSaslState

API_KEY = 36

Response = messages.SaslAuthenticateResponse


async def handle(conn, header, request: messages.SaslAuthenticateRequest) -> messages.SaslAuthenticateResponse:
    session = conn.session
    if session.sasl is None:
        session.close_after_reply = True
        return Response(error_code=ErrorCode.ILLEGAL_SASL_STATE, error_message="SASL is not enabled on listener "
                        f"{session.listener.name}", auth_bytes=b"")
    try:
        challenge = session.sasl.authenticate(bytes(request.auth_bytes or b""))
    except IllegalSaslState as exc:
        session.authentication_failed(conn.peer, str(exc))
        session.close_after_reply = True
        return Response(error_code=ErrorCode.ILLEGAL_SASL_STATE, error_message=str(exc), auth_bytes=b"")
    except SaslAuthenticationError as exc:
        session.authentication_failed(conn.peer, str(exc))
        session.close_after_reply = True
        return Response(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED, error_message=str(exc), auth_bytes=b"")
    session.authentication_succeeded()
    return Response(error_code=ErrorCode.NONE, auth_bytes=challenge,
                    session_lifetime_ms=session.sasl.session_lifetime_ms() if session.sasl.authenticated else 0)

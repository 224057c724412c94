"""DescribeUserScramCredentials (50): which SCRAM mechanisms (and iterations) each user has (KIP-554)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security import scram_admin

API_KEY = 50

Response = messages.DescribeUserScramCredentialsResponse


async def handle(conn, header, request: messages.DescribeUserScramCredentialsRequest) -> messages.DescribeUserScramCredentialsResponse:
    users = None if request.users is None else [u.name for u in request.users]
    results = scram_admin.describe(conn.broker.scram_credentials, users)
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, results=[
        Response.DescribeUserScramCredentialsResult(
            user=r.user, error_code=r.error_code, error_message=r.error_message,
            credential_infos=[Response.CredentialInfo(mechanism=m, iterations=i)
                              for m, i in r.credentials])
        for r in results])

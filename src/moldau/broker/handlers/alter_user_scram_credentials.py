"""AlterUserScramCredentials (51): create, change and delete SCRAM users (KIP-554)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.security import scram_admin

API_KEY = 51

Response = messages.AlterUserScramCredentialsResponse


async def handle(conn, header, request: messages.AlterUserScramCredentialsRequest) -> messages.AlterUserScramCredentialsResponse:
    results = await scram_admin.alter(
        conn.broker.scram_credentials,
        [(d.name, d.mechanism) for d in request.deletions],
        [scram_admin.Upsertion(u.name, u.mechanism, u.iterations, bytes(u.salt), bytes(u.salted_password))
         for u in request.upsertions],
    )
    return Response(throttle_time_ms=0, results=[
        Response.AlterUserScramCredentialsResult(user=r.user, error_code=r.error_code, error_message=r.error_message)
        for r in results])

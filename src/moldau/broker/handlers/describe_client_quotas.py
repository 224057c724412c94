"""DescribeClientQuotas (48): quota configs of the entities a filter matches (KIP-546)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 48

Response = messages.DescribeClientQuotasResponse


async def handle(conn, header, request: messages.DescribeClientQuotasRequest) -> messages.DescribeClientQuotasResponse:
    components = [(c.entity_type, c.match_type, c.match) for c in request.components]
    types = [c[0] for c in components]
    if len(set(types)) != len(types) or any(c[1] not in (0, 1, 2) for c in components):
        return Response(error_code=ErrorCode.INVALID_REQUEST, error_message="Invalid quota filter components",
                        entries=None)
    found = conn.broker.quotas.configs.describe(components, request.strict)
    return Response(error_code=ErrorCode.NONE, entries=[
        Response.EntryData(entity=[Response.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                           values=[Response.ValueData(key=k, value=v) for k, v in sorted(values.items())])
        for entity, values in found.items()])

"""AlterClientQuotas (49): set or remove quotas of user / client-id / ip entities (KIP-546, KIP-612)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.quota_config import Alteration, QuotaError, entity_of

API_KEY = 49

Response = messages.AlterClientQuotasResponse


async def handle(conn, header, request: messages.AlterClientQuotasRequest) -> messages.AlterClientQuotasResponse:
    configs = conn.broker.quotas.configs
    results = []
    valid = []
    for entry in request.entries:
        result = Response.EntryData(error_code=ErrorCode.NONE, entity=[
            Response.EntityData(entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity])
        alteration = Alteration(entity_of((e.entity_type, e.entity_name) for e in entry.entity),
                                [(op.key, op.value, op.remove) for op in entry.ops])
        try:
            configs.validate(alteration)
            valid.append(alteration)
        except QuotaError as exc:
            result.error_code, result.error_message = exc.code, str(exc)
        results.append(result)
    if valid and not request.validate_only:
        await configs.alter(valid)
    return Response(throttle_time_ms=0, entries=results)

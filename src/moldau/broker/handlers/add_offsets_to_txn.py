"""AddOffsetsToTxn (25): add the group's ``__consumer_offsets`` partition to the transaction (KIP-98)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 25
VERSIONS = (0, 3)  # v4 is for transaction.version 2 clients
Response = messages.AddOffsetsToTxnResponse
OFFSETS_TOPIC = "__consumer_offsets"


async def handle(conn, header, request: messages.AddOffsetsToTxnRequest) -> Response:
    if not request.group_id:
        return Response(throttle_time_ms=0, error_code=ErrorCode.INVALID_GROUP_ID)
    group_log = conn.broker.group_coordinator.log
    await group_log.ensure_topic()
    partition = (OFFSETS_TOPIC, group_log.partition_of(request.group_id))
    error = await conn.broker.transaction_coordinator.add_partitions(
        request.transactional_id, request.producer_id, request.producer_epoch, [partition])
    if error == ErrorCode.PRODUCER_FENCED and header.api_version < 2:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    return Response(throttle_time_ms=0, error_code=error)

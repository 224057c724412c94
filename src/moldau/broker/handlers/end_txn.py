"""EndTxn (26): commit or abort the producer's transaction (KIP-98).

The answer goes out once the markers are written and the transaction is complete. Only v0-v4: v5
(KIP-890, the epoch bump on every commit) is for transaction.version 2 clients.
"""

from __future__ import annotations

import logging

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 26
VERSIONS = (0, 4)
Response = messages.EndTxnResponse

log = logging.getLogger(__name__)


async def handle(conn, header, request: messages.EndTxnRequest) -> Response:
    try:
        error = await conn.broker.transaction_coordinator.end_txn(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed)
    except ApiError as exc:
        log.warning("end_txn transactional_id=%s failed: %s", request.transactional_id, exc)
        error = ErrorCode.CONCURRENT_TRANSACTIONS  # left in Prepare*: the client retries, markers are retried
    if error == ErrorCode.PRODUCER_FENCED and header.api_version < 2:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    return Response(throttle_time_ms=0, error_code=error, producer_id=-1, producer_epoch=-1)

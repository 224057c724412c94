"""InitProducerId (22): a producer id and epoch for an idempotent producer (KIP-98, KIP-360).

Without a transactional id Kafka's ``TransactionCoordinator.handleInitProducerId`` always answers a new
producer id with epoch 0, whatever producer id and epoch the request carries: an idempotent producer
bumps its epoch itself (KIP-360) and comes back only when the epoch is exhausted. Transactional ids
need the transaction coordinator, which this broker does not run yet: COORDINATOR_NOT_AVAILABLE, which
clients retry after a FindCoordinator (as for NOT_COORDINATOR). v6 (KIP-939) is unstable and capped by
the handler framework.
"""

from __future__ import annotations

import logging

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 22
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
TRANSACTION_MAX_TIMEOUT_MS = 900000  # transaction.max.timeout.ms

log = logging.getLogger(__name__)
Response = messages.InitProducerIdResponse


def _error(code: ErrorCode) -> messages.InitProducerIdResponse:
    return Response(throttle_time_ms=0, error_code=code, producer_id=NO_PRODUCER_ID,
                    producer_epoch=NO_PRODUCER_EPOCH)


async def handle(conn, header, request: messages.InitProducerIdRequest) -> messages.InitProducerIdResponse:
    given = (request.producer_id, request.producer_epoch)
    # KafkaApis: producer id and epoch come together or not at all.
    if (given[0] == NO_PRODUCER_ID) != (given[1] == NO_PRODUCER_EPOCH):
        return _error(ErrorCode.INVALID_REQUEST)
    transactional_id = request.transactional_id
    if transactional_id is not None:
        if transactional_id == "":
            return _error(ErrorCode.INVALID_REQUEST)
        if not 0 < request.transaction_timeout_ms <= TRANSACTION_MAX_TIMEOUT_MS:
            return _error(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        return _error(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    try:
        producer_id = await conn.broker.producer_id_manager.generate_producer_id()
    except ApiError as exc:
        log.error("init_producer_id failed for client %s: %s", header.client_id, exc)
        return _error(exc.error_code)
    log.debug("init_producer_id client=%s producer_id=%d", header.client_id, producer_id)
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=0)

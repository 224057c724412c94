"""InitProducerId (22): a producer id and epoch for an idempotent producer (KIP-98, KIP-360).

Without a transactional id Kafka's ``TransactionCoordinator.handleInitProducerId`` always answers a new
producer id with epoch 0, whatever producer id and epoch the request carries: an idempotent producer
bumps its epoch itself (KIP-360) and comes back only when the epoch is exhausted. Transactional ids
go to the transaction coordinator (new id, epoch bump, fencing). v6 (KIP-939) is unstable and capped by
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
        try:
            error, producer_id, epoch = await conn.broker.transaction_coordinator.init_producer_id(
                transactional_id, request.transaction_timeout_ms, given[0], given[1])
        except ApiError as exc:
            log.error("init_producer_id failed for transactional id %s: %s", transactional_id, exc)
            return _error(exc.error_code)
        if error == ErrorCode.PRODUCER_FENCED and header.api_version < 4:
            error = ErrorCode.INVALID_PRODUCER_EPOCH  # PRODUCER_FENCED is new in v4 (KIP-588)
        if error != ErrorCode.NONE:
            return _error(error)
        return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id,
                        producer_epoch=epoch)
    try:
        producer_id = await conn.broker.producer_id_manager.generate_producer_id()
    except ApiError as exc:  # retriable COORDINATOR_LOAD_IN_PROGRESS (full disk) was logged once already
        log.log(logging.DEBUG if exc.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS else logging.ERROR,
                "init_producer_id failed for client %s: %s", header.client_id, exc)
        return _error(exc.error_code)
    log.debug("init_producer_id client=%s producer_id=%d", header.client_id, producer_id)
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=0)

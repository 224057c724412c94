"""DescribeTransactions (65): state, producer, timeout and partitions of transactional ids (KIP-664)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 65
Response = messages.DescribeTransactionsResponse


async def handle(conn, header, request: messages.DescribeTransactionsRequest) -> Response:
    transactions = conn.broker.transaction_coordinator.transactions
    states = []
    for transactional_id in request.transactional_ids:
        m = transactions.get(transactional_id)
        if not conn.session.allowed(AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
            states.append(Response.TransactionState(
                error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, transactional_id=transactional_id,
                transaction_state="", transaction_timeout_ms=0, transaction_start_time_ms=-1, producer_id=-1,
                producer_epoch=-1, topics=[]))
            continue
        if m is None:
            states.append(Response.TransactionState(error_code=ErrorCode.TRANSACTIONAL_ID_NOT_FOUND,
                                                    transactional_id=transactional_id, transaction_state="",
                                                    transaction_timeout_ms=0, transaction_start_time_ms=-1,
                                                    producer_id=-1, producer_epoch=-1, topics=[]))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(m.partitions):
            by_topic.setdefault(topic, []).append(partition)
        states.append(Response.TransactionState(
            error_code=ErrorCode.NONE, transactional_id=transactional_id, transaction_state=m.state.display_name,
            transaction_timeout_ms=m.txn_timeout_ms, transaction_start_time_ms=m.txn_start_timestamp_ms,
            producer_id=m.producer_id, producer_epoch=m.producer_epoch,
            topics=[Response.TopicData(topic=t, partitions=p) for t, p in by_topic.items()]))
    return Response(throttle_time_ms=0, transaction_states=states)

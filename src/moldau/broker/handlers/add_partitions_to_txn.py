"""AddPartitionsToTxn (24): add partitions to a producer's open transaction (KIP-98).

v0-v3 are the client form (one transaction); v4+ the batched broker form of KIP-890 part 1 (several
transactions, optionally ``verify_only``), answered per transaction. Only v0-v4 are advertised: v5 is for
transaction.version 2 clients, which this broker does not finalize.
"""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 24
VERSIONS = (0, 4)
Response = messages.AddPartitionsToTxnResponse


def _results(errors: dict[tuple[str, int], ErrorCode]) -> list[Response.AddPartitionsToTxnTopicResult]:
    by_topic: dict[str, list[Response.AddPartitionsToTxnPartitionResult]] = {}
    for (topic, partition), error in errors.items():
        by_topic.setdefault(topic, []).append(Response.AddPartitionsToTxnPartitionResult(
            partition_index=partition, partition_error_code=error))
    return [Response.AddPartitionsToTxnTopicResult(name=t, results_by_partition=r) for t, r in by_topic.items()]


async def _add(conn, version: int, transactional_id: str, producer_id: int, epoch: int, topics,
               verify_only: bool = False) -> dict[tuple[str, int], ErrorCode]:
    manager = conn.broker.replica_manager
    partitions = [(t.name, p) for t in topics for p in t.partitions]
    unwritable = {t.name for t in topics if not conn.session.allowed(AclOperation.WRITE, ResourceType.TOPIC, t.name)}
    if unwritable:
        # Kafka: the partitions of topics the producer may not WRITE fail, the rest are not attempted.
        return {tp: (ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp[0] in unwritable else ErrorCode.OPERATION_NOT_ATTEMPTED)
                for tp in partitions}
    unknown = {tp for tp in partitions
               if tp[0] not in manager.topics or not 0 <= tp[1] < len(manager.topics[tp[0]].partitions)}
    if unknown:
        # Kafka: the unknown partitions fail, the rest are not attempted.
        return {tp: (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else ErrorCode.OPERATION_NOT_ATTEMPTED)
                for tp in partitions}
    coordinator = conn.broker.transaction_coordinator
    if verify_only:
        return coordinator.verify_partitions(transactional_id, producer_id, epoch, partitions)
    error = await coordinator.add_partitions(transactional_id, producer_id, epoch, partitions)
    if error == ErrorCode.PRODUCER_FENCED and version < 2:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    return {tp: error for tp in partitions}


async def handle(conn, header, request: messages.AddPartitionsToTxnRequest) -> Response:
    version = header.api_version
    if version < 4:
        errors = await _add(conn, version, request.v3_and_below_transactional_id,
                            request.v3_and_below_producer_id, request.v3_and_below_producer_epoch,
                            request.v3_and_below_topics)
        return Response(throttle_time_ms=0, results_by_topic_v3_and_below=_results(errors))
    results = []
    for txn in request.transactions:
        errors = await _add(conn, version, txn.transactional_id, txn.producer_id, txn.producer_epoch, txn.topics,
                            txn.verify_only)
        results.append(Response.AddPartitionsToTxnResult(transactional_id=txn.transactional_id,
                                                         topic_results=_results(errors)))
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, results_by_transaction=results)

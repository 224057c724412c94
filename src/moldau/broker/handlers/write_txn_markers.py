"""WriteTxnMarkers (27): append commit/abort markers for producers (KIP-98; Admin.abortTransaction, KIP-664).

Kafka's transaction coordinator sends this to partition leaders; here the coordinator writes markers
itself, so the callers are admin tools aborting hanging transactions. v0 is gone from Kafka 4.0.
"""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.coordinator.records import OFFSETS_TOPIC
from moldau.coordinator.transaction_marker_writer import marker_batch
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 27
VERSIONS = (1, 2)
Response = messages.WriteTxnMarkersResponse
MARKER_TIMEOUT_S = 30.0  # Kafka's request.timeout.ms of the coordinator's marker channel


async def handle(conn, header, request: messages.WriteTxnMarkersRequest) -> Response:
    broker = conn.broker
    manager = broker.replica_manager
    group = broker.group_coordinator
    results = []
    for marker in request.markers:
        batch = marker_batch(marker.producer_id, marker.producer_epoch, marker.coordinator_epoch,
                             marker.transaction_result, broker.clock.time_ms())
        topics = []
        for topic in marker.topics:
            partitions = []
            for index in topic.partition_indexes:
                error = ErrorCode.NONE
                try:
                    # acks=-1 as Kafka's marker appends: the coordinator completes the transaction only
                    # once every ISR member has the marker, so a failover can't leave it hanging.
                    await manager.append_replicated(manager.partition(topic.name, index), batch, coordinator=True,
                                                    timeout_s=MARKER_TIMEOUT_S)
                    if topic.name == OFFSETS_TOPIC:
                        group.pending_txn_offsets.complete(index, marker.producer_id, marker.transaction_result,
                                                           group.replay, broker.clock.time_ms())
                except ApiError as exc:
                    error = exc.error_code
                partitions.append(Response.WritableTxnMarkerPartitionResult(partition_index=index,
                                                                            error_code=error))
            topics.append(Response.WritableTxnMarkerTopicResult(name=topic.name, partitions=partitions))
        results.append(Response.WritableTxnMarkerResult(producer_id=marker.producer_id, topics=topics))
    return Response(markers=results)

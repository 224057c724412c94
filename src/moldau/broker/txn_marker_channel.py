"""Transaction markers for partitions led by other brokers (Kafka's `TransactionMarkerChannelManager`).

In a cluster the transaction coordinator's EndTxn reaches partitions whose leaders are elsewhere: their
markers go in one WriteTxnMarkers request per leader, over the inter-broker listener (broker/inter_broker.py). A leader that
moved or is down is looked up again and retried with a backoff until `MARKER_DEADLINE_S`, as Kafka's
channel retries until the markers are written; after that the coordinator keeps the transaction in
Prepare* and its expiry loop tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from moldau.broker.errors import ApiError
from moldau.broker.inter_broker import BrokerConnection, BrokerUnavailable, InterBrokerAuthenticationError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger(__name__)

WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION = 27, 1
MARKER_DEADLINE_S = 30.0
REQUEST_TIMEOUT_S = 10.0
TopicPartition = tuple[str, int]
# Kafka's channel manager retries these (the leader moves or is loading); others are the partition's answer.
_RETRIABLE = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.UNKNOWN_LEADER_EPOCH,
              ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
              ErrorCode.REQUEST_TIMED_OUT, ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}


class ClusterMarkerChannel:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._connections: dict[int, tuple[tuple[str, int], BrokerConnection, asyncio.Lock]] = {}

    def _leader(self, topic: str, partition: int) -> int:
        try:
            return self.broker.replica_manager.hosted_partition(topic, partition).leader_id
        except ApiError:
            return -1

    def is_remote(self, topic: str, partition: int) -> bool:
        leader = self._leader(topic, partition)
        return leader != self.broker.node_id

    async def write(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, committed: bool,
                    partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MARKER_DEADLINE_S
        pending: list[TopicPartition] = list(partitions)
        results: dict[TopicPartition, ErrorCode] = {}
        backoff = 0.05
        while pending:
            by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
            for tp in pending:
                by_leader[self._leader(*tp)].append(tp)
            answers = await asyncio.gather(*(
                self._send(leader, producer_id, producer_epoch, coordinator_epoch, committed, tps)
                for leader, tps in by_leader.items()))
            pending = []
            for answer in answers:
                for tp, error in answer.items():
                    if error in _RETRIABLE and loop.time() < deadline:
                        pending.append(tp)
                    else:
                        # A deleted partition is skipped, as Kafka does; the rest is the coordinator's to retry.
                        results[tp] = ErrorCode.NONE if error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION else error
            if pending:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
        return results

    async def _send(self, leader: int, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                    committed: bool, partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        if leader == self.broker.node_id:
            # Moved here meanwhile: not retried in this loop; the coordinator's next attempt appends it locally.
            return dict.fromkeys(partitions, ErrorCode.NOT_COORDINATOR)
        connection = self._connection(leader)
        if connection is None:
            return dict.fromkeys(partitions, ErrorCode.LEADER_NOT_AVAILABLE)
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, index in partitions:
            by_topic[topic].append(index)
        request = messages.WriteTxnMarkersRequest(markers=[messages.WriteTxnMarkersRequest.WritableTxnMarker(
            producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=committed,
            coordinator_epoch=coordinator_epoch,
            topics=[messages.WriteTxnMarkersRequest.WritableTxnMarkerTopic(name=t, partition_indexes=i)
                    for t, i in by_topic.items()])])
        _, client, lock = connection
        try:
            async with lock:
                response = await client.send(WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION, request)
        except InterBrokerAuthenticationError as exc:  # logged once by the connection
            log.debug("txn_marker.authentication_failed broker=%d: %s", leader, exc)
            return dict.fromkeys(partitions, ErrorCode.LEADER_NOT_AVAILABLE)
        except BrokerUnavailable as exc:
            log.info("txn_marker.leader_unavailable broker=%d: %s", leader, exc)
            return dict.fromkeys(partitions, ErrorCode.LEADER_NOT_AVAILABLE)
        errors = {tp: ErrorCode.LEADER_NOT_AVAILABLE for tp in partitions}  # anything left unanswered
        for marker in response.markers:
            for topic in marker.topics:
                for p in topic.partitions:
                    errors[(topic.name, p.partition_index)] = ErrorCode(p.error_code)
        return errors

    def _connection(self, broker_id: int) -> tuple[tuple[str, int], BrokerConnection, asyncio.Lock] | None:
        security = self.broker.replica_manager.inter_broker
        address = security.address(self.broker.replica_manager.brokers.get(broker_id))
        if address is None:
            return None
        cached = self._connections.get(broker_id)
        if cached is None or cached[0] != address:
            if cached is not None:
                cached[1].close()
            cached = (address, BrokerConnection(broker_id, address[0], address[1],
                                                f"moldau-txn-markers-{self.broker.node_id}", REQUEST_TIMEOUT_S,
                                                security), asyncio.Lock())
            self._connections[broker_id] = cached
        return cached

    def close(self) -> None:
        for _, connection, _ in self._connections.values():
            connection.close()
        self._connections.clear()

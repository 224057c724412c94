"""Coordinator unit tests run with no network socket and a fake clock, on an in-memory partition log.

Creating an AF_INET/AF_INET6 socket raises here (asyncio's own AF_UNIX self-pipe still works), so a test
that starts a broker or opens a connection fails at once: the coordinators must not need the broker.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from moldau.clock import ManualClock
from moldau.coordinator.config import GroupCoordinatorConfig, TransactionCoordinatorConfig
from moldau.coordinator.runtime import CoordinatorError, KeyValue
from moldau.coordinator.service import Coordinator
from moldau.coordinator.transaction_coordinator import TransactionCoordinator
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, RecordBatchHeader, build_batch, iter_batches


class _NoNetworkSocket(socket.socket):
    def __init__(self, family: int = -1, *args, **kwargs) -> None:
        if family in (socket.AF_INET, socket.AF_INET6, -1) and kwargs.get("fileno") is None and \
                (len(args) < 3 or args[2] is None):
            raise RuntimeError("coordinator unit tests run without network sockets")
        super().__init__(family, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _NoNetworkSocket)


class InMemoryPartitionWriter:
    """A ``PartitionWriter`` + ``CoordinatorLoader`` keeping each partition's batches in a list.
    ``fail_next(code)`` makes the next appends fail as a broken log dir would."""

    def __init__(self) -> None:
        self.partitions: dict[str, list[list[bytes]]] = {}
        self.failures: list[ErrorCode] = []
        self.appends = 0

    def fail_next(self, code: ErrorCode = ErrorCode.KAFKA_STORAGE_ERROR, times: int = 1) -> None:
        self.failures.extend([code] * times)

    def partition_count(self, topic: str) -> int | None:
        batches = self.partitions.get(topic)
        return None if batches is None else len(batches)

    async def create_topic(self, topic: str, num_partitions: int, replication_factor: int,
                           configs: dict[str, str]) -> None:
        self.partitions.setdefault(topic, [[] for _ in range(num_partitions)])

    async def append(self, topic: str, partition: int, records: list[KeyValue], timestamp_ms: int, *,
                     producer_id: int = -1, producer_epoch: int = -1) -> int:
        batch = build_batch([Record(0, timestamp_ms, k, v) for k, v in records], producer_id=producer_id,
                            producer_epoch=producer_epoch, is_transactional=producer_id >= 0)
        return await self.append_batch(topic, partition, batch)

    async def append_batch(self, topic: str, partition: int, batch: bytes) -> int:
        if self.failures:
            code = self.failures.pop(0)
            raise CoordinatorError(code, f"injected {code.name}")
        log = self.partitions.setdefault(topic, [])
        if not 0 <= partition < len(log):
            raise CoordinatorError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        log[partition].append(batch)
        self.appends += 1
        return len(log[partition]) - 1

    def log_start_offset(self, topic: str, partition: int) -> int:
        return 0

    def read_batches(self, topic: str, partition: int) -> Iterator[tuple[bytes, int, RecordBatchHeader]]:
        for batch in self.partitions.get(topic, [])[partition]:
            for pos, header in iter_batches(batch):
                yield batch, pos, header

    def records(self, topic: str) -> int:
        return sum(len(p) for p in self.partitions.get(topic, []))


class StaticTopics:
    """KIP-848 subscription metadata: a fixed set of topics."""

    def __init__(self, **partitions: int) -> None:
        self._topics = {name: (uuid.uuid5(uuid.NAMESPACE_DNS, name), count) for name, count in partitions.items()}

    def topics(self) -> dict[str, tuple[uuid.UUID, int]]:
        return dict(self._topics)


class ProducerIds:
    def __init__(self) -> None:
        self.next = 1000

    async def generate_producer_id(self) -> int:
        self.next += 1
        return self.next - 1


GROUP_CONFIG = GroupCoordinatorConfig(offsets_topic_num_partitions=4, group_initial_rebalance_delay_ms=0,
                                      group_min_session_timeout_ms=10, group_consumer_heartbeat_interval_ms=100)
TXN_CONFIG = TransactionCoordinatorConfig(transaction_state_log_num_partitions=3)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def writer() -> InMemoryPartitionWriter:
    return InMemoryPartitionWriter()


def group_coordinator(writer: InMemoryPartitionWriter, clock: ManualClock) -> Coordinator:
    return Coordinator(GROUP_CONFIG, writer, writer, StaticTopics(t=3), clock)


def transaction_coordinator(writer: InMemoryPartitionWriter, clock: ManualClock,
                            groups: Coordinator) -> TransactionCoordinator:
    return TransactionCoordinator(TXN_CONFIG, writer, writer, ProducerIds(), groups, clock)

"""The coordinator runtime (Kafka's ``coordinator-common``: ``CoordinatorRuntime``, ``CoordinatorShard``,
``CoordinatorResult``, ``PartitionWriter``, ``SnapshotRegistry``), small and single-threaded.

A coordinator is a set of shards, one per partition of its internal topic (``__consumer_offsets``,
``__transaction_state``). Every state change is an operation on one shard, and every operation commits
in the same order:

1. take a snapshot of the shard's state (an undo log, Kafka's ``SnapshotRegistry.getOrCreateSnapshot``);
2. run the operation, which returns ``CoordinatorResult(records, response)``;
3. replay the records into the shard's state (the same ``replay`` that loading runs);
4. append the records through the ``PartitionWriter`` (acks=-1);
5. on failure, revert the shard's state to the snapshot (Kafka's ``revertLastWrittenOffset``) and raise a
   ``CoordinatorError`` with the mapped coordinator error code; on success, return the response.

Operations of one shard run one at a time (a lock per shard, as Kafka runs one event per shard at a time),
so a revert never undoes another operation's state. Nothing here imports the broker: the broker hands in
a ``PartitionWriter`` / ``CoordinatorLoader`` over its ``ReplicaManager``; tests hand in an in-memory one.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from moldau.clock import Clock, SystemClock
from moldau.coordinator.append_errors import coordinator_append_error
from moldau.coordinator.records import partition_for
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordBatchHeader, decode_batch

log = logging.getLogger(__name__)

KeyValue = tuple[bytes, bytes | None]
Replay = Callable[[bytes, bytes | None, int], None]
T = TypeVar("T")


class CoordinatorError(ApiError):
    """A coordinator operation failed with a Kafka error code (raised by a ``PartitionWriter`` with the
    append's own code, and by the runtime with the code a coordinator answers, see ``append_errors``)."""


# -- what the broker provides ----------------------------------------------------------------------


class PartitionWriter(Protocol):
    """Appends to internal-topic partitions (Kafka's ``PartitionWriter``). Failures raise
    ``CoordinatorError`` (or any error with an ``error_code``) carrying the append's Kafka error code."""

    def partition_count(self, topic: str) -> int | None:
        """The partition count of ``topic``, or None when it does not exist."""
        ...

    async def create_topic(self, topic: str, num_partitions: int, replication_factor: int,
                           configs: dict[str, str]) -> None:
        """Create an internal topic (the broker's controller does it, off the event loop)."""
        ...

    async def append(self, topic: str, partition: int, records: list[KeyValue], timestamp_ms: int, *,
                     producer_id: int = -1, producer_epoch: int = -1) -> int:
        """Append one batch of key/value records (acks=-1); returns the offset of its last record. With a
        ``producer_id`` the batch is transactional (KIP-98 TxnOffsetCommit)."""
        ...

    async def append_batch(self, topic: str, partition: int, batch: bytes) -> int:
        """Append a batch the coordinator built itself (transactional offsets, transaction markers)."""
        ...


class CoordinatorLoader(Protocol):
    """Reads a partition back for loading (Kafka's ``CoordinatorLoader``): every complete batch up to the
    high watermark as ``(data, position, header)``, from the log start offset."""

    def read_batches(self, topic: str, partition: int) -> Iterator[tuple[bytes, int, RecordBatchHeader]]: ...

    def log_start_offset(self, topic: str, partition: int) -> int: ...


# -- results and snapshots -------------------------------------------------------------------------


@dataclass(slots=True)
class CoordinatorResult(Generic[T]):
    """What an operation returns: the records to write and the response once they are written.
    ``replayed``: the operation replayed its records itself as it went, because it reads its own changes
    (KIP-848 heartbeats; Kafka's operations compute on local copies instead); the runtime then skips it."""

    records: list[KeyValue]
    response: T
    replayed: bool = False
    # Kafka's scheduleTransactionalWriteOperation: records of a transaction, written in the producer's
    # transactional batch and applied only when its commit marker arrives (the operation holds them).
    producer_id: int = -1
    producer_epoch: int = -1


class SnapshotRegistry:
    """The undo log of the operation in progress (Kafka's ``SnapshotRegistry`` over timeline structures,
    reduced to what one operation at a time per shard needs). State containers call ``record`` with a
    closure that puts back what they are about to change; outside an operation (loading) nothing is kept.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] | None = None
        self._scopes: set[Hashable] = set()

    @property
    def active(self) -> bool:
        return self._undo is not None

    def record(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def record_once(self, scope: Hashable, undo: Callable[[], Callable[[], None]]) -> None:
        """Snapshot ``scope`` (e.g. one group) the first time the operation touches it; ``undo`` is called
        now and returns the closure that restores it."""
        if self._undo is not None and scope not in self._scopes:
            self._scopes.add(scope)
            self._undo.append(undo())

    def begin(self) -> list[Callable[[], None]]:
        if self._undo is not None:
            raise RuntimeError("coordinator operations do not nest")
        self._undo, self._scopes = [], set()
        return self._undo

    def end(self) -> None:
        self._undo = None
        self._scopes = set()

    @staticmethod
    def revert(undo: list[Callable[[], None]]) -> None:
        for restore in reversed(undo):
            restore()
        undo.clear()


# -- the runtime -----------------------------------------------------------------------------------


class ShardState(enum.Enum):
    LOADING = "Loading"
    ACTIVE = "Active"
    FAILED = "Failed"
    CLOSED = "Closed"  # unloaded: this broker no longer leads the partition


@dataclass(slots=True)
class _Shard:
    state: ShardState = ShardState.ACTIVE
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class TopicSpec:
    """The internal topic of a coordinator and how to create it (Kafka's offsets.topic.* /
    transaction.state.log.* settings, passed in as plain values)."""

    name: str
    num_partitions: int
    replication_factor: int
    configs: dict[str, str]


class CoordinatorRuntime:
    """The shards of one coordinator over one internal topic."""

    def __init__(self, topic: TopicSpec, writer: PartitionWriter, loader: CoordinatorLoader, replay: Replay,
                 clock: Clock | None = None, registry: SnapshotRegistry | None = None) -> None:
        self.topic = topic
        self.writer = writer
        self.loader = loader
        self.replay = replay
        self.clock: Clock = clock or SystemClock()
        self.registry = registry or SnapshotRegistry()
        self._shards: dict[int, _Shard] = {}
        # One broker leads every partition, so a partition never loaded is one created since start: new and
        # empty, hence active. In a cluster a shard is active only once loaded (its leadership arrived).
        self.unloaded_is_active = True

    # -- topic and partitioning -------------------------------------------------------------------

    def exists(self) -> bool:
        return self.writer.partition_count(self.topic.name) is not None

    @property
    def partition_count(self) -> int:
        """The partition count of the existing topic (it may predate a config change), else the config."""
        count = self.writer.partition_count(self.topic.name)
        return self.topic.num_partitions if count is None else count

    async def ensure_topic(self) -> None:
        """Create the internal topic on first use, as Kafka does on the first FindCoordinator."""
        if not self.exists():
            await self.writer.create_topic(self.topic.name, self.topic.num_partitions,
                                           self.topic.replication_factor, dict(self.topic.configs))

    def partition_of(self, key: str) -> int:
        return partition_for(key, self.partition_count)

    # -- loading (Kafka: scheduleLoadOperation / scheduleUnloadOperation) --------------------------

    def load(self, partition: int, replay_batch: Callable[[bytes, int, RecordBatchHeader], int] | None = None,
             ) -> int:
        """Become the coordinator of ``partition``: replay it, then accept operations. Returns the number of
        records read. ``replay_batch`` reads one batch itself (transactional offsets); the default replays
        every keyed record of every non-control batch."""
        shard = self._shards.setdefault(partition, _Shard())
        shard.state = ShardState.LOADING
        count = 0
        try:
            start = self.loader.log_start_offset(self.topic.name, partition)
            for data, pos, header in self.loader.read_batches(self.topic.name, partition):
                if replay_batch is not None:
                    count += replay_batch(data, pos, header)
                elif not header.is_control:
                    for record in decode_batch(data, pos):
                        if record.key is not None and record.offset >= start:  # a batch may straddle it
                            self.replay(record.key, record.value, record.timestamp)
                            count += 1
        except Exception:
            shard.state = ShardState.FAILED
            raise
        shard.state = ShardState.ACTIVE
        return count

    def load_all(self, replay_batch: Callable[[bytes, int, RecordBatchHeader], int] | None = None) -> int:
        """Load every partition of the topic: today this broker leads all of them."""
        count = self.writer.partition_count(self.topic.name)
        return sum(self.load(p, replay_batch) for p in range(count or 0))

    def unload(self, partition: int) -> None:
        """Stop being the coordinator of ``partition``; its operations now get NOT_COORDINATOR. The caller
        drops the shard's state (Kafka's ``CoordinatorShard.onUnloaded``)."""
        self._shards.setdefault(partition, _Shard()).state = ShardState.CLOSED

    def check(self, partition: int) -> None:
        """Raise the error a request for ``partition`` gets unless this broker coordinates it now."""
        shard = self._shards.get(partition)
        if shard is None and self.unloaded_is_active or shard is not None and shard.state is ShardState.ACTIVE:
            return
        if shard is not None and shard.state is ShardState.LOADING:
            raise CoordinatorError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        raise CoordinatorError(ErrorCode.NOT_COORDINATOR)

    def is_active(self, partition: int) -> bool:
        shard = self._shards.get(partition)
        return self.unloaded_is_active if shard is None else shard.state is ShardState.ACTIVE

    # -- writes (Kafka: scheduleWriteOperation) ---------------------------------------------------

    async def write(self, key: str, operation: Callable[[], CoordinatorResult[T]]) -> T:
        """Run ``operation`` on the shard of ``key`` and commit its records (see the module docstring)."""
        return await self.write_partition(self.partition_of(key), operation)

    async def write_partition(self, partition: int, operation: Callable[[], CoordinatorResult[T]]) -> T:
        self.check(partition)
        shard = self._shards.setdefault(partition, _Shard())
        async with shard.lock:
            self.check(partition)
            undo = self.registry.begin()
            try:
                result = operation()
                now = self.clock.time_ms()
                if not result.replayed:
                    for key, value in result.records:
                        self.replay(key, value, now)
            except BaseException:
                self.registry.revert(undo)
                raise
            finally:
                self.registry.end()
            if not result.records:
                return result.response
            try:
                await self.ensure_topic()
                await self.writer.append(self.topic.name, partition, result.records, now,
                                         producer_id=result.producer_id, producer_epoch=result.producer_epoch)
            except Exception as exc:
                self.registry.revert(undo)
                code = coordinator_append_error(exc)
                # A failed log dir was logged once when it went offline; its every refused write is not news.
                offline = getattr(exc, "error_code", None) == ErrorCode.KAFKA_STORAGE_ERROR
                log.log(logging.DEBUG if offline else logging.WARNING, "writing to %s-%d failed (%s): %s",
                        self.topic.name, partition, code.name, exc)
                raise CoordinatorError(code, str(exc)) from exc
            return result.response

    def write_in_background(self, key: str, operation: Callable[[], CoordinatorResult[None]]) -> asyncio.Task[None]:
        """``write`` from a timer or other synchronous code; a failure is logged (and its state reverted)."""
        task = asyncio.get_running_loop().create_task(self.write(key, operation))
        _BACKGROUND.add(task)
        task.add_done_callback(_background_done)
        return task


_BACKGROUND: set[asyncio.Task[None]] = set()


def _background_done(task: asyncio.Task[None]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("background coordinator write failed: %s", task.exception())

"""Idempotent producer state of one partition (Kafka's ``ProducerStateManager`` and ``ProducerAppendInfo``).

For every producer id that wrote to the partition: its epoch and its last five batches. A produced batch
is checked against it before it is appended (Kafka's ``UnifiedLog.analyzeAndValidateProducerState``):

- same epoch and sequence range as a retained batch: a retry, answered with the original offsets;
- an epoch older than the producer's: INVALID_PRODUCER_EPOCH;
- a new epoch must start at sequence 0, the same epoch must continue the sequence:
  OUT_OF_ORDER_SEQUENCE_NUMBER otherwise. A producer the partition does not know (never seen, expired,
  or its data deleted) may start at any sequence: Kafka 2.5+ (KIP-360) no longer answers
  UNKNOWN_PRODUCER_ID on append.

The state is snapshotted to ``<offset>.snapshot`` at every segment roll and on close; on load the latest
snapshot is read and the batches after it are replayed from the log (see :class:`moldau.storage.log.Log`).
Plain synchronous code: the log calls it under its lock.

>>> import tempfile, pathlib
>>> from moldau.protocol.records import Record, build_batch, read_batch_header
>>> manager = ProducerStateManager(pathlib.Path(tempfile.mkdtemp()))
>>> header = read_batch_header(build_batch([Record(0, 1000, None, b"a")], producer_id=5, producer_epoch=0,
...                                        base_sequence=0))
>>> updated, duplicate = manager.analyze([(header, 0)], AppendOrigin.CLIENT)
>>> manager.update(updated[5]); manager.analyze([(header, 1)], AppendOrigin.CLIENT)[1].first_offset
0
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordBatchHeader, decode_batch, iter_batches
from moldau.storage.errors import InvalidProducerEpochError, OutOfOrderSequenceError, StorageError
from moldau.storage.producer_snapshot import (
    CorruptSnapshotError,
    fsync_file,
    list_snapshot_files,
    producer_snapshot_file,
    read_snapshot,
    write_snapshot,
)
from moldau.storage.producer_state_entry import (
    NO_PRODUCER_EPOCH,
    NO_SEQUENCE,
    BatchMetadata,
    ProducerStateEntry,
    in_sequence,
    increment_sequence,
)

log = logging.getLogger(__name__)

DEFAULT_PRODUCER_ID_EXPIRATION_MS = 86400000  # producer.id.expiration.ms


CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT = 0, 1
_CONTROL_KEY = struct.Struct(">hh")  # ControlRecordType: version, type
_END_TXN_MARKER = struct.Struct(">hi")  # EndTxnMarker: version, coordinator epoch


class InvalidTxnStateError(StorageError):
    """A producer wrote outside the transaction state the partition knows (Kafka's InvalidTxnStateException)."""

    error_code = ErrorCode.INVALID_TXN_STATE


@dataclass(slots=True, frozen=True)
class CompletedTxn:
    """A transaction a marker ended on this partition (Kafka's ``CompletedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    is_aborted: bool


def control_marker(data: bytes | memoryview, pos: int) -> tuple[int, int] | None:
    """``(control type, coordinator epoch)`` of the control batch at ``pos``; None if it is no txn marker."""
    for record in decode_batch(data, pos):
        if record.key is None or len(record.key) < _CONTROL_KEY.size:
            return None
        _, control_type = _CONTROL_KEY.unpack_from(record.key)
        epoch = -1
        if record.value is not None and len(record.value) >= _END_TXN_MARKER.size:
            epoch = _END_TXN_MARKER.unpack_from(record.value)[1]
        return (control_type, epoch) if control_type in (CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT) else None
    return None


def encode_marker(control_type: int, coordinator_epoch: int) -> tuple[bytes, bytes]:
    """Key and value of a transaction marker record."""
    return _CONTROL_KEY.pack(0, control_type), _END_TXN_MARKER.pack(0, coordinator_epoch)


class AppendOrigin(enum.Enum):
    """Who appends: clients get full validation, replication and log replay only epoch bookkeeping."""

    CLIENT = "client"
    REPLICATION = "replication"


def last_sequence(header: RecordBatchHeader) -> int:
    if header.base_sequence == NO_SEQUENCE:
        return NO_SEQUENCE
    return increment_sequence(header.base_sequence, header.last_offset_delta)


class ProducerAppendInfo:
    """The validated effect of one append on one producer (Kafka's ``ProducerAppendInfo``)."""

    __slots__ = ("current_entry", "origin", "producer_id", "topic_partition", "updated_entry")

    def __init__(self, topic_partition: str, producer_id: int, current_entry: ProducerStateEntry,
                 origin: AppendOrigin) -> None:
        self.topic_partition = topic_partition
        self.producer_id = producer_id
        self.current_entry = current_entry
        self.origin = origin
        self.updated_entry = ProducerStateEntry(
            producer_id, current_entry.producer_epoch, current_entry.coordinator_epoch,
            current_entry.last_timestamp, current_entry.current_txn_first_offset,
        )

    def append_data_batch(self, epoch: int, first_seq: int, last_seq: int, last_timestamp: int,
                          first_offset: int, last_offset: int, is_transactional: bool = False) -> None:
        self._check_producer_epoch(epoch, first_offset)
        if self.origin is AppendOrigin.CLIENT:
            self._check_sequence(epoch, first_seq, first_offset)
        self.updated_entry.add_batch(epoch, last_seq, last_offset, last_offset - first_offset, last_timestamp)
        ongoing = self.updated_entry.current_txn_first_offset
        if ongoing is not None and not is_transactional and self.origin is AppendOrigin.CLIENT:
            raise InvalidTxnStateError(f"expected a transactional write from producer {self.producer_id} at "
                                       f"offset {first_offset} in {self.topic_partition}: its transaction is open")
        if ongoing is None and is_transactional:
            self.updated_entry.current_txn_first_offset = first_offset  # KIP-98: a transaction begins

    def append_end_txn_marker(self, control_type: int, coordinator_epoch: int, epoch: int, offset: int,
                              timestamp: int) -> CompletedTxn | None:
        """Kafka's ``appendEndTxnMarker``: end the producer's open transaction, if it has one."""
        self._check_producer_epoch(epoch, offset)
        entry = self.updated_entry
        completed = None
        if entry.current_txn_first_offset is not None:
            completed = CompletedTxn(self.producer_id, entry.current_txn_first_offset, offset,
                                     control_type == CONTROL_TYPE_ABORT)
        entry.maybe_update_producer_epoch(epoch)
        entry.current_txn_first_offset = None
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp = timestamp
        return completed

    def _check_producer_epoch(self, epoch: int, offset: int) -> None:
        current = self.updated_entry.producer_epoch
        if epoch < current:
            message = (f"epoch of producer {self.producer_id} at offset {offset} in {self.topic_partition} is "
                       f"{epoch}, which is smaller than the last seen epoch {current}")
            if self.origin is AppendOrigin.REPLICATION:
                log.warning("producer_state.stale_epoch %s", message)
            else:
                raise InvalidProducerEpochError(message)

    def _check_sequence(self, epoch: int, first_seq: int, offset: int) -> None:
        updated = self.updated_entry
        if epoch != updated.producer_epoch:
            if first_seq != 0 and updated.producer_epoch != NO_PRODUCER_EPOCH:
                raise OutOfOrderSequenceError(
                    f"invalid sequence number for new epoch of producer {self.producer_id} at offset {offset} "
                    f"in {self.topic_partition}: {epoch} (request epoch), {first_seq} (seq. number), "
                    f"{updated.producer_epoch} (current producer epoch); a new epoch starts at sequence 0"
                )
            return
        if not updated.is_empty:
            current_last_seq = updated.last_seq
        elif epoch == self.current_entry.producer_epoch:
            current_last_seq = self.current_entry.last_seq
        else:
            current_last_seq = NO_SEQUENCE
        # A producer whose state is gone (expired, or its records deleted) may go on at any sequence.
        if self.current_entry.producer_epoch != NO_PRODUCER_EPOCH and not in_sequence(current_last_seq, first_seq):
            raise OutOfOrderSequenceError(
                f"out of order sequence number for producer {self.producer_id} at offset {offset} in "
                f"{self.topic_partition}: {first_seq} (incoming seq. number), {current_last_seq} (current end "
                "sequence number)"
            )


class ProducerStateManager:
    """The producers of one partition directory and their snapshot files; see the module docstring."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.topic_partition = dir.name
        self.producers: dict[int, ProducerStateEntry] = {}
        self.snapshots: dict[int, Path] = list_snapshot_files(dir) if dir.exists() else {}
        self.map_end_offset = 0  # the log offset up to which `producers` is up to date
        self.last_snap_offset = 0
        self._unflushed_snapshots: set[int] = set()

    # -- append ------------------------------------------------------------------------------------------

    def analyze(
        self, batches: Sequence[tuple[RecordBatchHeader, int]], origin: AppendOrigin
    ) -> tuple[dict[int, ProducerAppendInfo], BatchMetadata | None]:
        """Validate ``(header, base_offset)`` pairs; returns the per-producer updates to apply after the
        write, or the original batch when a client retried one (then nothing is to be written).

        Raises :class:`OutOfOrderSequenceError` or :class:`InvalidProducerEpochError`.
        """
        updated: dict[int, ProducerAppendInfo] = {}
        for header, base_offset in batches:
            pid = header.producer_id
            if pid < 0:
                continue
            last_seq = last_sequence(header)
            if origin is AppendOrigin.CLIENT:
                entry = self.producers.get(pid)
                if entry is not None:
                    duplicate = entry.find_duplicate_batch(header.producer_epoch, header.base_sequence, last_seq)
                    if duplicate is not None:
                        return updated, duplicate
            info = updated.get(pid)
            if info is None:
                info = updated[pid] = self.prepare_update(pid, origin)
            info.append_data_batch(header.producer_epoch, header.base_sequence, last_seq, header.max_timestamp,
                                   base_offset, base_offset + header.last_offset_delta, header.is_transactional)
        return updated, None

    def prepare_update(self, producer_id: int, origin: AppendOrigin) -> ProducerAppendInfo:
        current = self.producers.get(producer_id) or ProducerStateEntry.empty(producer_id)
        return ProducerAppendInfo(self.topic_partition, producer_id, current, origin)

    def update(self, info: ProducerAppendInfo) -> None:
        current = self.producers.get(info.producer_id)
        if current is None:
            self.producers[info.producer_id] = info.updated_entry
        else:
            current.update(info.updated_entry)

    def load_from_batches(self, headers: Iterable[RecordBatchHeader]) -> None:
        """Replay stored batches (offsets assigned) into the state, as Kafka's ``loadProducersFromRecords``."""
        for header in headers:
            if header.producer_id >= 0 and not header.is_control:
                info = self.prepare_update(header.producer_id, AppendOrigin.REPLICATION)
                info.append_data_batch(header.producer_epoch, header.base_sequence, last_sequence(header),
                                       header.max_timestamp, header.base_offset, header.last_offset,
                                       header.is_transactional)
                self.update(info)

    def load_from_data(self, data: bytes, from_offset: int) -> tuple[int, list[CompletedTxn]]:
        """Replay the whole batches in ``data`` ending at or after ``from_offset``, markers included;
        returns the next offset to read and the transactions the markers completed."""
        completed: list[CompletedTxn] = []
        next_offset = from_offset
        for pos, header in iter_batches(data):
            if header.last_offset < from_offset:
                continue
            next_offset = header.last_offset + 1
            if header.producer_id < 0:
                continue
            if not header.is_control:
                self.load_from_batches([header])
                continue
            marker = control_marker(data, pos)
            if marker is not None:
                txn = self.apply_marker(header.producer_id, header.producer_epoch, marker[0], marker[1],
                                        header.base_offset, header.max_timestamp, AppendOrigin.REPLICATION)
                if txn is not None:
                    completed.append(txn)
        return next_offset, completed

    def apply_marker(self, producer_id: int, epoch: int, control_type: int, coordinator_epoch: int,
                     offset: int, timestamp: int, origin: AppendOrigin) -> CompletedTxn | None:
        info = self.prepare_update(producer_id, origin)
        completed = info.append_end_txn_marker(control_type, coordinator_epoch, epoch, offset, timestamp)
        self.update(info)
        return completed

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction (Kafka's ``firstUnstableOffset``), if any."""
        offsets = [e.current_txn_first_offset for e in self.producers.values()
                   if e.current_txn_first_offset is not None]
        return min(offsets) if offsets else None

    def update_map_end_offset(self, offset: int) -> None:
        self.map_end_offset = offset

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self.producers.get(producer_id)

    @property
    def active_producers(self) -> dict[int, ProducerStateEntry]:
        return self.producers

    def remove_expired_producers(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle for ``producer.id.expiration.ms`` (by their last batch's timestamp)."""
        expired = [
            pid for pid, entry in self.producers.items()
            if entry.current_txn_first_offset is None and now_ms - entry.last_timestamp >= expiration_ms
        ]
        for pid in expired:
            del self.producers[pid]
        return expired

    # -- snapshots ---------------------------------------------------------------------------------------

    def latest_snapshot_offset(self) -> int | None:
        return max(self.snapshots) if self.snapshots else None

    def take_snapshot(self, *, sync: bool = False) -> Path | None:
        """Write the state at ``map_end_offset`` unless a snapshot there exists; fsync only if ``sync``
        (otherwise :meth:`flush_snapshots` does it when the log is flushed past it)."""
        if self.map_end_offset <= self.last_snap_offset:
            return None
        offset = self.map_end_offset
        path = producer_snapshot_file(self.dir, offset)
        write_snapshot(path, self.producers.values(), sync=sync)
        self.snapshots[offset] = path
        if not sync:
            self._unflushed_snapshots.add(offset)
        self.last_snap_offset = offset
        log.debug("producer_state.snapshot topic_partition=%s offset=%d producers=%d", self.topic_partition,
                  offset, len(self.producers))
        return path

    def unflushed_snapshots(self, up_to_offset: int) -> list[Path]:
        """Snapshot files at or below ``up_to_offset`` not yet fsynced; marks them flushed."""
        due = [o for o in self._unflushed_snapshots if o <= up_to_offset]
        self._unflushed_snapshots.difference_update(due)
        return [producer_snapshot_file(self.dir, o) for o in due]

    @staticmethod
    def flush_snapshots(paths: Iterable[Path]) -> None:
        """fsync snapshot files (call from a worker thread, outside the log's lock)."""
        for path in paths:
            fsync_file(path)

    def delete_snapshot(self, offset: int) -> None:
        path = self.snapshots.pop(offset, None)
        self._unflushed_snapshots.discard(offset)
        if path is not None:
            path.unlink(missing_ok=True)

    def delete_snapshots_before(self, offset: int) -> None:
        for snapshot_offset in [o for o in self.snapshots if o < offset]:
            self.delete_snapshot(snapshot_offset)

    def remove_stray_snapshots(self, segment_base_offsets: Iterable[int]) -> None:
        """Delete snapshots that match no segment, except the latest one past every segment start (written
        at a clean shutdown or a previous load), as Kafka's ``removeStraySnapshots``."""
        bases = set(segment_base_offsets)
        strays = [o for o in sorted(self.snapshots) if o not in bases]
        keep = strays[-1] if strays and (not bases or strays[-1] > max(bases)) else None
        for offset in strays:
            if offset != keep:
                self.delete_snapshot(offset)

    # -- truncation --------------------------------------------------------------------------------------

    def truncate_and_reload(self, log_start_offset: int, log_end_offset: int) -> None:
        """Drop snapshots outside (log_start_offset, log_end_offset] and, unless the state is already at
        ``log_end_offset``, reload it from the latest remaining snapshot. The caller replays the log from
        :attr:`map_end_offset` to ``log_end_offset`` afterwards."""
        for offset in list(self.snapshots):
            if offset > log_end_offset or offset <= log_start_offset:
                self.delete_snapshot(offset)
        if log_end_offset != self.map_end_offset:
            self.producers.clear()
            self._load_from_snapshot(log_start_offset)
        else:
            self.on_log_start_offset_incremented(log_start_offset)

    def _load_from_snapshot(self, log_start_offset: int) -> None:
        while self.snapshots:
            offset = max(self.snapshots)
            try:
                entries = read_snapshot(self.snapshots[offset])
            except CorruptSnapshotError as exc:
                log.warning("producer_state.corrupt_snapshot topic_partition=%s offset=%d error=%s",
                            self.topic_partition, offset, exc)
                self.delete_snapshot(offset)
                continue
            for entry in entries:
                self.producers[entry.producer_id] = entry
            self.map_end_offset = self.last_snap_offset = offset
            return
        self.map_end_offset = self.last_snap_offset = log_start_offset

    def on_log_start_offset_incremented(self, log_start_offset: int) -> None:
        # KIP-360: producers whose records were deleted stay known; only the offsets move on.
        self.map_end_offset = max(self.map_end_offset, log_start_offset)
        latest = self.latest_snapshot_offset()
        self.last_snap_offset = latest if latest is not None else log_start_offset

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.producers.clear()
        for snapshot_offset in list(self.snapshots):
            self.delete_snapshot(snapshot_offset)
        self.last_snap_offset = 0
        self.map_end_offset = offset

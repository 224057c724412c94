"""The log of one partition (Kafka's ``UnifiedLog`` + ``LocalLog``): a directory ``<topic>-<partition>``
of segments, the leader epoch checkpoint, and the offsets that describe them:

- ``log_start_offset``: the first offset a client may read (moved by retention and DeleteRecords);
- ``log_end_offset``: the offset the next appended record gets;
- ``high_watermark``: the offset up to which records are committed (consumers read below it);
- ``recovery_point``: everything below it has been fsynced; a restart after a crash recovers from here.

Threading: appends, reads and offset updates run on the broker's event loop and never fsync;
:meth:`Log.flush` runs on a worker thread. Changes take ``_lock`` (held for microseconds); the segment
list is replaced, never mutated, so a read takes one consistent snapshot without locking; fsync happens
outside ``_lock``.

>>> import tempfile, pathlib
>>> from moldau.protocol.records import Record, build_batch
>>> log = Log.open(pathlib.Path(tempfile.mkdtemp()) / "orders-0", LogConfig())
>>> log.append_as_leader(build_batch([Record(0, 1000, None, b"a")]), leader_epoch=0, now_ms=1000).first_offset
0
>>> log.log_end_offset, log.topic, log.partition
(1, 'orders', 0)
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    InvalidRecordError,
    RecordBatchHeader,
    assign_offsets,
    batch_crc,
    iter_batches,
    read_batch_header,
    validate_produce_batches,
    validate_timestamps,
)
from moldau.storage.append_info import AppendInfo
from moldau.storage.checkpoint_file import fsync_dir
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError, UnexpectedAppendOffsetError
from moldau.storage.fetch_data_info import FetchDataInfo
from moldau.storage.leader_epoch_file_cache import LEADER_EPOCH_CHECKPOINT_FILENAME, LeaderEpochFileCache
from moldau.storage.log_loader import LogLoader
from moldau.storage.producer_state_entry import BatchMetadata, ProducerStateEntry
from moldau.storage.producer_state_manager import (
    AppendOrigin,
    CompletedTxn,
    ProducerAppendInfo,
    ProducerStateManager,
    control_marker,
)
from moldau.storage.segment import (
    CLEANED_FILE_SUFFIX,
    DELETED_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    LogSegment,
    log_file,
    offset_index_file,
    time_index_file,
)
from moldau.storage.transaction_index import AbortedTxn

log = logging.getLogger(__name__)

PRODUCER_STATE_REBUILD_READ_BYTES = 1 << 20

# ListOffsets special timestamps (Kafka's ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
EARLIEST_PENDING_UPLOAD_TIMESTAMP = -6


def parse_topic_partition_name(name: str) -> tuple[str, int]:
    """Split a partition directory name at its last '-': ``"my.topic-name-3"`` -> ``("my.topic-name", 3)``.

    >>> parse_topic_partition_name("__consumer_offsets-49")
    ('__consumer_offsets', 49)
    """
    topic, sep, partition = name.rpartition("-")
    if not sep or not topic or not partition.isdigit():
        raise ValueError(f"directory name {name!r} is not of the form <topic>-<partition>")
    return topic, int(partition)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Log:
    """One partition's log; open it with :meth:`Log.open`."""

    def __init__(
        self,
        dir: Path,
        config: LogConfig,
        segments: list[LogSegment],
        *,
        log_start_offset: int,
        recovery_point: int,
        next_offset: int,
        leader_epoch_cache: LeaderEpochFileCache,
        time_ms: Callable[[], int],
    ) -> None:
        self.dir = dir
        self.topic, self.partition = parse_topic_partition_name(dir.name)
        self._config = config
        self._time_ms = time_ms
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._view: tuple[list[int], tuple[LogSegment, ...]] = ([], ())
        self._set_segments(segments)
        self._log_start_offset = log_start_offset
        self._log_end_offset = next_offset
        self._recovery_point = recovery_point
        self._high_watermark = log_start_offset
        self._last_flush_ms = time_ms()
        self._pending_deletes: list[tuple[int, LogSegment]] = []
        self._truncations = 0  # a flush that straddles a truncation must not move the recovery point
        self._closed = False
        self.leader_epoch_cache = leader_epoch_cache
        self.producer_state = ProducerStateManager(dir)
        self.producer_state.remove_stray_snapshots(s.base_offset for s in self._segments)
        self._rebuild_producer_state()

    @classmethod
    def open(
        cls,
        dir: Path,
        config: LogConfig,
        *,
        recovery_point: int = 0,
        log_start_offset: int | None = None,
        had_clean_shutdown: bool = False,
        now_ms: Callable[[], int] | None = None,
    ) -> Log:
        """Open (or create) the log in ``dir``, recovering segments after ``recovery_point`` unless the
        broker shut down cleanly. ``now_ms`` is the clock (milliseconds) for segment ages; wall clock if None.
        """
        time_ms = now_ms or _wall_clock_ms
        parse_topic_partition_name(dir.name)  # fail before touching the directory
        dir.mkdir(parents=True, exist_ok=True)
        cache = LeaderEpochFileCache(dir / LEADER_EPOCH_CHECKPOINT_FILENAME)
        loader = LogLoader(
            dir,
            config,
            had_clean_shutdown=had_clean_shutdown,
            log_start_offset_checkpoint=log_start_offset or 0,
            recovery_point_checkpoint=recovery_point,
            leader_epoch_cache=cache,
            time_ms=time_ms,
        )
        segments, offsets = loader.load()
        log.info(
            "log.open topic_partition=%s log_start_offset=%d log_end_offset=%d recovery_point=%d segments=%d",
            dir.name,
            offsets.log_start_offset,
            offsets.next_offset,
            offsets.recovery_point,
            len(segments),
        )
        return cls(
            dir,
            config,
            segments,
            log_start_offset=offsets.log_start_offset,
            recovery_point=offsets.recovery_point,
            next_offset=offsets.next_offset,
            leader_epoch_cache=cache,
            time_ms=time_ms,
        )

    # -- state ---------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Log(dir={self.dir}, log_start_offset={self._log_start_offset}, "
            f"log_end_offset={self._log_end_offset}, high_watermark={self._high_watermark})"
        )

    @property
    def config(self) -> LogConfig:
        return self._config

    def update_config(self, config: LogConfig) -> None:
        """Apply new topic configs (AlterConfigs); the active segment's index capacity follows."""
        with self._lock:
            self._config = config
            self._segments[-1].resize_indexes(config.segment_index_bytes)

    @property
    def _segments(self) -> tuple[LogSegment, ...]:
        return self._view[1]

    def _set_segments(self, segments: list[LogSegment] | tuple[LogSegment, ...]) -> None:
        ordered = tuple(sorted(segments, key=lambda s: s.base_offset))
        self._view = ([s.base_offset for s in ordered], ordered)

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        """The segments, oldest first (a snapshot)."""
        return self._segments

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    @property
    def unflushed_messages(self) -> int:
        """Offsets appended since the last flush (Kafka's ``unflushedMessages``)."""
        return self._log_end_offset - self._recovery_point

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_flush_ms(self) -> int:
        """When the last :meth:`flush` finished (Kafka's ``lastFlushTime``), by the log's clock."""
        return self._last_flush_ms

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped to [log_start_offset, log_end_offset]; returns the value set."""
        with self._lock:
            self._high_watermark = min(max(offset, self._log_start_offset), self._log_end_offset)
            return self._high_watermark

    def should_flush(self, now_ms: int) -> bool:
        """Whether the flusher thread should call :meth:`flush` now: ``flush.messages`` or ``flush.ms``
        reached, or a rolled segment not yet fsynced (Kafka flushes it right after the roll)."""
        unflushed = self.unflushed_messages
        if unflushed <= 0:
            return False
        return (
            unflushed >= self._config.flush_messages
            or now_ms - self._last_flush_ms >= self._config.flush_ms
            or self._recovery_point < self._segments[-1].base_offset
        )

    @contextmanager
    def _storage_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            log.error("log.io_error topic_partition=%s action=%s error=%s", self.dir.name, action, exc)
            raise KafkaStorageError(
                f"I/O error while {action} for {self.dir.name} in {self.dir.parent}: {exc}"
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaStorageError(f"log {self.dir.name} is closed")

    # -- append --------------------------------------------------------------------------------------------

    def append_as_leader(
        self, records: bytes | bytearray | memoryview, *, leader_epoch: int, now_ms: int, in_place: bool = False
    ) -> AppendInfo:
        """Validate produced batches, give them offsets from the log end, and write them. Never fsyncs.

        Raises :class:`InvalidRecordError` (with the Kafka error code) for a batch Kafka would refuse.
        """
        config = self._config
        batches = validate_produce_batches(records, config.max_message_bytes)
        if not config.log_append_time:
            for _, header in batches:
                validate_timestamps(
                    header,
                    now_ms,
                    config.message_timestamp_before_max_ms,
                    config.message_timestamp_after_max_ms,
                )
        last_pos, last_header = batches[-1]
        valid_bytes = last_pos + last_header.size_in_bytes
        view = memoryview(records)[:valid_bytes]
        # The broker hands over a view of a request frame that nobody reads again (`in_place`): patch
        # offsets into it rather than copying the batch once more. Anything else is copied first.
        buf = view if in_place and not view.readonly else bytearray(view)
        self._check_fits_segment(valid_bytes)
        log_append_time = now_ms if config.log_append_time else None
        with self._lock, self._storage_errors("appending"):
            self._check_open()
            first_offset = offset = self._log_end_offset
            producer_appends = None
            if any(header.producer_id >= 0 for _, header in batches):
                producer_appends, duplicate = self._analyze_producer_state(batches, first_offset)
                if duplicate is not None:
                    # A producer's retry: Kafka answers with the original batch's offsets and no error.
                    return AppendInfo(duplicate.first_offset, duplicate.last_offset, duplicate.timestamp,
                                      self._log_start_offset, 0)
            max_timestamp, offset_of_max_timestamp, num_messages = -1, -1, 0
            for pos, header in batches:
                assign_offsets(buf, pos, offset, leader_epoch, log_append_time)
                last = offset + header.last_offset_delta
                timestamp = log_append_time if log_append_time is not None else header.max_timestamp
                if timestamp > max_timestamp:
                    max_timestamp, offset_of_max_timestamp = timestamp, last
                num_messages += header.records_count
                offset = last + 1
            if leader_epoch >= 0:
                self.leader_epoch_cache.assign(leader_epoch, first_offset)
            self._write(buf, first_offset, offset - 1, max_timestamp, offset_of_max_timestamp, now_ms)
            if producer_appends:
                for producer_append in producer_appends.values():
                    self.producer_state.update(producer_append)
            self.producer_state.update_map_end_offset(offset)
            return AppendInfo(
                first_offset=first_offset,
                last_offset=offset - 1,
                log_append_time=now_ms if log_append_time is not None else -1,
                log_start_offset=self._log_start_offset,
                num_messages=num_messages,
                max_timestamp=max_timestamp,
                valid_bytes=valid_bytes,
            )

    def append_as_follower(
        self, records: bytes | bytearray | memoryview, *, now_ms: int | None = None
    ) -> AppendInfo:
        """Append batches that already carry offsets and epochs (replication), after checking their
        structure and CRC. The first offset must be >= the log end offset (Kafka's
        UnexpectedAppendOffsetException otherwise); gaps are allowed (compacted leaders)."""
        now = self._time_ms() if now_ms is None else now_ms
        headers = _validate_replica_batches(records)
        if not headers:
            return AppendInfo(-1, -1, -1, self._log_start_offset, 0)
        valid_bytes = sum(h.size_in_bytes for _, h in headers)
        self._check_fits_segment(valid_bytes)
        with self._lock, self._storage_errors("appending as follower"):
            self._check_open()
            first, last = headers[0][1].base_offset, headers[-1][1].last_offset
            if first < self._log_end_offset:
                raise UnexpectedAppendOffsetError(
                    f"first offset {first} of a follower append to {self.dir.name} is below the log end offset "
                    f"{self._log_end_offset}"
                )
            max_timestamp, offset_of_max_timestamp = -1, -1
            for _, header in headers:
                if header.max_timestamp > max_timestamp:
                    max_timestamp, offset_of_max_timestamp = header.max_timestamp, header.last_offset
                if header.partition_leader_epoch >= 0:
                    self.leader_epoch_cache.assign(header.partition_leader_epoch, header.base_offset)
            data = memoryview(records)[:valid_bytes]
            self._write(data, first, last, max_timestamp, offset_of_max_timestamp, now)
            self.producer_state.load_from_batches(header for _, header in headers)
            self.producer_state.update_map_end_offset(last + 1)
            return AppendInfo(
                first_offset=first,
                last_offset=last,
                log_append_time=-1,
                log_start_offset=self._log_start_offset,
                num_messages=sum(h.records_count for _, h in headers),
                max_timestamp=max_timestamp,
                valid_bytes=valid_bytes,
            )

    def append_as_coordinator(self, batch: bytes, *, leader_epoch: int, now_ms: int) -> AppendInfo:
        """Append one batch a coordinator built: a transaction marker (ends the producer's open transaction
        and, for an abort, records it in the segment's ``.txnindex``), or transactional data without
        sequence numbers (TxnOffsetCommit records).

        Raises :class:`InvalidProducerEpochError` if a marker's epoch is older than the producer's.
        """
        header = read_batch_header(batch)
        marker = control_marker(batch, 0) if header.is_control else None
        if header.producer_id < 0 or not header.is_transactional or (header.is_control and marker is None):
            raise InvalidRecordError(ErrorCode.INVALID_RECORD, "a coordinator append must be transactional")
        buf = bytearray(batch)
        with self._lock, self._storage_errors("appending a coordinator batch"):
            self._check_open()
            offset = self._log_end_offset
            last = offset + header.last_offset_delta
            completed = None
            if marker is not None:
                info = self.producer_state.prepare_update(header.producer_id, AppendOrigin.CLIENT)
                completed = info.append_end_txn_marker(marker[0], marker[1], header.producer_epoch, offset,
                                                       now_ms)
            else:
                info = self.producer_state.prepare_update(header.producer_id, AppendOrigin.REPLICATION)
                info.append_data_batch(header.producer_epoch, header.base_sequence, header.base_sequence,
                                       header.max_timestamp, offset, last, True)
            assign_offsets(buf, 0, offset, leader_epoch, None)
            if leader_epoch >= 0:
                self.leader_epoch_cache.assign(leader_epoch, offset)
            self._write(buf, offset, last, header.max_timestamp, last, now_ms)
            self.producer_state.update(info)
            self.producer_state.update_map_end_offset(last + 1)
            if completed is not None:
                self._record_completed([completed])
            return AppendInfo(first_offset=offset, last_offset=last, log_append_time=-1,
                              log_start_offset=self._log_start_offset, num_messages=header.records_count,
                              max_timestamp=header.max_timestamp, valid_bytes=len(buf))

    def _record_completed(self, completed: list[CompletedTxn]) -> None:
        """Index aborted transactions in the segment holding their marker (Kafka's ``updateTxnIndex``)."""
        bases, segments = self._view
        for txn in completed:
            if not txn.is_aborted:
                continue
            unstable = self.producer_state.first_unstable_offset()
            lso = txn.last_offset + 1 if unstable is None else unstable
            index = max(bisect_right(bases, txn.last_offset) - 1, 0)
            segments[index].txn_index.append(AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, lso))

    @property
    def last_stable_offset(self) -> int:
        """KIP-98: read_committed consumers read below the first open transaction, never past the HW."""
        unstable = self.producer_state.first_unstable_offset()
        return self._high_watermark if unstable is None else min(unstable, self._high_watermark)

    def collect_aborted_transactions(self, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_bound_offset) (``collectAbortedTransactions``)."""
        bases, segments = self._view
        first = max(bisect_right(bases, start_offset) - 1, 0)
        result: list[AbortedTxn] = []
        for segment in segments[first:]:
            result.extend(segment.txn_index.collect_aborted(start_offset, upper_bound_offset))
        return result

    def _analyze_producer_state(
        self, batches: list[tuple[int, RecordBatchHeader]], first_offset: int
    ) -> tuple[dict[int, ProducerAppendInfo], BatchMetadata | None]:
        with_offsets = []
        offset = first_offset
        for _, header in batches:
            with_offsets.append((header, offset))
            offset += header.last_offset_delta + 1
        return self.producer_state.analyze(with_offsets, AppendOrigin.CLIENT)

    def _rebuild_producer_state(self) -> None:
        """Reload the producer state from the latest snapshot at or below the log end and replay the
        batches after it (Kafka's ``rebuildProducerState``), then snapshot at the log end."""
        state = self.producer_state
        end = self._log_end_offset
        state.truncate_and_reload(self._log_start_offset, end)
        offset = max(state.map_end_offset, self._log_start_offset)
        while offset < end:
            info = self.read(offset, PRODUCER_STATE_REBUILD_READ_BYTES, max_offset=end)
            if info.records is None:
                break
            next_offset, completed = state.load_from_data(info.records.read_bytes(), offset)
            if next_offset <= offset:
                break
            self._record_completed(completed)
            offset = next_offset
        state.update_map_end_offset(end)
        state.take_snapshot()

    def active_producers(self) -> list[ProducerStateEntry]:
        """Copies of the producers this partition knows (DescribeProducers)."""
        with self._lock:
            return [entry.copy() for entry in self.producer_state.active_producers.values()]

    def remove_expired_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle longer than ``producer.id.expiration.ms``; returns how many."""
        with self._lock:
            return len(self.producer_state.remove_expired_producers(now_ms, expiration_ms))

    def _check_fits_segment(self, size: int) -> None:
        if size > self._config.segment_bytes:
            raise InvalidRecordError(
                ErrorCode.RECORD_LIST_TOO_LARGE,
                f"message batch size is {size} bytes in an append to {self.dir.name}, which exceeds the "
                f"maximum configured segment size of {self._config.segment_bytes}",
            )

    def _write(
        self,
        data: bytes | bytearray | memoryview,
        first_offset: int,
        last_offset: int,
        max_timestamp: int,
        offset_of_max_timestamp: int,
        now_ms: int,
    ) -> None:
        segment = self._maybe_roll(len(data), first_offset, last_offset, max_timestamp, now_ms)
        segment.append(last_offset, max_timestamp, offset_of_max_timestamp, data)
        self._log_end_offset = last_offset + 1  # published only after the bytes are in the file

    def _maybe_roll(
        self, messages_size: int, first_offset: int, last_offset: int, max_timestamp: int, now_ms: int
    ) -> LogSegment:
        segment = self._segments[-1]
        if segment.should_roll(
            max_segment_ms=self._config.segment_ms,
            max_segment_bytes=self._config.segment_bytes,
            max_timestamp_in_messages=max_timestamp,
            max_offset_in_messages=last_offset,
            messages_size=messages_size,
            now_ms=now_ms,
        ):
            return self._roll(first_offset)
        return segment

    def roll(self) -> LogSegment:
        """Start a new active segment at the log end offset."""
        with self._lock, self._storage_errors("rolling a segment"):
            return self._roll(None)

    def _roll(self, expected_next_offset: int | None) -> LogSegment:
        new_offset = max(expected_next_offset or 0, self._log_end_offset)
        active = self._segments[-1]
        if new_offset == active.base_offset and active.size == 0:
            return active  # nothing to roll away from (Kafka's KAFKA-6388 case)
        if new_offset <= active.base_offset:
            raise KafkaStorageError(
                f"cannot roll {self.dir.name} to a segment at {new_offset}: the active segment starts at "
                f"{active.base_offset}"
            )
        for path in (
            log_file(self.dir, new_offset),
            offset_index_file(self.dir, new_offset),
            time_index_file(self.dir, new_offset),
        ):
            if path.exists():
                log.warning("log.roll deleting existing file of the new segment path=%s", path)
                path.unlink()
        active.on_become_inactive_segment()
        # Kafka snapshots the producer state at every new segment's base offset, so recovery starts there.
        self.producer_state.update_map_end_offset(new_offset)
        self.producer_state.take_snapshot()
        segment = LogSegment(self.dir, new_offset, self._config, time_ms=self._time_ms)
        self._set_segments((*self._segments, segment))
        log.info("log.roll topic_partition=%s new_segment=%d", self.dir.name, new_offset)
        return segment

    # -- read ----------------------------------------------------------------------------------------------

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> FetchDataInfo:
        """Whole batches starting with the one that holds ``fetch_offset`` (Kafka's ``UnifiedLog.read``).

        At most ``max_bytes``, but at least one batch when ``min_one_message`` (KIP-74); nothing at or
        beyond ``max_offset`` (pass the high watermark for consumers; None means the log end). Reads one
        segment: the one holding ``fetch_offset``, or the next one with data.

        Raises :class:`OffsetOutOfRangeError` if ``fetch_offset`` is below the log start offset or above
        the log end offset.
        """
        bases, segments = self._view
        log_end_offset = self._log_end_offset
        log_start_offset = self._log_start_offset
        if fetch_offset < log_start_offset or fetch_offset > log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {fetch_offset} is out of range for {self.dir.name}: the log has offsets "
                f"[{log_start_offset}, {log_end_offset})"
            )
        bound = log_end_offset if max_offset is None else min(max_offset, log_end_offset)
        if fetch_offset >= bound:
            return FetchDataInfo(fetch_offset, None)
        index = bisect_right(bases, fetch_offset) - 1
        if index < 0:
            raise OffsetOutOfRangeError(
                f"offset {fetch_offset} is below the first segment of {self.dir.name} ({bases[0]})"
            )
        bound_index = bisect_right(bases, bound) - 1 if bound < log_end_offset else len(segments)
        with self._storage_errors("reading"):
            for i in range(index, len(segments)):
                if i > bound_index:
                    break
                segment = segments[i]
                max_position = None
                if i == bound_index:
                    position = segment.translate_offset(bound)
                    max_position = position.position if position is not None else segment.size
                info = segment.read(fetch_offset, max_bytes, max_position, min_one_message)
                if info is not None:
                    return info
        return FetchDataInfo(fetch_offset, None)

    def fetch_offset_by_timestamp(self, timestamp: int) -> tuple[int, int, int] | None:
        """ListOffsets: ``(offset, timestamp, leader_epoch)`` for ``timestamp``, or None if no record has
        a timestamp that large. Special timestamps as in Kafka's ``UnifiedLog.fetchOffsetByTimestamp``:

        - EARLIEST (-2) and EARLIEST_LOCAL (-4): the log start offset;
        - LATEST (-1): the log end offset (last offset + 1);
        - MAX_TIMESTAMP (-3): the first record carrying the largest timestamp;
        - LATEST_TIERED (-5), EARLIEST_PENDING_UPLOAD (-6): offset -1 (there is no tiered storage);
        - otherwise the first record with a timestamp >= ``timestamp`` (at or after the log start offset).

        The returned timestamp is -1 for the special values other than MAX_TIMESTAMP; an unknown leader
        epoch is -1.
        """
        with self._storage_errors("searching by timestamp"):
            if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
                earliest = self.leader_epoch_cache.earliest_entry()
                epoch = earliest[0] if earliest is not None and earliest[1] <= self._log_start_offset else -1
                return self._log_start_offset, -1, epoch
            if timestamp == LATEST_TIMESTAMP:
                latest = self.leader_epoch_cache.latest_epoch()
                return self._log_end_offset, -1, latest if latest is not None else -1
            if timestamp in (LATEST_TIERED_TIMESTAMP, EARLIEST_PENDING_UPLOAD_TIMESTAMP):
                return -1, -1, -1
            segments = self._segments
            if timestamp == MAX_TIMESTAMP:
                best = segments[0]
                for segment in segments[1:]:
                    if segment.max_timestamp_so_far > best.max_timestamp_so_far:
                        best = segment
                found = best.offset_of_max_timestamp()
                return (found[1], found[0], found[2]) if found is not None else None
            for segment in segments:
                if segment.largest_timestamp >= timestamp:
                    found = segment.find_offset_by_timestamp(timestamp, self._log_start_offset)
                    return (found[1], found[0], found[2]) if found is not None else None
            return None

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int] | None:
        """OffsetForLeaderEpoch: ``(end_offset, epoch)`` (Kafka's ``OffsetAndEpoch``), None if unknown."""
        epoch, end_offset = self.leader_epoch_cache.end_offset_for(leader_epoch, self._log_end_offset)
        return None if end_offset < 0 else (end_offset, epoch)

    # -- flush ---------------------------------------------------------------------------------------------

    def flush(self, up_to_offset: int | None = None) -> None:
        """fsync the segments holding offsets below ``up_to_offset`` (default: the log end offset) and make
        it the recovery point. Call from a worker thread: appends and reads go on meanwhile."""
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return
                offset = (
                    self._log_end_offset if up_to_offset is None else min(up_to_offset, self._log_end_offset)
                )
                recovery_point = self._recovery_point
                truncations = self._truncations
                if offset <= recovery_point:
                    return
                bases, segments = self._view
                first = max(bisect_right(bases, recovery_point) - 1, 0)
                to_flush = [s for s in segments[first:] if s.base_offset < offset]
                new_segments = any(s.base_offset >= recovery_point for s in to_flush)
                snapshots = self.producer_state.unflushed_snapshots(offset)
            with self._storage_errors("flushing"):
                for segment in to_flush:
                    try:
                        segment.flush()
                    except (OSError, ValueError):
                        if segment in self._segments:
                            raise
                        # deleted or truncated away while we were flushing: nothing to make durable
                self.leader_epoch_cache.flush()
                ProducerStateManager.flush_snapshots(snapshots)
                if new_segments:
                    fsync_dir(self.dir)
            with self._lock:
                if truncations == self._truncations:
                    self._recovery_point = max(self._recovery_point, offset)
                self._last_flush_ms = self._time_ms()

    # -- truncation and retention ----------------------------------------------------------------------------

    def truncate_to(self, target_offset: int) -> bool:
        """Remove every record at or after ``target_offset`` (a follower truncating to its leader).
        Returns whether anything was removed."""
        if target_offset < 0:
            raise ValueError(f"cannot truncate {self.dir.name} to a negative offset ({target_offset})")
        with self._lock, self._storage_errors("truncating"):
            if target_offset >= self._log_end_offset:
                self.leader_epoch_cache.truncate_from_end(self._log_end_offset)
                return False
            log.info("log.truncate_to topic_partition=%s offset=%d", self.dir.name, target_offset)
            self._truncations += 1
            if self._segments[0].base_offset > target_offset:
                self._truncate_fully_and_start_at(target_offset, None)
                return True
            self._remove_and_delete_segments([s for s in self._segments if s.base_offset > target_offset])
            self._segments[-1].truncate_to(target_offset)
            self._log_end_offset = target_offset
            self._recovery_point = min(self._recovery_point, target_offset)
            self.leader_epoch_cache.truncate_from_end(target_offset)
            self._log_start_offset = min(target_offset, self._log_start_offset)
            self._high_watermark = min(self._high_watermark, target_offset)
            self._rebuild_producer_state()
            return True

    def truncate_fully_and_start_at(self, new_offset: int, log_start_offset: int | None = None) -> None:
        """Delete all data and continue at ``new_offset`` (a follower far behind a leader's start)."""
        with self._lock, self._storage_errors("truncating fully"):
            self._truncate_fully_and_start_at(new_offset, log_start_offset)

    def _truncate_fully_and_start_at(self, new_offset: int, log_start_offset: int | None) -> None:
        self._truncations += 1
        self._remove_and_delete_segments(list(self._segments), keep_one=False)
        self._set_segments([LogSegment(self.dir, new_offset, self._config, time_ms=self._time_ms)])
        self._log_end_offset = new_offset
        self._recovery_point = min(self._recovery_point, new_offset)
        self.leader_epoch_cache.clear_and_flush()
        self._log_start_offset = new_offset if log_start_offset is None else log_start_offset
        self._high_watermark = new_offset
        self.producer_state.truncate_fully_and_start_at(new_offset)

    def maybe_increment_log_start_offset(self, new_log_start_offset: int) -> bool:
        """Move the log start offset forward (DeleteRecords); it may not pass the high watermark.
        Segments wholly below it are removed by the next :meth:`delete_old_segments`."""
        with self._lock:
            if new_log_start_offset > self._high_watermark:
                raise OffsetOutOfRangeError(
                    f"cannot increment the log start offset of {self.dir.name} to {new_log_start_offset}: it is "
                    f"beyond the high watermark {self._high_watermark}"
                )
            if new_log_start_offset <= self._log_start_offset:
                return False
            self._log_start_offset = new_log_start_offset
            self._recovery_point = max(self._recovery_point, new_log_start_offset)
            self.leader_epoch_cache.truncate_from_start(new_log_start_offset)
            self.producer_state.on_log_start_offset_incremented(new_log_start_offset)
            log.info("log.log_start_offset topic_partition=%s offset=%d", self.dir.name, new_log_start_offset)
            return True

    def delete_old_segments(self, now_ms: int) -> int:
        """Retention (Kafka's ``deleteOldSegments``): delete segments wholly below the log start offset,
        then, for ``cleanup.policy=delete``, the oldest segments beyond ``retention.bytes`` and those whose
        largest timestamp is older than ``retention.ms``. Returns the number of segments deleted.

        Only segments wholly below the high watermark go. As in Kafka, the active segment goes too once
        every record in it is expired and committed: a new empty segment is rolled first. Deleted files are
        renamed ``*.deleted`` and removed ``file.delete.delay.ms`` later (by this method or :meth:`close`).
        """
        with self._lock, self._storage_errors("deleting old segments"):
            self._check_open()
            deleted = self._delete_matching(
                lambda s, nxt: nxt is not None and nxt.base_offset <= self._log_start_offset, now_ms
            )
            if self._config.delete:
                deleted += self._delete_retention_size_breached(now_ms)
                deleted += self._delete_retention_ms_breached(now_ms)
        self._reap_deleted_segments(now_ms, force=False)
        return deleted

    def _delete_retention_ms_breached(self, now_ms: int) -> int:
        retention_ms = self._config.retention_ms
        if retention_ms < 0:
            return 0
        return self._delete_matching(lambda s, nxt: now_ms - s.largest_timestamp > retention_ms, now_ms)

    def _delete_retention_size_breached(self, now_ms: int) -> int:
        retention_bytes = self._config.retention_bytes
        size = self.size_in_bytes
        if retention_bytes < 0 or size < retention_bytes:
            return 0
        excess = size - retention_bytes

        def breached(segment: LogSegment, _next: LogSegment | None) -> bool:
            nonlocal excess
            if excess - segment.size >= 0:
                excess -= segment.size
                return True
            return False

        return self._delete_matching(breached, now_ms)

    def _delete_matching(
        self, predicate: Callable[[LogSegment, LogSegment | None], bool], now_ms: int
    ) -> int:
        segments = self._segments
        deletable: list[LogSegment] = []
        for i, segment in enumerate(segments):
            upcoming = segments[i + 1] if i + 1 < len(segments) else None
            upper_bound = upcoming.base_offset if upcoming is not None else self._log_end_offset
            last_and_empty = upcoming is None and segment.size == 0
            if self._high_watermark >= upper_bound and not last_and_empty and predicate(segment, upcoming):
                deletable.append(segment)
            else:
                break
        if not deletable:
            return 0
        if len(deletable) == len(segments):
            self._roll(None)  # a log always keeps one segment
        new_start = self._segments[len(deletable)].base_offset
        if new_start > self._log_start_offset:
            self._log_start_offset = new_start
            self._recovery_point = max(self._recovery_point, new_start)
            self.leader_epoch_cache.truncate_from_start(new_start)
            self.producer_state.on_log_start_offset_incremented(new_start)
        self._remove_and_delete_segments(deletable, now_ms=now_ms)
        for segment in deletable:
            self.producer_state.delete_snapshot(segment.base_offset)
        log.info(
            "log.delete_segments topic_partition=%s segments=%s log_start_offset=%d",
            self.dir.name,
            [s.base_offset for s in deletable],
            self._log_start_offset,
        )
        return len(deletable)

    def _remove_and_delete_segments(
        self, segments: list[LogSegment], keep_one: bool = True, now_ms: int | None = None
    ) -> None:
        """Take segments out of the log now; their files go ``file.delete.delay.ms`` after ``now_ms``."""
        if not segments:
            return
        doomed = set(map(id, segments))
        remaining = [s for s in self._segments if id(s) not in doomed]
        if keep_one and not remaining:
            raise AssertionError("a log must keep at least one segment")
        self._set_segments(remaining)
        deadline = (self._time_ms() if now_ms is None else now_ms) + self._config.file_delete_delay_ms
        for segment in segments:
            segment.change_file_suffixes("", DELETED_FILE_SUFFIX)
            self._pending_deletes.append((deadline, segment))
        if self._config.file_delete_delay_ms <= 0:
            self._reap_deleted_segments(deadline, force=True)

    def replace_segments(
        self, new_segment: LogSegment, old_segments: list[LogSegment], old_sizes: list[int]
    ) -> bool:
        """Compaction (Kafka's ``replaceSegments``): put ``new_segment`` (files ``*.cleaned``, flushed) in
        place of ``old_segments`` in one step for readers.

        Crash-safe by file names: the new files become ``*.swap`` (a restart completes the swap, see
        :class:`LogLoader`), the old ones ``*.deleted`` (removed ``file.delete.delay.ms`` later, so fetches
        in flight keep reading them), then the swap files drop their suffix. Returns False, touching
        nothing, if the log changed under the cleaner: closed, or an old segment deleted or truncated
        (``old_sizes`` are their sizes when the cleaner read them).
        """
        with self._lock, self._storage_errors("replacing cleaned segments"):
            current = self._segments
            present = set(map(id, current))
            if (
                self._closed
                or not old_segments
                or any(id(s) not in present for s in old_segments)
                or any(s.size != size for s, size in zip(old_segments, old_sizes, strict=True))
                or old_segments[-1] is current[-1]
            ):
                return False
            new_segment.change_file_suffixes(CLEANED_FILE_SUFFIX, SWAP_FILE_SUFFIX)
            fsync_dir(self.dir)
            doomed = set(map(id, old_segments))
            self._set_segments([s for s in current if id(s) not in doomed] + [new_segment])
            deadline = self._time_ms() + self._config.file_delete_delay_ms
            for segment in old_segments:
                segment.change_file_suffixes("", DELETED_FILE_SUFFIX)
                self._pending_deletes.append((deadline, segment))
            new_segment.change_file_suffixes(SWAP_FILE_SUFFIX, "")
        if self._config.file_delete_delay_ms <= 0:
            self._reap_deleted_segments(deadline, force=False)
        return True

    def _reap_deleted_segments(self, now_ms: int, *, force: bool) -> None:
        with self._lock:
            due = [(t, s) for t, s in self._pending_deletes if force or t <= now_ms]
            self._pending_deletes = [(t, s) for t, s in self._pending_deletes if not (force or t <= now_ms)]
        for _, segment in due:
            try:
                segment.delete()
            except OSError as exc:
                log.warning("log.delete_segment_failed segment=%s error=%s", segment.log_path, exc)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the files (no fsync: the log manager flushes before a clean shutdown)."""
        with self._flush_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            self._snapshot_producer_state_on_close()
            for segment in self._segments:
                segment.close()
        self._reap_deleted_segments(0, force=True)

    def _snapshot_producer_state_on_close(self) -> None:
        """Kafka's ``UnifiedLog.close``: a synced snapshot at the log end, so a clean restart replays nothing."""
        self.producer_state.update_map_end_offset(self._log_end_offset)
        try:
            self.producer_state.take_snapshot(sync=True)
        except OSError as exc:
            log.warning("log.producer_snapshot_failed topic_partition=%s error=%s", self.dir.name, exc)

    def delete(self) -> None:
        """Close the log and remove its directory."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _validate_replica_batches(records: bytes | bytearray | memoryview) -> list[tuple[int, RecordBatchHeader]]:
    """Structure and CRC checks for batches a follower copies from its leader (no client rules)."""
    batches = list(iter_batches(records))
    expected = None
    for pos, header in batches:
        if header.magic != 2 or header.last_offset_delta < 0:
            raise InvalidRecordError(
                ErrorCode.CORRUPT_MESSAGE, f"invalid record batch at byte {pos} in a follower append"
            )
        if batch_crc(records, pos, pos + header.size_in_bytes) != header.crc:
            raise InvalidRecordError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} is corrupt (stored crc = {header.crc})",
            )
        if expected is not None and header.base_offset < expected:
            raise InvalidRecordError(
                ErrorCode.INVALID_RECORD,
                f"out of order offsets in a follower append: {header.base_offset} < {expected}",
            )
        expected = header.last_offset + 1
    return batches


__all__ = [
    "EARLIEST_LOCAL_TIMESTAMP",
    "EARLIEST_PENDING_UPLOAD_TIMESTAMP",
    "EARLIEST_TIMESTAMP",
    "LATEST_TIERED_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_TIMESTAMP",
    "AppendInfo",
    "FetchDataInfo",
    "Log",
    "OffsetOutOfRangeError",
    "parse_topic_partition_name",
]

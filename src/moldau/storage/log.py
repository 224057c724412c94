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
    assign_offsets,
    read_batch_header,
)
from moldau.storage import (
    log_offset_lookup,
    log_producer_state,
    log_retention,
    log_segment_deletion,
    log_truncation,
)
from moldau.storage.append_info import AppendInfo
from moldau.storage.checkpoint_file import fsync_dir
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError, UnexpectedAppendOffsetError
from moldau.storage.fetch_data_info import FetchDataInfo
from moldau.storage.leader_epoch_file_cache import LEADER_EPOCH_CHECKPOINT_FILENAME, LeaderEpochFileCache
from moldau.storage.log_dir_failure_channel import LogDirFailureChannel
from moldau.storage.log_loader import LogLoader
from moldau.storage.log_offset_lookup import (
    EARLIEST_LOCAL_TIMESTAMP,
    EARLIEST_PENDING_UPLOAD_TIMESTAMP,
    EARLIEST_TIMESTAMP,
    LATEST_TIERED_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
)
from moldau.storage.log_validator import PRODUCER, validate_records, validate_replica_batches
from moldau.storage.producer_state_entry import ProducerStateEntry
from moldau.storage.producer_state_manager import AppendOrigin, ProducerStateManager, control_marker
from moldau.storage.scheduler import Scheduler, shared_scheduler
from moldau.storage.segment import LogSegment, log_file, offset_index_file, time_index_file
from moldau.storage.transaction_index import AbortedTxn

log = logging.getLogger(__name__)


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
    """One partition's log; open it with :meth:`Log.open`.

    The core (open, append, read, roll, flush, close) is here; the other concerns are functions taking
    the Log, one module each, which the methods below call: producer state (``log_producer_state``),
    ListOffsets and OffsetForLeaderEpoch lookups (``log_offset_lookup``), truncation (``log_truncation``),
    retention (``log_retention``) and segment removal and compaction swaps (``log_segment_deletion``).
    """

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
        failure_channel: LogDirFailureChannel | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.dir = dir
        self.topic, self.partition = parse_topic_partition_name(dir.name)
        # The log manager's channel, shared by every log of the broker; a private one otherwise.
        self.failure_channel = failure_channel or LogDirFailureChannel()
        self._log_dir = str(dir.parent)
        self._config = config
        self._time_ms = time_ms
        self._scheduler: Scheduler = scheduler or shared_scheduler()
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
        log_producer_state.rebuild_producer_state(self)

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
        failure_channel: LogDirFailureChannel | None = None,
        scheduler: Scheduler | None = None,
    ) -> Log:
        """Open (or create) the log in ``dir``, recovering segments after ``recovery_point`` unless the
        broker shut down cleanly. ``now_ms`` is the clock (milliseconds) for segment ages; wall clock if None.
        ``failure_channel`` learns of I/O errors, which take the log dir offline for appends. ``scheduler``
        runs the flush of each rolled segment (the process-wide one if None).
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
        if loader.index_write_error is not None:  # a full disk: serve reads from memory, refuse appends
            failure_channel = failure_channel or LogDirFailureChannel()
            failure_channel.maybe_add_offline_log_dir(dir.parent, f"recovering {dir.name}", loader.index_write_error)
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
            failure_channel=failure_channel,
            scheduler=scheduler,
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
        """Kafka's ``maybeHandleIOException``: an I/O error takes the log dir offline (logged once, by the
        channel) and becomes a :class:`KafkaStorageError`."""
        try:
            yield
        except OSError as exc:
            self.failure_channel.maybe_add_offline_log_dir(self._log_dir, f"{action} {self.dir.name}", exc)
            raise KafkaStorageError(
                f"I/O error while {action} for {self.dir.name} in {self.dir.parent}: {exc}"
            ) from exc

    @property
    def offline(self) -> bool:
        """Whether an I/O error took this log's dir offline: appends are refused until a restart."""
        return self.failure_channel.is_offline(self._log_dir)

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaStorageError(f"log {self.dir.name} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.failure_channel.is_offline(self._log_dir):
            raise KafkaStorageError(
                f"log dir {self._log_dir} of {self.dir.name} is offline after an I/O error; "
                "it takes no appends until the broker restarts"
            )

    # -- append --------------------------------------------------------------------------------------------

    def append_as_leader(
        self,
        records: bytes | bytearray | memoryview,
        *,
        leader_epoch: int,
        now_ms: int,
        in_place: bool = False,
        compression_type: str = PRODUCER,
    ) -> AppendInfo:
        """Validate produced batches (``log_validator``, once; re-encoded if the topic's
        ``compression.type`` is another codec), give them offsets from the log end, and write them.
        Never fsyncs.

        Raises :class:`InvalidRecordError` (with the Kafka error code) for a batch Kafka would refuse.
        """
        config = self._config
        validated = validate_records(records, config, now_ms, compression_type=compression_type,
                                     topic_partition=self.dir.name)
        batches = validated.batches
        valid_bytes = validated.valid_bytes
        view = memoryview(validated.records)[:valid_bytes]
        # The broker hands over a view of a request frame that nobody reads again (`in_place`): patch
        # offsets into it rather than copying the batch once more. Anything else is copied first
        # (a re-encoded batch is our own buffer already).
        buf = view if (in_place or validated.recompressed) and not view.readonly else bytearray(view)
        self._check_fits_segment(valid_bytes)
        log_append_time = now_ms if config.log_append_time else None
        with self._lock, self._storage_errors("appending"):
            self._check_writable()
            first_offset = offset = self._log_end_offset
            producer_appends = None
            if any(header.producer_id >= 0 for _, header in batches):
                producer_appends, duplicate = log_producer_state.analyze_producer_state(
                    self, batches, first_offset
                )
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
        headers = validate_replica_batches(records)
        if not headers:
            return AppendInfo(-1, -1, -1, self._log_start_offset, 0)
        valid_bytes = sum(h.size_in_bytes for _, h in headers)
        self._check_fits_segment(valid_bytes)
        with self._lock, self._storage_errors("appending as follower"):
            self._check_writable()
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
            self._check_writable()
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
                log_producer_state.record_completed(self, [completed])
            return AppendInfo(first_offset=offset, last_offset=last, log_append_time=-1,
                              log_start_offset=self._log_start_offset, num_messages=header.records_count,
                              max_timestamp=header.max_timestamp, valid_bytes=len(buf))

    # -- producer state (log_producer_state) ----------------------------------------------------------------

    @property
    def last_stable_offset(self) -> int:
        """KIP-98: read_committed consumers read below the first open transaction, never past the HW."""
        return log_producer_state.last_stable_offset(self)

    def collect_aborted_transactions(self, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_bound_offset) (Kafka's
        ``collectAbortedTransactions``)."""
        return log_producer_state.collect_aborted_transactions(self, start_offset, upper_bound_offset)

    def active_producers(self) -> list[ProducerStateEntry]:
        """Copies of the producers this partition knows (DescribeProducers)."""
        return log_producer_state.active_producers(self)

    def remove_expired_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle longer than ``producer.id.expiration.ms``; returns how many."""
        return log_producer_state.remove_expired_producers(self, now_ms, expiration_ms)

    # -- write and roll ------------------------------------------------------------------------------------

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
            self._check_writable()
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
        # Kafka's UnifiedLog.roll: scheduleOnce("flush-log", flushUptoOffsetExclusive(newSegment.baseOffset)).
        # The rolled segment is complete, so fsync it now (off the appending thread) and move the recovery
        # point to the new segment: a crash then recovers only the active segment, not every segment since
        # the last time-based flush (which by default never comes).
        self._scheduler.schedule_once("flush-log", lambda: self._flush_rolled(new_offset))
        return segment

    def _flush_rolled(self, new_segment_offset: int) -> None:
        try:
            self.flush(new_segment_offset)
        except KafkaStorageError:
            pass  # the failure channel took the dir offline and logged it once

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

    # -- offset lookups (log_offset_lookup) -----------------------------------------------------------------

    def fetch_offset_by_timestamp(self, timestamp: int) -> tuple[int, int, int] | None:
        """ListOffsets: ``(offset, timestamp, leader_epoch)`` for ``timestamp``, or None; see
        :func:`moldau.storage.log_offset_lookup.fetch_offset_by_timestamp` for the special timestamps."""
        return log_offset_lookup.fetch_offset_by_timestamp(self, timestamp)

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int] | None:
        """OffsetForLeaderEpoch: ``(end_offset, epoch)`` (Kafka's ``OffsetAndEpoch``), None if unknown."""
        return log_offset_lookup.end_offset_for_epoch(self, leader_epoch)

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

    # -- truncation, retention and compaction (log_truncation, log_retention, log_segment_deletion) ---------

    def truncate_to(self, target_offset: int) -> bool:
        """Remove every record at or after ``target_offset`` (a follower truncating to its leader).
        Returns whether anything was removed."""
        return log_truncation.truncate_to(self, target_offset)

    def truncate_fully_and_start_at(self, new_offset: int, log_start_offset: int | None = None) -> None:
        """Delete all data and continue at ``new_offset`` (a follower far behind a leader's start)."""
        log_truncation.truncate_fully_and_start_at(self, new_offset, log_start_offset)

    def maybe_increment_log_start_offset(self, new_log_start_offset: int) -> bool:
        """Move the log start offset forward (DeleteRecords); it may not pass the high watermark.
        Segments wholly below it are removed by the next :meth:`delete_old_segments`."""
        return log_retention.maybe_increment_log_start_offset(self, new_log_start_offset)

    def delete_old_segments(self, now_ms: int) -> int:
        """Retention (Kafka's ``deleteOldSegments``): delete segments below the log start offset and, for
        ``cleanup.policy=delete``, beyond ``retention.bytes`` or ``retention.ms``. Returns how many; see
        :func:`moldau.storage.log_retention.delete_old_segments`."""
        return log_retention.delete_old_segments(self, now_ms)

    def replace_segments(
        self, new_segment: LogSegment, old_segments: list[LogSegment], old_sizes: list[int]
    ) -> bool:
        """Compaction (Kafka's ``replaceSegments``): swap ``new_segment`` in for ``old_segments``,
        crash-safe; False if the log changed under the cleaner. See
        :func:`moldau.storage.log_segment_deletion.replace_segments`."""
        return log_segment_deletion.replace_segments(self, new_segment, old_segments, old_sizes)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the files (no fsync: the log manager flushes before a clean shutdown)."""
        with self._flush_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            if not self.offline:  # a failed dir gets no new files; its next open recovers producer state
                log_producer_state.snapshot_producer_state_on_close(self)
            for segment in self._segments:
                try:
                    segment.close()
                except OSError as exc:  # the last time index entry; the next open rebuilds what is missing
                    self.failure_channel.maybe_add_offline_log_dir(self._log_dir, f"closing {self.dir.name}", exc)
        log_segment_deletion.reap_deleted_segments(self, 0, force=True)

    def delete(self) -> None:
        """Close the log and remove its directory."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


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

"""The log of one partition (Kafka's ``UnifiedLog``) on top of its :class:`~moldau.storage.local_log.LocalLog`
(segments, log end offset, recovery point): a directory ``<topic>-<partition>`` of segments, the leader
epoch checkpoint, and the offsets that describe them:

- ``log_start_offset``: the first offset a client may read (moved by retention and DeleteRecords);
- ``log_end_offset``: the offset the next appended record gets;
- ``high_watermark``: the offset up to which records are committed (consumers read below it);
- ``recovery_point``: everything below it has been fsynced; a restart after a crash recovers from here.

This layer owns the log start offset, the high watermark, the last stable offset, the producer state and
the leader epochs. Threading: appends, reads and offset updates run on the broker's event loop and never
fsync; :meth:`Log.flush` runs on a worker thread. Changes take :attr:`Log.lock` (the local log's, held for
microseconds); fsync happens outside it.

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
from collections.abc import Callable
from pathlib import Path

from moldau.clock import wall_clock_ms
from moldau.storage import log_append, log_offset_lookup, log_producer_state, log_retention
from moldau.storage.append_info import AppendInfo
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError
from moldau.storage.fetch_data_info import FetchDataInfo
from moldau.storage.leader_epoch_file_cache import LEADER_EPOCH_CHECKPOINT_FILENAME, LeaderEpochFileCache
from moldau.storage.local_log import LocalLog
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
from moldau.storage.log_validator import PRODUCER
from moldau.storage.producer_state_entry import ProducerStateEntry
from moldau.storage.producer_state_manager import ProducerStateManager
from moldau.storage.scheduler import Scheduler, shared_scheduler
from moldau.storage.segment import LogSegment
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


class Log:
    """One partition's log; open it with :meth:`Log.open`.

    The unified layer (appends, offsets, producer state, epochs, truncation, flush) is here, over
    :attr:`local` (segments, roll, read, segment removal and compaction swaps). Other concerns are
    functions over the public API, one module each: producer state (``log_producer_state``), ListOffsets
    and OffsetForLeaderEpoch lookups (``log_offset_lookup``) and retention (``log_retention``).
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
        self._scheduler: Scheduler = scheduler or shared_scheduler()
        self.local = LocalLog(dir, config, segments, recovery_point=recovery_point, next_offset=next_offset,
                              time_ms=time_ms, failure_channel=self.failure_channel, on_roll=self._on_roll)
        self.lock = self.local.lock
        self._flush_lock = threading.Lock()
        self._log_start_offset = log_start_offset
        self._high_watermark = log_start_offset
        self.leader_epoch_cache = leader_epoch_cache
        self.producer_state = ProducerStateManager(dir)
        self.producer_state.remove_stray_snapshots(s.base_offset for s in self.local.segments)
        log_producer_state.rebuild_producer_state(self.producer_state, self.local, self._log_start_offset)

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
        time_ms = now_ms or wall_clock_ms
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
            f"log_end_offset={self.local.log_end_offset}, high_watermark={self._high_watermark})"
        )

    @property
    def config(self) -> LogConfig:
        return self.local.config

    def update_config(self, config: LogConfig) -> None:
        """Apply new topic configs (AlterConfigs); the active segment's index capacity follows."""
        self.local.update_config(config)

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        """The segments, oldest first (a snapshot)."""
        return self.local.segments

    @property
    def active_segment(self) -> LogSegment:
        return self.local.active_segment

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.local.log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def recovery_point(self) -> int:
        return self.local.recovery_point

    @property
    def size_in_bytes(self) -> int:
        return sum(segment.size for segment in self.local.segments)

    @property
    def unflushed_messages(self) -> int:
        """Offsets appended since the last flush (Kafka's ``unflushedMessages``)."""
        return self.local.log_end_offset - self.local.recovery_point

    @property
    def closed(self) -> bool:
        return self.local.closed

    @property
    def last_flush_ms(self) -> int:
        """When the last :meth:`flush` finished (Kafka's ``lastFlushTime``), by the log's clock."""
        return self.local.last_flush_ms

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped to [log_start_offset, log_end_offset]; returns the value set."""
        with self.lock:
            self._high_watermark = min(max(offset, self._log_start_offset), self.local.log_end_offset)
            return self._high_watermark

    def advance_log_start_offset(self, new_start: int) -> bool:
        """Kafka's ``updateLogStartOffset`` and what follows it, the one place DeleteRecords and segment
        deletion move the log start offset (call under :attr:`lock`). Returns whether it moved."""
        if new_start <= self._log_start_offset:
            return False
        self._log_start_offset = new_start
        self.local.raise_recovery_point(new_start)  # nothing below it is left to recover
        self.leader_epoch_cache.truncate_from_start(new_start)
        self.producer_state.on_log_start_offset_incremented(new_start)
        return True

    def should_flush(self, now_ms: int) -> bool:
        """The one flush policy, for the flusher thread: ``flush.messages`` or ``flush.ms`` reached, or a
        rolled segment not yet fsynced (its scheduled flush failed or has not run yet)."""
        if self.unflushed_messages <= 0:
            return False
        return (
            self.flush_messages_reached
            or now_ms - self.local.last_flush_ms >= self.local.config.flush_ms
            or self.local.recovery_point < self.local.active_segment.base_offset
        )

    @property
    def flush_messages_reached(self) -> bool:
        """``flush.messages`` unflushed offsets: the append's acknowledgement waits for the flush."""
        return self.unflushed_messages >= self.local.config.flush_messages

    @property
    def offline(self) -> bool:
        """Whether an I/O error took this log's dir offline: appends are refused until a restart."""
        return self.local.offline

    # -- append (log_append) -------------------------------------------------------------------------------

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
        Never fsyncs. ``in_place``: ``records`` views a request frame nobody reads again, so offsets may
        be patched into it.

        Raises :class:`InvalidRecordError` (with the Kafka error code) for a batch Kafka would refuse.
        """
        return log_append.append_as_leader(self, records, leader_epoch=leader_epoch, now_ms=now_ms,
                                           in_place=in_place, compression_type=compression_type)

    def append_as_follower(
        self, records: bytes | bytearray | memoryview, *, now_ms: int | None = None
    ) -> AppendInfo:
        """Append batches that already carry offsets and epochs (replication), after checking their
        structure and CRC. The first offset must be >= the log end offset (Kafka's
        UnexpectedAppendOffsetException otherwise); gaps are allowed (compacted leaders)."""
        return log_append.append_as_follower(self, records, now_ms=now_ms)

    def append_as_coordinator(self, batch: bytes, *, leader_epoch: int, now_ms: int) -> AppendInfo:
        """Append one batch a coordinator built: a transaction marker (ends the producer's open transaction
        and, for an abort, records it in the segment's ``.txnindex``), or transactional data without
        sequence numbers (TxnOffsetCommit records).

        Raises :class:`InvalidProducerEpochError` if a marker's epoch is older than the producer's.
        """
        return log_append.append_as_coordinator(self, batch, leader_epoch=leader_epoch, now_ms=now_ms)

    # -- producer state (log_producer_state) ----------------------------------------------------------------

    @property
    def last_stable_offset(self) -> int:
        """KIP-98: read_committed consumers read below the first open transaction, never past the HW."""
        return log_producer_state.last_stable_offset(self.producer_state, self._high_watermark)

    def collect_aborted_transactions(self, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_bound_offset) (Kafka's
        ``collectAbortedTransactions``)."""
        return log_producer_state.collect_aborted_transactions(self.local.segment_view, start_offset, upper_bound_offset)

    def active_producers(self) -> list[ProducerStateEntry]:
        """Copies of the producers this partition knows (DescribeProducers)."""
        with self.lock:
            return [entry.copy() for entry in self.producer_state.active_producers.values()]

    def remove_expired_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle longer than ``producer.id.expiration.ms``; returns how many."""
        with self.lock:
            return len(self.producer_state.remove_expired_producers(now_ms, expiration_ms))

    # -- roll --------------------------------------------------------------------------------------------

    def roll(self) -> LogSegment:
        """Start a new active segment at the log end offset."""
        with self.lock, self.local.storage_errors("rolling a segment"):
            self.local.check_writable()
            return self.local.roll(None)

    def _on_roll(self, new_offset: int) -> None:
        """The unified log's part of every roll (under :attr:`lock`, before the new segment exists)."""
        # Kafka snapshots the producer state at every new segment's base offset, so recovery starts there.
        self.producer_state.update_map_end_offset(new_offset)
        self.producer_state.take_snapshot()
        # Kafka's UnifiedLog.roll: scheduleOnce("flush-log", flushUptoOffsetExclusive(newSegment.baseOffset)).
        # The rolled segment is complete, so fsync it now (off the appending thread) and move the recovery
        # point to the new segment: a crash then recovers only the active segment, not every segment since
        # the last time-based flush (which by default never comes).
        self._scheduler.schedule_once("flush-log", lambda: self._flush_rolled(new_offset))

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
        return self.local.read(fetch_offset, max_bytes, max_offset, min_one_message, self._log_start_offset)

    # -- offset lookups (log_offset_lookup) -----------------------------------------------------------------

    def fetch_offset_by_timestamp(self, timestamp: int) -> tuple[int, int, int] | None:
        """ListOffsets: ``(offset, timestamp, leader_epoch)`` for ``timestamp``, or None; see
        :func:`moldau.storage.log_offset_lookup.fetch_offset_by_timestamp` for the special timestamps."""
        return log_offset_lookup.fetch_offset_by_timestamp(
            self.local, self.leader_epoch_cache, self._log_start_offset, timestamp
        )

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int] | None:
        """OffsetForLeaderEpoch: ``(end_offset, epoch)`` (Kafka's ``OffsetAndEpoch``), None if unknown."""
        return log_offset_lookup.end_offset_for_epoch(self.local, self.leader_epoch_cache, leader_epoch)

    # -- flush ---------------------------------------------------------------------------------------------

    def flush(self, up_to_offset: int | None = None) -> None:
        """fsync the segments holding offsets below ``up_to_offset`` (default: the log end offset) and make
        it the recovery point. Call from a worker thread: appends and reads go on meanwhile."""
        local = self.local
        with self._flush_lock:
            with self.lock:
                if local.closed:
                    return
                end = local.log_end_offset
                offset = end if up_to_offset is None else min(up_to_offset, end)
                recovery_point, truncations = local.recovery_point, local.truncations
                if offset <= recovery_point:
                    return
                snapshots = self.producer_state.unflushed_snapshots(offset)
            with local.storage_errors("flushing"):
                local.flush_segments(recovery_point, offset)
                self.leader_epoch_cache.flush()
                ProducerStateManager.flush_snapshots(snapshots)
            local.mark_flushed(offset, truncations)

    # -- truncation (Kafka's UnifiedLog.truncateTo over LocalLog.truncateTo), retention, compaction -----------

    def truncate_to(self, target_offset: int) -> bool:
        """Remove every record at or after ``target_offset`` (a follower truncating to its leader).
        Returns whether anything was removed. A flush that straddles it does not move the recovery point."""
        if target_offset < 0:
            raise ValueError(f"cannot truncate {self.dir.name} to a negative offset ({target_offset})")
        with self.lock, self.local.storage_errors("truncating"):
            end = self.local.log_end_offset
            if target_offset >= end:
                self.leader_epoch_cache.truncate_from_end(end)
                return False
            log.info("log.truncate_to topic_partition=%s offset=%d", self.dir.name, target_offset)
            if self.local.segments[0].base_offset > target_offset:
                self._truncate_fully_and_start_at(target_offset, None)
                return True
            self.local.truncate_to(target_offset)
            self.leader_epoch_cache.truncate_from_end(target_offset)
            self._log_start_offset = min(target_offset, self._log_start_offset)
            self._high_watermark = min(self._high_watermark, target_offset)
            log_producer_state.rebuild_producer_state(self.producer_state, self.local, self._log_start_offset)
            return True

    def truncate_fully_and_start_at(self, new_offset: int, log_start_offset: int | None = None) -> None:
        """Delete all data and continue at ``new_offset`` (a follower far behind a leader's start)."""
        with self.lock, self.local.storage_errors("truncating fully"):
            self._truncate_fully_and_start_at(new_offset, log_start_offset)

    def _truncate_fully_and_start_at(self, new_offset: int, log_start_offset: int | None) -> None:
        self.local.truncate_fully_and_start_at(new_offset)
        self.leader_epoch_cache.clear_and_flush()
        self._log_start_offset = new_offset if log_start_offset is None else log_start_offset
        self._high_watermark = new_offset
        self.producer_state.truncate_fully_and_start_at(new_offset)

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
        crash-safe; False if the log changed under the cleaner. See :meth:`LocalLog.replace_segments`."""
        return self.local.replace_segments(new_segment, old_segments, old_sizes)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the files (no fsync: the log manager flushes before a clean shutdown)."""
        with self._flush_lock, self.lock:
            if self.local.closed:
                return
            if not self.offline:  # a failed dir gets no new files; its next open recovers producer state
                log_producer_state.snapshot_producer_state_on_close(self.producer_state, self.local)
            self.local.close()
        self.local.reap_deleted_segments(0, force=True)

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

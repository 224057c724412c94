"""Which compacted log to clean next, and how far each log has been cleaned (Kafka's ``LogCleanerManager``).

Each log directory has a ``cleaner-offset-checkpoint`` (Kafka's format: ``topic partition offset`` lines
in a :class:`CheckpointFile`) holding, per compacted partition, the first dirty offset: everything below
it was cleaned. A log is cleanable when its dirty bytes are more than ``min.cleanable.dirty.ratio`` of
it, or when a dirty record is older than ``max.compaction.lag.ms``; the filthiest log goes first.

>>> import tempfile, pathlib
>>> from moldau.storage.config import LogConfig
>>> from moldau.storage.log import Log
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> lg = Log.open(d / "users-0", LogConfig(cleanup_policy="compact"))
>>> manager = LogCleanerManager([d], lambda: [lg])
>>> manager.grab_filthiest_compacted_log(now_ms=0) is None  # empty log: nothing to clean
True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moldau.storage.checkpoint_file import CheckpointFile, CorruptCheckpointError
from moldau.storage.log import Log
from moldau.storage.segment import LogSegment

log = logging.getLogger(__name__)

CLEANER_OFFSET_CHECKPOINT_FILE = "cleaner-offset-checkpoint"

TopicPartition = tuple[str, int]


@dataclass(slots=True, frozen=True)
class OffsetsToClean:
    first_dirty_offset: int
    first_uncleanable_dirty_offset: int
    force_update_checkpoint: bool = False


def _segments_in_range(log_: Log, start: int, end: int) -> list[LogSegment]:
    """Kafka's ``logSegments(from, to)``: segments holding offsets in [start, end)."""
    segments = log_.segments
    out = []
    for i, segment in enumerate(segments):
        upper = segments[i + 1].base_offset if i + 1 < len(segments) else None
        if segment.base_offset >= end:
            break
        if upper is None or upper > start:
            out.append(segment)
    return out


def non_active_segments_from(log_: Log, start: int) -> list[LogSegment]:
    return _segments_in_range(log_, start, log_.active_segment.base_offset)


def cleanable_offsets(log_: Log, last_clean_offset: int | None, now_ms: int) -> OffsetsToClean:
    """Kafka's ``cleanableOffsets``: the first dirty offset (reset to the log start if the checkpoint is
    out of range) and the first offset that may not be cleaned yet: the active segment, the high
    watermark (our last stable offset: no transactions yet) and the first segment younger than
    ``min.compaction.lag.ms``."""
    log_start, log_end = log_.log_start_offset, log_.log_end_offset
    checkpoint = log_start if last_clean_offset is None else last_clean_offset
    force = False
    if checkpoint < log_start or checkpoint > log_end:
        checkpoint, force = log_start, last_clean_offset is not None
    candidates = [log_.high_watermark, log_.active_segment.base_offset]
    min_lag = max(log_.config.min_compaction_lag_ms, 0)
    if min_lag > 0:
        for segment in non_active_segments_from(log_, checkpoint):
            if segment.largest_timestamp > now_ms - min_lag:
                candidates.append(segment.base_offset)
                break
    return OffsetsToClean(checkpoint, max(checkpoint, min(candidates)), force)


def max_compaction_delay(log_: Log, first_dirty_offset: int, now_ms: int) -> int:
    """How long past ``max.compaction.lag.ms`` the oldest dirty record is (0: not overdue)."""
    max_lag = max(log_.config.max_compaction_lag_ms, 0)
    clean_until = now_ms - max_lag
    first_timestamps = [
        t for s in non_active_segments_from(log_, first_dirty_offset) if (t := _first_batch_timestamp(s)) > 0
    ]
    earliest = min(first_timestamps, default=None)
    return clean_until - earliest if earliest is not None and earliest < clean_until else 0


def _first_batch_timestamp(segment: LogSegment) -> int:
    """The first batch's max timestamp (Kafka's ``getFirstBatchTimestamp``); -1 when there is none."""
    timestamp = segment.first_batch_timestamp()
    return -1 if timestamp is None else timestamp


def calculate_cleanable_bytes(log_: Log, first_dirty_offset: int, uncleanable_offset: int) -> tuple[int, int]:
    """``(first_uncleanable_offset, cleanable_bytes)``: the uncleanable offset rounded down to its
    segment's base offset, and the bytes of the segments from the first dirty one up to it."""
    later = non_active_segments_from(log_, uncleanable_offset)
    first_uncleanable = later[0].base_offset if later else log_.active_segment.base_offset
    cleanable = _segments_in_range(log_, min(first_dirty_offset, first_uncleanable), first_uncleanable)
    return first_uncleanable, sum(s.size for s in cleanable)


@dataclass(slots=True)
class LogToClean:
    """A compacted log and its cleanable section (Kafka's ``LogToClean``); ordered by dirty ratio."""

    topic_partition: TopicPartition
    log: Log
    first_dirty_offset: int
    uncleanable_offset: int
    need_compaction_now: bool = False
    clean_bytes: int = field(init=False)
    first_uncleanable_offset: int = field(init=False)
    cleanable_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.clean_bytes = sum(s.size for s in _segments_in_range(self.log, -1, self.first_dirty_offset))
        self.first_uncleanable_offset, self.cleanable_bytes = calculate_cleanable_bytes(
            self.log, self.first_dirty_offset, self.uncleanable_offset
        )

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        total = self.total_bytes
        return self.cleanable_bytes / total if total else 0.0


class LogCleanerManager:
    """Picks logs for the cleaner threads and keeps the cleaner checkpoints. Thread-safe."""

    def __init__(self, log_dirs: list[Path], logs: Callable[[], list[Log]]) -> None:
        self.log_dirs = [Path(d) for d in log_dirs]
        self._logs = logs
        self._checkpoints = {d: CheckpointFile(d / CLEANER_OFFSET_CHECKPOINT_FILE, 3) for d in self.log_dirs}
        self._lock = threading.Lock()
        self._in_progress: set[TopicPartition] = set()
        self._uncleanable: set[TopicPartition] = set()  # Kafka's uncleanablePartitions: corrupt data
        self.dirtiest_log_cleanable_ratio = 0.0

    # -- checkpoints ---------------------------------------------------------------------------------------

    def _read_checkpoint(self, log_dir: Path) -> dict[TopicPartition, int]:
        checkpoint = self._checkpoints.get(log_dir)
        if checkpoint is None:
            return {}
        try:
            entries = checkpoint.read()
        except (CorruptCheckpointError, ValueError) as exc:
            log.warning("log_cleaner_manager.checkpoint_ignored path=%s error=%s", checkpoint.path, exc)
            return {}
        return {(topic, int(partition)): int(offset) for topic, partition, offset in entries}

    def all_cleaner_checkpoints(self) -> dict[TopicPartition, int]:
        with self._lock:
            result: dict[TopicPartition, int] = {}
            for log_dir in self.log_dirs:
                result.update(self._read_checkpoint(log_dir))
            return result

    def update_checkpoint(self, log_: Log, offset: int | None) -> None:
        """Set (or with None remove) the first dirty offset of ``log_``; entries of gone logs are dropped."""
        log_dir = log_.dir.parent
        with self._lock:
            checkpoint = self._checkpoints.get(log_dir)
            if checkpoint is None:
                return
            live = {(lg.topic, lg.partition) for lg in self._logs()}
            offsets = {tp: o for tp, o in self._read_checkpoint(log_dir).items() if tp in live}
            tp = (log_.topic, log_.partition)
            if offset is None:
                offsets.pop(tp, None)
            else:
                offsets[tp] = offset
            checkpoint.write((t, p, o) for (t, p), o in sorted(offsets.items()))

    # -- choosing ------------------------------------------------------------------------------------------

    def grab_filthiest_compacted_log(self, now_ms: int) -> LogToClean | None:
        """The compacted log with the largest dirty ratio above its ``min.cleanable.dirty.ratio`` (or
        overdue by ``max.compaction.lag.ms``), marked in progress; None if no log needs cleaning."""
        last_clean = self.all_cleaner_checkpoints()
        dirty: list[LogToClean] = []
        with self._lock:
            for log_ in self._logs():
                tp = (log_.topic, log_.partition)
                if not log_.config.compact or tp in self._in_progress or tp in self._uncleanable or log_.closed:
                    continue
                offsets = cleanable_offsets(log_, last_clean.get(tp), now_ms)
                if offsets.force_update_checkpoint:
                    log.warning(
                        "log_cleaner_manager.reset_checkpoint topic_partition=%s-%d offset=%d",
                        log_.topic, log_.partition, offsets.first_dirty_offset,
                    )
                delay = max_compaction_delay(log_, offsets.first_dirty_offset, now_ms)
                ltc = LogToClean(
                    tp, log_, offsets.first_dirty_offset, offsets.first_uncleanable_dirty_offset, delay > 0
                )
                if ltc.total_bytes > 0:
                    dirty.append(ltc)
            self.dirtiest_log_cleanable_ratio = max((ltc.cleanable_ratio for ltc in dirty), default=0.0)
            cleanable = [
                ltc
                for ltc in dirty
                if (ltc.need_compaction_now and ltc.cleanable_bytes > 0)
                or ltc.cleanable_ratio > ltc.log.config.min_cleanable_dirty_ratio
            ]
            if not cleanable:
                return None
            filthiest = max(cleanable, key=lambda ltc: ltc.cleanable_ratio)
            self._in_progress.add(filthiest.topic_partition)
            return filthiest

    def done_cleaning(self, log_: Log, end_offset: int | None) -> None:
        """Release the log; with ``end_offset`` the clean succeeded and the checkpoint moves there."""
        try:
            if end_offset is not None and not log_.closed:
                self.update_checkpoint(log_, end_offset)
        finally:
            with self._lock:
                self._in_progress.discard((log_.topic, log_.partition))

    def mark_uncleanable(self, log_: Log) -> None:
        """Stop cleaning a log whose data the cleaner cannot read (until the broker restarts)."""
        with self._lock:
            self._uncleanable.add((log_.topic, log_.partition))

    def is_in_progress(self, topic: str, partition: int) -> bool:
        with self._lock:
            return (topic, partition) in self._in_progress

"""Retention of a partition's log (Kafka's ``UnifiedLog.deleteOldSegments`` and
``maybeIncrementLogStartOffset``): moving the log start offset forward and deleting the segments that fall
below it, or beyond ``retention.bytes`` / ``retention.ms``. The log manager's retention pass
(``LogManager.cleanup_logs``) and DeleteRecords call these; every change runs under ``log.lock``.

They need the unified log's offsets and the local log's segments: :class:`RetainedLog` names exactly what
(the :class:`~moldau.storage.log.Log` satisfies it), so this module does not import the Log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from moldau.storage.config import LogConfig
from moldau.storage.errors import OffsetOutOfRangeError
from moldau.storage.local_log import LocalLog
from moldau.storage.producer_state_manager import ProducerStateManager
from moldau.storage.segment import LogSegment


class RetainedLog(Protocol):
    """The parts of the unified log that retention reads and moves."""

    dir: Path
    local: LocalLog
    lock: threading.RLock
    producer_state: ProducerStateManager

    @property
    def config(self) -> LogConfig: ...

    @property
    def segments(self) -> tuple[LogSegment, ...]: ...

    @property
    def log_start_offset(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    @property
    def high_watermark(self) -> int: ...

    @property
    def size_in_bytes(self) -> int: ...

    def advance_log_start_offset(self, new_start: int) -> bool: ...


logger = logging.getLogger(__name__)


def maybe_increment_log_start_offset(log: RetainedLog, new_log_start_offset: int) -> bool:
    """Move the log start offset forward (DeleteRecords); it may not pass the high watermark.
    Segments wholly below it are removed by the next :func:`delete_old_segments`."""
    with log.lock:
        if new_log_start_offset > log.high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot increment the log start offset of {log.dir.name} to {new_log_start_offset}: it is "
                f"beyond the high watermark {log.high_watermark}"
            )
        if not log.advance_log_start_offset(new_log_start_offset):
            return False
        logger.info("log.log_start_offset topic_partition=%s offset=%d", log.dir.name, new_log_start_offset)
        return True


def delete_old_segments(log: RetainedLog, now_ms: int) -> int:
    """Retention (Kafka's ``deleteOldSegments``): delete segments wholly below the log start offset,
    then, for ``cleanup.policy=delete``, the oldest segments beyond ``retention.bytes`` and those whose
    largest timestamp is older than ``retention.ms``. Returns the number of segments deleted.

    Only segments wholly below the high watermark go. As in Kafka, the active segment goes too once
    every record in it is expired and committed: a new empty segment is rolled first. Deleted files are
    renamed ``*.deleted`` and removed ``file.delete.delay.ms`` later (by this function or :meth:`Log.close`).
    """
    with log.lock, log.local.storage_errors("deleting old segments"):
        log.local.check_open()
        deleted = _delete_matching(
            log, lambda s, nxt: nxt is not None and nxt.base_offset <= log.log_start_offset, now_ms
        )
        if log.config.delete:
            deleted += _delete_retention_size_breached(log, now_ms)
            deleted += _delete_retention_ms_breached(log, now_ms)
    log.local.reap_deleted_segments(now_ms, force=False)
    return deleted


def _delete_retention_ms_breached(log: RetainedLog, now_ms: int) -> int:
    retention_ms = log.config.retention_ms
    if retention_ms < 0:
        return 0
    return _delete_matching(log, lambda s, nxt: now_ms - s.largest_timestamp > retention_ms, now_ms)


def _delete_retention_size_breached(log: RetainedLog, now_ms: int) -> int:
    retention_bytes = log.config.retention_bytes
    size = log.size_in_bytes
    if retention_bytes < 0 or size < retention_bytes:
        return 0
    excess = size - retention_bytes

    def breached(segment: LogSegment, _next: LogSegment | None) -> bool:
        nonlocal excess
        if excess - segment.size >= 0:
            excess -= segment.size
            return True
        return False

    return _delete_matching(log, breached, now_ms)


def _delete_matching(
    log: RetainedLog, predicate: Callable[[LogSegment, LogSegment | None], bool], now_ms: int
) -> int:
    segments = log.segments
    deletable: list[LogSegment] = []
    for i, segment in enumerate(segments):
        upcoming = segments[i + 1] if i + 1 < len(segments) else None
        upper_bound = upcoming.base_offset if upcoming is not None else log.log_end_offset
        last_and_empty = upcoming is None and segment.size == 0
        if log.high_watermark >= upper_bound and not last_and_empty and predicate(segment, upcoming):
            deletable.append(segment)
        else:
            break
    if not deletable:
        return 0
    if len(deletable) == len(segments):
        log.local.roll(None)  # a log always keeps one segment
    log.advance_log_start_offset(log.segments[len(deletable)].base_offset)
    log.local.remove_and_delete_segments(deletable, now_ms=now_ms)
    for segment in deletable:
        log.producer_state.delete_snapshot(segment.base_offset)
    logger.info(
        "log.delete_segments topic_partition=%s segments=%s log_start_offset=%d",
        log.dir.name,
        [s.base_offset for s in deletable],
        log.log_start_offset,
    )
    return len(deletable)

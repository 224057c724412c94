"""Retention of a partition's :class:`~moldau.storage.log.Log` (Kafka's ``UnifiedLog.deleteOldSegments``
and ``maybeIncrementLogStartOffset``): moving the log start offset forward and deleting the segments
that fall below it, or beyond ``retention.bytes`` / ``retention.ms``. The log manager's retention pass
(``LogManager.cleanup_logs``) and DeleteRecords call these; every change runs under ``log._lock``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from moldau.storage.errors import OffsetOutOfRangeError
from moldau.storage.log_segment_deletion import reap_deleted_segments, remove_and_delete_segments
from moldau.storage.segment import LogSegment

if TYPE_CHECKING:
    from moldau.storage.log import Log

logger = logging.getLogger(__name__)


def maybe_increment_log_start_offset(log: Log, new_log_start_offset: int) -> bool:
    """Move the log start offset forward (DeleteRecords); it may not pass the high watermark.
    Segments wholly below it are removed by the next :func:`delete_old_segments`."""
    with log._lock:
        if new_log_start_offset > log._high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot increment the log start offset of {log.dir.name} to {new_log_start_offset}: it is "
                f"beyond the high watermark {log._high_watermark}"
            )
        if not _advance_log_start_offset(log, new_log_start_offset):
            return False
        logger.info("log.log_start_offset topic_partition=%s offset=%d", log.dir.name, new_log_start_offset)
        return True


def _advance_log_start_offset(log: Log, new_start: int) -> bool:
    """Kafka's ``updateLogStartOffset`` and what follows it, the one place both DeleteRecords and
    segment deletion move the log start offset (under ``log._lock``). Returns whether it moved."""
    if new_start <= log._log_start_offset:
        return False
    log._log_start_offset = new_start
    log._recovery_point = max(log._recovery_point, new_start)  # nothing below it is left to recover
    log.leader_epoch_cache.truncate_from_start(new_start)
    log.producer_state.on_log_start_offset_incremented(new_start)
    return True


def delete_old_segments(log: Log, now_ms: int) -> int:
    """Retention (Kafka's ``deleteOldSegments``): delete segments wholly below the log start offset,
    then, for ``cleanup.policy=delete``, the oldest segments beyond ``retention.bytes`` and those whose
    largest timestamp is older than ``retention.ms``. Returns the number of segments deleted.

    Only segments wholly below the high watermark go. As in Kafka, the active segment goes too once
    every record in it is expired and committed: a new empty segment is rolled first. Deleted files are
    renamed ``*.deleted`` and removed ``file.delete.delay.ms`` later (by this function or :meth:`Log.close`).
    """
    with log._lock, log._storage_errors("deleting old segments"):
        log._check_open()
        deleted = _delete_matching(
            log, lambda s, nxt: nxt is not None and nxt.base_offset <= log._log_start_offset, now_ms
        )
        if log._config.delete:
            deleted += _delete_retention_size_breached(log, now_ms)
            deleted += _delete_retention_ms_breached(log, now_ms)
    reap_deleted_segments(log, now_ms, force=False)
    return deleted


def _delete_retention_ms_breached(log: Log, now_ms: int) -> int:
    retention_ms = log._config.retention_ms
    if retention_ms < 0:
        return 0
    return _delete_matching(log, lambda s, nxt: now_ms - s.largest_timestamp > retention_ms, now_ms)


def _delete_retention_size_breached(log: Log, now_ms: int) -> int:
    retention_bytes = log._config.retention_bytes
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
    log: Log, predicate: Callable[[LogSegment, LogSegment | None], bool], now_ms: int
) -> int:
    segments = log._segments
    deletable: list[LogSegment] = []
    for i, segment in enumerate(segments):
        upcoming = segments[i + 1] if i + 1 < len(segments) else None
        upper_bound = upcoming.base_offset if upcoming is not None else log._log_end_offset
        last_and_empty = upcoming is None and segment.size == 0
        if log._high_watermark >= upper_bound and not last_and_empty and predicate(segment, upcoming):
            deletable.append(segment)
        else:
            break
    if not deletable:
        return 0
    if len(deletable) == len(segments):
        log._roll(None)  # a log always keeps one segment
    _advance_log_start_offset(log, log._segments[len(deletable)].base_offset)
    remove_and_delete_segments(log, deletable, now_ms=now_ms)
    for segment in deletable:
        log.producer_state.delete_snapshot(segment.base_offset)
    logger.info(
        "log.delete_segments topic_partition=%s segments=%s log_start_offset=%d",
        log.dir.name,
        [s.base_offset for s in deletable],
        log._log_start_offset,
    )
    return len(deletable)

"""Truncation of a partition's :class:`~moldau.storage.log.Log` (Kafka's ``UnifiedLog.truncateTo`` and
``truncateFullyAndStartAt``): a follower dropping records its leader does not have, or starting over
at the leader's log start offset. Runs under ``log._lock``; bumps ``log._truncations`` so a flush
that straddles it does not move the recovery point.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from moldau.storage.log_producer_state import rebuild_producer_state
from moldau.storage.log_segment_deletion import remove_and_delete_segments
from moldau.storage.segment import LogSegment

if TYPE_CHECKING:
    from moldau.storage.log import Log

logger = logging.getLogger(__name__)


def truncate_to(log: Log, target_offset: int) -> bool:
    """Remove every record at or after ``target_offset`` (a follower truncating to its leader).
    Returns whether anything was removed."""
    if target_offset < 0:
        raise ValueError(f"cannot truncate {log.dir.name} to a negative offset ({target_offset})")
    with log._lock, log._storage_errors("truncating"):
        if target_offset >= log._log_end_offset:
            log.leader_epoch_cache.truncate_from_end(log._log_end_offset)
            return False
        logger.info("log.truncate_to topic_partition=%s offset=%d", log.dir.name, target_offset)
        log._truncations += 1
        if log._segments[0].base_offset > target_offset:
            _truncate_fully_and_start_at(log, target_offset, None)
            return True
        remove_and_delete_segments(log, [s for s in log._segments if s.base_offset > target_offset])
        log._segments[-1].truncate_to(target_offset)
        log._log_end_offset = target_offset
        log._recovery_point = min(log._recovery_point, target_offset)
        log.leader_epoch_cache.truncate_from_end(target_offset)
        log._log_start_offset = min(target_offset, log._log_start_offset)
        log._high_watermark = min(log._high_watermark, target_offset)
        rebuild_producer_state(log)
        return True


def truncate_fully_and_start_at(log: Log, new_offset: int, log_start_offset: int | None = None) -> None:
    """Delete all data and continue at ``new_offset`` (a follower far behind a leader's start)."""
    with log._lock, log._storage_errors("truncating fully"):
        _truncate_fully_and_start_at(log, new_offset, log_start_offset)


def _truncate_fully_and_start_at(log: Log, new_offset: int, log_start_offset: int | None) -> None:
    log._truncations += 1
    remove_and_delete_segments(log, list(log._segments), keep_one=False)
    log._set_segments([LogSegment(log.dir, new_offset, log._config, time_ms=log._time_ms)])
    log._log_end_offset = new_offset
    log._recovery_point = min(log._recovery_point, new_offset)
    log.leader_epoch_cache.clear_and_flush()
    log._log_start_offset = new_offset if log_start_offset is None else log_start_offset
    log._high_watermark = new_offset
    log.producer_state.truncate_fully_and_start_at(new_offset)

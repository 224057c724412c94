"""Taking segments out of a partition's :class:`~moldau.storage.log.Log` (Kafka's ``LocalLog``
``removeAndDeleteSegments``, ``replaceSegments`` and ``deleteSegmentFiles``), shared by retention,
truncation and compaction. Readers see the segment list change in one step; the files are renamed
``*.deleted`` and removed ``file.delete.delay.ms`` later, outside ``log._lock``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from moldau.storage.checkpoint_file import fsync_dir
from moldau.storage.segment import CLEANED_FILE_SUFFIX, DELETED_FILE_SUFFIX, SWAP_FILE_SUFFIX, LogSegment

if TYPE_CHECKING:
    from moldau.storage.log import Log

logger = logging.getLogger(__name__)


def remove_and_delete_segments(
    log: Log, segments: list[LogSegment], keep_one: bool = True, now_ms: int | None = None
) -> None:
    """Take segments out of the log now; their files go ``file.delete.delay.ms`` after ``now_ms``."""
    if not segments:
        return
    doomed = set(map(id, segments))
    remaining = [s for s in log._segments if id(s) not in doomed]
    if keep_one and not remaining:
        raise AssertionError("a log must keep at least one segment")
    log._set_segments(remaining)
    deadline = (log._time_ms() if now_ms is None else now_ms) + log._config.file_delete_delay_ms
    for segment in segments:
        segment.change_file_suffixes("", DELETED_FILE_SUFFIX)
        log._pending_deletes.append((deadline, segment))
    if log._config.file_delete_delay_ms <= 0:
        reap_deleted_segments(log, deadline, force=True)


def replace_segments(
    log: Log, new_segment: LogSegment, old_segments: list[LogSegment], old_sizes: list[int]
) -> bool:
    """Compaction (Kafka's ``replaceSegments``): put ``new_segment`` (files ``*.cleaned``, flushed) in
    place of ``old_segments`` in one step for readers.

    Crash-safe by file names: the new files become ``*.swap`` (a restart completes the swap, see
    :class:`LogLoader`), the old ones ``*.deleted`` (removed ``file.delete.delay.ms`` later, so fetches
    in flight keep reading them), then the swap files drop their suffix. Returns False, touching
    nothing, if the log changed under the cleaner: closed, or an old segment deleted or truncated
    (``old_sizes`` are their sizes when the cleaner read them).
    """
    with log._lock, log._storage_errors("replacing cleaned segments"):
        current = log._segments
        present = set(map(id, current))
        if (
            log._closed
            or not old_segments
            or any(id(s) not in present for s in old_segments)
            or any(s.size != size for s, size in zip(old_segments, old_sizes, strict=True))
            or old_segments[-1] is current[-1]
        ):
            return False
        new_segment.change_file_suffixes(CLEANED_FILE_SUFFIX, SWAP_FILE_SUFFIX)
        fsync_dir(log.dir)
        doomed = set(map(id, old_segments))
        log._set_segments([s for s in current if id(s) not in doomed] + [new_segment])
        deadline = log._time_ms() + log._config.file_delete_delay_ms
        for segment in old_segments:
            segment.change_file_suffixes("", DELETED_FILE_SUFFIX)
            log._pending_deletes.append((deadline, segment))
        new_segment.change_file_suffixes(SWAP_FILE_SUFFIX, "")
    if log._config.file_delete_delay_ms <= 0:
        reap_deleted_segments(log, deadline, force=False)
    return True


def reap_deleted_segments(log: Log, now_ms: int, *, force: bool) -> None:
    with log._lock:
        due = [(t, s) for t, s in log._pending_deletes if force or t <= now_ms]
        log._pending_deletes = [(t, s) for t, s in log._pending_deletes if not (force or t <= now_ms)]
    for _, segment in due:
        try:
            segment.delete()
        except OSError as exc:
            logger.warning("log.delete_segment_failed segment=%s error=%s", segment.log_path, exc)

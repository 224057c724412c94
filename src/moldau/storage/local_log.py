"""The local layer of a partition's log (Kafka's ``LocalLog``): the segments on disk, the log end offset
and the recovery point. It knows nothing of high watermarks, transactions or producers; the
:class:`~moldau.storage.log.Log` on top (Kafka's ``UnifiedLog``) does.

Threading: changes take :attr:`LocalLog.lock` (an RLock the unified log shares, held for microseconds);
the segment list is replaced, never mutated, so a read takes one consistent snapshot without locking.
fsyncs (:meth:`flush_segments`) run outside the lock, on a worker thread. Segments taken out of the log
(retention, truncation, compaction) are renamed ``*.deleted`` and removed ``file.delete.delay.ms`` later,
outside the lock (Kafka's ``removeAndDeleteSegments``, ``replaceSegments``, ``deleteSegmentFiles``).
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import InvalidRecordError
from moldau.storage.checkpoint_file import fsync_dir
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError
from moldau.storage.fetch_data_info import FetchDataInfo
from moldau.storage.log_dir_failure_channel import LogDirFailureChannel
from moldau.storage.segment import (
    CLEANED_FILE_SUFFIX,
    DELETED_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    LogSegment,
    log_file,
    offset_index_file,
    time_index_file,
)

log = logging.getLogger(__name__)

SegmentView = tuple[list[int], tuple[LogSegment, ...]]


class LocalLog:
    """Segments, log end offset and recovery point of one partition directory."""

    def __init__(
        self,
        dir: Path,
        config: LogConfig,
        segments: list[LogSegment],
        *,
        recovery_point: int,
        next_offset: int,
        time_ms: Callable[[], int],
        failure_channel: LogDirFailureChannel,
        on_roll: Callable[[int], None],
    ) -> None:
        self.dir = dir
        self.failure_channel = failure_channel
        self.lock = threading.RLock()
        self._log_dir = str(dir.parent)
        self._config = config
        self._time_ms = time_ms
        self._on_roll = on_roll  # the unified log's part of a roll: producer snapshot, scheduled flush
        self._view: SegmentView = ([], ())
        self._set_segments(segments)
        self._log_end_offset = next_offset
        self._recovery_point = recovery_point
        self._last_flush_ms = time_ms()
        self._pending_deletes: list[tuple[int, LogSegment]] = []
        self._truncations = 0  # a flush that straddles a truncation must not move the recovery point
        self._closed = False

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def config(self) -> LogConfig:
        return self._config

    def update_config(self, config: LogConfig) -> None:
        with self.lock:
            self._config = config
            self._view[1][-1].resize_indexes(config.segment_index_bytes)

    def now_ms(self) -> int:
        return self._time_ms()

    def _set_segments(self, segments: list[LogSegment] | tuple[LogSegment, ...]) -> None:
        ordered = tuple(sorted(segments, key=lambda s: s.base_offset))
        self._view = ([s.base_offset for s in ordered], ordered)

    @property
    def segment_view(self) -> SegmentView:
        """The segments' base offsets and the segments, oldest first: one consistent snapshot."""
        return self._view

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return self._view[1]

    @property
    def active_segment(self) -> LogSegment:
        return self._view[1][-1]

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    def raise_recovery_point(self, offset: int) -> None:
        """Nothing below a new log start offset is left to recover (under :attr:`lock`)."""
        self._recovery_point = max(self._recovery_point, offset)

    @property
    def truncations(self) -> int:
        return self._truncations

    @property
    def last_flush_ms(self) -> int:
        return self._last_flush_ms

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def offline(self) -> bool:
        return self.failure_channel.is_offline(self._log_dir)

    @contextmanager
    def storage_errors(self, action: str) -> Iterator[None]:
        """Kafka's ``maybeHandleIOException``: an I/O error takes the log dir offline (logged once, by the
        channel) and becomes a :class:`KafkaStorageError`."""
        try:
            yield
        except OSError as exc:
            self.failure_channel.maybe_add_offline_log_dir(self._log_dir, f"{action} {self.dir.name}", exc)
            raise KafkaStorageError(
                f"I/O error while {action} for {self.dir.name} in {self.dir.parent}: {exc}"
            ) from exc

    def check_open(self) -> None:
        if self._closed:
            raise KafkaStorageError(f"log {self.dir.name} is closed")

    def check_writable(self) -> None:
        self.check_open()
        if self.failure_channel.is_offline(self._log_dir):
            raise KafkaStorageError(
                f"log dir {self._log_dir} of {self.dir.name} is offline after an I/O error; "
                "it takes no appends until the broker restarts"
            )

    def check_fits_segment(self, size: int) -> None:
        if size > self._config.segment_bytes:
            raise InvalidRecordError(
                ErrorCode.RECORD_LIST_TOO_LARGE,
                f"message batch size is {size} bytes in an append to {self.dir.name}, which exceeds the "
                f"maximum configured segment size of {self._config.segment_bytes}",
            )

    # -- append and roll (under lock) ----------------------------------------------------------------------

    def append(
        self,
        data: bytes | bytearray | memoryview,
        first_offset: int,
        last_offset: int,
        max_timestamp: int,
        offset_of_max_timestamp: int,
        now_ms: int,
    ) -> None:
        segment = self._view[1][-1]
        if segment.should_roll(
            max_segment_ms=self._config.segment_ms,
            max_segment_bytes=self._config.segment_bytes,
            max_timestamp_in_messages=max_timestamp,
            max_offset_in_messages=last_offset,
            messages_size=len(data),
            now_ms=now_ms,
        ):
            segment = self.roll(first_offset)
        segment.append(last_offset, max_timestamp, offset_of_max_timestamp, data)
        self._log_end_offset = last_offset + 1  # published only after the bytes are in the file

    def roll(self, expected_next_offset: int | None) -> LogSegment:
        """Start a new active segment at the log end offset (or ``expected_next_offset`` if larger)."""
        new_offset = max(expected_next_offset or 0, self._log_end_offset)
        active = self._view[1][-1]
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
        self._on_roll(new_offset)
        segment = LogSegment(self.dir, new_offset, self._config, time_ms=self._time_ms)
        self._set_segments((*self._view[1], segment))
        log.info("log.roll topic_partition=%s new_segment=%d", self.dir.name, new_offset)
        return segment

    # -- read ----------------------------------------------------------------------------------------------

    def read(
        self, fetch_offset: int, max_bytes: int, max_offset: int | None, min_one_message: bool, log_start_offset: int
    ) -> FetchDataInfo:
        """See :meth:`moldau.storage.log.Log.read`; ``log_start_offset`` is the unified log's."""
        bases, segments = self._view
        log_end_offset = self._log_end_offset
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
        with self.storage_errors("reading"):
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

    # -- flush ---------------------------------------------------------------------------------------------

    def flush_segments(self, recovery_point: int, offset: int) -> None:
        """fsync the segments holding offsets in [``recovery_point``, ``offset``), and the directory if one
        of them is new since the recovery point (Kafka's ``LocalLog.flush``). Outside :attr:`lock`."""
        bases, segments = self._view
        first = max(bisect_right(bases, recovery_point) - 1, 0)
        to_flush = [s for s in segments[first:] if s.base_offset < offset]
        for segment in to_flush:
            try:
                segment.flush()
            except (OSError, ValueError):
                if segment in self._view[1]:
                    raise
                # deleted or truncated away while we were flushing: nothing to make durable
        if any(s.base_offset >= recovery_point for s in to_flush):
            fsync_dir(self.dir)

    def mark_flushed(self, offset: int, truncations: int) -> None:
        """Kafka's ``markFlushed``: the recovery point moves to ``offset`` unless a truncation came
        between the start of the flush (``truncations`` then) and now."""
        with self.lock:
            if truncations == self._truncations:
                self._recovery_point = max(self._recovery_point, offset)
            self._last_flush_ms = self._time_ms()

    # -- truncation (under lock) ---------------------------------------------------------------------------

    def truncate_to(self, target_offset: int) -> None:
        """Drop every record at or after ``target_offset`` (below the log end, at or after the first
        segment's base offset)."""
        self._truncations += 1
        self.remove_and_delete_segments([s for s in self._view[1] if s.base_offset > target_offset])
        self._view[1][-1].truncate_to(target_offset)
        self._log_end_offset = target_offset
        self._recovery_point = min(self._recovery_point, target_offset)

    def truncate_fully_and_start_at(self, new_offset: int) -> None:
        """Delete every segment and continue with an empty one at ``new_offset``."""
        self._truncations += 1
        self.remove_and_delete_segments(list(self._view[1]), keep_one=False)
        self._set_segments([LogSegment(self.dir, new_offset, self._config, time_ms=self._time_ms)])
        self._log_end_offset = new_offset
        self._recovery_point = min(self._recovery_point, new_offset)

    # -- removing segments ---------------------------------------------------------------------------------

    def remove_and_delete_segments(
        self, segments: list[LogSegment], keep_one: bool = True, now_ms: int | None = None
    ) -> None:
        """Take segments out of the log now (under :attr:`lock`); their files go ``file.delete.delay.ms``
        after ``now_ms``."""
        if not segments:
            return
        doomed = set(map(id, segments))
        remaining = [s for s in self._view[1] if id(s) not in doomed]
        if keep_one and not remaining:
            raise AssertionError("a log must keep at least one segment")
        self._set_segments(remaining)
        deadline = (self._time_ms() if now_ms is None else now_ms) + self._config.file_delete_delay_ms
        for segment in segments:
            segment.change_file_suffixes("", DELETED_FILE_SUFFIX)
            self._pending_deletes.append((deadline, segment))
        if self._config.file_delete_delay_ms <= 0:
            self.reap_deleted_segments(deadline, force=True)

    def replace_segments(self, new_segment: LogSegment, old_segments: list[LogSegment], old_sizes: list[int]) -> bool:
        """Compaction (Kafka's ``replaceSegments``): put ``new_segment`` (files ``*.cleaned``, flushed) in
        place of ``old_segments`` in one step for readers.

        Crash-safe by file names: the new files become ``*.swap`` (a restart completes the swap, see
        :class:`LogLoader`), the old ones ``*.deleted`` (removed ``file.delete.delay.ms`` later, so fetches
        in flight keep reading them), then the swap files drop their suffix. Returns False, touching
        nothing, if the log changed under the cleaner: closed, or an old segment deleted or truncated
        (``old_sizes`` are their sizes when the cleaner read them).
        """
        with self.lock, self.storage_errors("replacing cleaned segments"):
            current = self._view[1]
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
            self.reap_deleted_segments(deadline, force=False)
        return True

    def reap_deleted_segments(self, now_ms: int, *, force: bool) -> None:
        """Remove the files of segments taken out of the log whose delay has passed (all if ``force``)."""
        with self.lock:
            due = [(t, s) for t, s in self._pending_deletes if force or t <= now_ms]
            self._pending_deletes = [(t, s) for t, s in self._pending_deletes if not (force or t <= now_ms)]
        for _, segment in due:
            try:
                segment.delete()
            except OSError as exc:
                log.warning("log.delete_segment_failed segment=%s error=%s", segment.log_path, exc)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the segment files (under :attr:`lock`); pending deletions are reaped by the caller."""
        self._closed = True
        for segment in self._view[1]:
            try:
                segment.close()
            except OSError as exc:  # the last time index entry; the next open rebuilds what is missing
                self.failure_channel.maybe_add_offline_log_dir(self._log_dir, f"closing {self.dir.name}", exc)

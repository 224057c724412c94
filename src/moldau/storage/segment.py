"""One segment of a partition log (Kafka's ``LogSegment``): a ``.log`` file of record batches plus its
``.index`` and ``.timeindex``, all named by the segment's base offset (``00000000000000000000.log``).

Batches are appended whole and never decoded on the append or fetch path; lookups find a batch through
the sparse offset index and then walk batch headers (12 + 15 bytes each) forward from the indexed position.
Not thread-safe by itself: :class:`~moldau.storage.log.Log` serialises changes, and reads only look at
state that an append publishes after its bytes are written.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from moldau.clock import wall_clock_ms
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    NO_TIMESTAMP,
    TIMESTAMP_LOG_APPEND_TIME,
    decode_batch,
)
from moldau.storage.config import LogConfig
from moldau.storage.errors import CorruptIndexError, StorageError
from moldau.storage.fetch_data_info import FetchDataInfo
from moldau.storage.file_records import BatchPosition, FileRecords
from moldau.storage.file_region import FileRegion
from moldau.storage.log_file_utils import (
    CLEANED_FILE_SUFFIX,
    DELETED_FILE_SUFFIX,
    INDEX_FILE_SUFFIX,
    LOG_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
    log_file,
    offset_from_file,
    offset_index_file,
    time_index_file,
)
from moldau.storage.offset_index import OffsetIndex
from moldau.storage.time_index import TimeIndex
from moldau.storage.transaction_index import TransactionIndex, txn_index_file

if TYPE_CHECKING:
    from moldau.storage.leader_epoch_file_cache import LeaderEpochFileCache

log = logging.getLogger(__name__)

class LogSegmentOffsetOverflowError(StorageError):
    """An offset does not fit the segment's 32-bit relative offsets; the log must roll first."""

    error_code = ErrorCode.UNKNOWN_SERVER_ERROR  # Kafka's Errors.forException default


class LogSegment:
    """A segment: the ``.log`` file and its two indexes.

    >>> import tempfile, pathlib
    >>> from moldau.protocol.records import Record, build_batch
    >>> segment = LogSegment(pathlib.Path(tempfile.mkdtemp()), 0, LogConfig())
    >>> segment.append(0, 1000, 0, build_batch([Record(0, 1000, None, b"hi")]))
    >>> region = segment.read(0, 1 << 20).records
    >>> region.position, region.size == segment.size
    (0, True)
    """

    def __init__(
        self,
        dir: Path,
        base_offset: int,
        config: LogConfig,
        *,
        time_ms: Callable[[], int] | None = None,
        suffix: str = "",
    ) -> None:
        self.dir = dir
        self.base_offset = base_offset
        self._time_ms = time_ms or wall_clock_ms
        self._index_interval_bytes = config.index_interval_bytes
        self._max_index_size = config.segment_index_bytes
        self._records = FileRecords(log_file(dir, base_offset, suffix))
        index_path = offset_index_file(dir, base_offset, suffix)
        time_index_path = time_index_file(dir, base_offset, suffix)
        self.index_files_existed = index_path.exists() and time_index_path.exists()
        for path in (index_path, time_index_path):
            if not path.exists():
                path.touch()
        self.offset_index = OffsetIndex(index_path, base_offset, self._max_index_size)
        self.time_index = TimeIndex(time_index_path, base_offset, self._max_index_size)
        self.txn_index = TransactionIndex(txn_index_file(dir, base_offset, suffix))
        self.created_ms = self._time_ms()
        self._bytes_since_last_index_entry = 0
        self._max_timestamp_and_offset: tuple[int, int] | None = None  # lazily from the time index
        self._rolling_based_timestamp: int | None = None
        self._next_offset: int | None = base_offset if self._records.size == 0 else None
        self._scanned_end = 0  # end of the last whole batch read_next_offset found

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self._records.size}, path={self.log_path})"

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self._records.path

    @property
    def size(self) -> int:
        return self._records.size

    @property
    def file(self) -> io.FileIO:
        return self._records.file

    def read_max_timestamp_and_offset_so_far(self) -> tuple[int, int]:
        if self._max_timestamp_and_offset is None:
            self._max_timestamp_and_offset = self.time_index.last_entry()
        return self._max_timestamp_and_offset

    @property
    def max_timestamp_so_far(self) -> int:
        return self.read_max_timestamp_and_offset_so_far()[0]

    @property
    def largest_record_timestamp(self) -> int | None:
        timestamp = self.max_timestamp_so_far
        return timestamp if timestamp >= 0 else None

    @property
    def largest_timestamp(self) -> int:
        """The largest record timestamp, or the file's modification time when no batch has one (Kafka)."""
        timestamp = self.largest_record_timestamp
        return timestamp if timestamp is not None else self.last_modified_ms

    @property
    def last_modified_ms(self) -> int:
        return os.stat(self.log_path).st_mtime_ns // 1_000_000

    def read_next_offset(self) -> int:
        """The offset after the last batch (the base offset when empty); scans from the last index entry."""
        if self._next_offset is None:
            next_offset = self.base_offset
            start = self.offset_index.last_position()
            end = start
            for batch in self._records.batches(start):
                next_offset = batch.last_offset + 1
                end = batch.position + batch.size
            self._next_offset = next_offset
            self._scanned_end = end
        return self._next_offset

    @property
    def scanned_end(self) -> int:
        """Where the last whole batch ends; less than :attr:`size` if the file has a partial tail."""
        self.read_next_offset()
        return self._scanned_end if self._records.size else 0

    def can_convert_to_relative_offset(self, offset: int) -> bool:
        return self.offset_index.can_append_offset(offset)

    # -- append ----------------------------------------------------------------------------------------------

    def append(
        self,
        largest_offset: int,
        largest_timestamp: int,
        offset_of_max_timestamp: int,
        records: bytes | bytearray | memoryview,
    ) -> None:
        """Write whole batches at the end; add index entries every ``index.interval.bytes``."""
        if not len(records):
            return
        position = self._records.size
        if position == 0:
            self._rolling_based_timestamp = largest_timestamp
        if not self.can_convert_to_relative_offset(largest_offset):
            raise LogSegmentOffsetOverflowError(
                f"offset {largest_offset} does not fit segment {self.base_offset} (relative offsets are int32)"
            )
        self._records.append(records)
        self._next_offset = largest_offset + 1
        self._scanned_end = self._records.size
        if largest_timestamp > self.max_timestamp_so_far:
            self._max_timestamp_and_offset = (largest_timestamp, offset_of_max_timestamp)
        if self._bytes_since_last_index_entry > self._index_interval_bytes:
            self.offset_index.append(largest_offset, position)
            self.time_index.maybe_append(*self.read_max_timestamp_and_offset_so_far())
            self._bytes_since_last_index_entry = 0
        self._bytes_since_last_index_entry += len(records)

    # -- batch walks -----------------------------------------------------------------------------------------

    def batches(self, start: int, end: int | None = None) -> Iterator[BatchPosition]:
        """Complete batches from ``start`` (a batch boundary) up to ``end``; stops at a partial batch."""
        return self._records.batches(start, end)

    def translate_offset(self, offset: int, starting_position: int = 0) -> BatchPosition | None:
        """The first batch whose last offset is >= ``offset`` (Kafka's ``translateOffset``), or None."""
        _, position = self.offset_index.lookup(offset)
        for batch in self._records.batches(max(position, starting_position)):
            if batch.last_offset >= offset:
                return batch
        return None

    def _boundary_at_or_before(self, start: int, limit: int) -> int:
        """The end of the last whole batch that starts at or after ``start`` and ends by ``limit``."""
        if limit >= self._records.size:
            return self._records.size
        scan_from = max(start, self.offset_index.floor_position(limit))
        boundary = scan_from
        for batch in self._records.batches(scan_from, limit):
            boundary = batch.position + batch.size
        return boundary

    # -- read -----------------------------------------------------------------------------------------------

    def read(
        self, start_offset: int, max_size: int, max_position: int | None = None, min_one_message: bool = False
    ) -> FetchDataInfo | None:
        """Whole batches from the one holding ``start_offset``, at most ``max_size`` bytes, ending by
        ``max_position``; at least the first batch when ``min_one_message`` (KIP-74).

        Returns None when no batch of this segment has an offset >= ``start_offset``. Unlike Kafka, which
        may cut the last batch at ``max_size``, only whole batches are returned.
        """
        if max_size < 0:
            raise ValueError(f"invalid max size {max_size} for a read from segment {self.base_offset}")
        first = self.translate_offset(start_offset)
        if first is None:
            return None
        size = self._records.size
        limit = size if max_position is None else min(max_position, size)
        adjusted = max(max_size, first.size) if min_one_message else max_size
        if adjusted == 0 or first.position >= limit:
            return FetchDataInfo(start_offset, None, adjusted < first.size)
        end = self._boundary_at_or_before(first.position, min(limit, first.position + adjusted))
        if end <= first.position:
            return FetchDataInfo(start_offset, None, adjusted < first.size)
        return FetchDataInfo(start_offset, FileRegion(self._records.file, first.position, end - first.position))

    # -- time ----------------------------------------------------------------------------------------------

    def find_offset_by_timestamp(self, timestamp: int, starting_offset: int) -> tuple[int, int, int] | None:
        """``(timestamp, offset, leader_epoch)`` of the first record with timestamp >= ``timestamp`` and
        offset >= ``starting_offset`` (Kafka's ``findOffsetByTimestamp``); decodes one batch."""
        _, indexed_offset = self.time_index.lookup(timestamp)
        _, position = self.offset_index.lookup(max(indexed_offset, starting_offset))
        for pos, header in self._records.headers(position):
            if header.max_timestamp < timestamp or header.last_offset < starting_offset:
                continue
            epoch = header.partition_leader_epoch if header.partition_leader_epoch >= 0 else -1
            if header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
                return header.max_timestamp, max(header.base_offset, starting_offset), epoch
            for record in decode_batch(self._records.pread(header.size_in_bytes, pos)):
                if record.timestamp >= timestamp and record.offset >= starting_offset:
                    return record.timestamp, record.offset, epoch
        return None

    def offset_of_max_timestamp(self) -> tuple[int, int, int] | None:
        """``(timestamp, offset, leader_epoch)`` of the first record carrying the segment's largest
        timestamp (ListOffsets MAX_TIMESTAMP; Kafka's ``offsetOfMaxTimestamp`` decodes that batch too)."""
        max_timestamp, offset = self.read_max_timestamp_and_offset_so_far()
        if max_timestamp < 0:
            return None
        _, position = self.offset_index.lookup(offset)
        for pos, header in self._records.headers(position):
            if header.max_timestamp != max_timestamp:
                continue
            epoch = header.partition_leader_epoch if header.partition_leader_epoch >= 0 else -1
            if header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
                return max_timestamp, header.base_offset, epoch
            for record in decode_batch(self._records.pread(header.size_in_bytes, pos)):
                if record.timestamp == max_timestamp:
                    return max_timestamp, record.offset, epoch
            return max_timestamp, header.last_offset, epoch
        return None

    def first_batch_timestamp(self) -> int | None:
        if self._rolling_based_timestamp is None:
            for _, header in self._records.headers(0):
                self._rolling_based_timestamp = header.max_timestamp
                break
        return self._rolling_based_timestamp

    def time_waited_for_roll(self, now_ms: int, message_timestamp: int) -> int:
        """Time since the first batch's timestamp (or since creation when it has none), as Kafka rolls."""
        first = self.first_batch_timestamp()
        if first is not None and first >= 0:
            return message_timestamp - first
        return now_ms - self.created_ms

    def should_roll(
        self,
        *,
        max_segment_ms: int,
        max_segment_bytes: int,
        max_timestamp_in_messages: int,
        max_offset_in_messages: int,
        messages_size: int,
        now_ms: int,
    ) -> bool:
        """Kafka's ``LogSegment.shouldRoll``: full, too old, an index full, or an offset that won't fit."""
        size = self._records.size
        return (
            size > max_segment_bytes - messages_size
            or (size > 0 and self.time_waited_for_roll(now_ms, max_timestamp_in_messages) > max_segment_ms)
            or self.offset_index.is_full()
            or self.time_index.is_full()
            or not self.can_convert_to_relative_offset(max_offset_in_messages)
        )

    # -- recovery --------------------------------------------------------------------------------------------

    def sanity_check(self) -> None:
        """Raise :class:`CorruptIndexError` if an index is missing or cannot match this log file."""
        if not self.index_files_existed:
            raise CorruptIndexError(f"index files of segment {self.log_path} are missing")
        self.offset_index.sanity_check()
        self.time_index.sanity_check()
        if self.offset_index.entries and self.offset_index.last_position() >= self._records.size:
            raise CorruptIndexError(
                f"offset index of {self.log_path} points at position {self.offset_index.last_position()}, "
                f"beyond the log size {self._records.size}"
            )

    def recover(self, leader_epoch_cache: LeaderEpochFileCache | None = None) -> int:
        """Rebuild both indexes from the log and cut off everything after the last valid batch.

        Kafka's ``LogSegment.recover``: returns the number of bytes truncated (a torn or corrupt tail).
        Leader epochs seen in the batches are added to ``leader_epoch_cache``.
        """
        self.offset_index.reset()
        self.time_index.reset()
        valid_bytes = 0
        last_index_entry = 0
        max_timestamp, offset_of_max = NO_TIMESTAMP, self.base_offset
        next_offset = self.base_offset
        for header in self._records.valid_batches(self.base_offset, self.can_convert_to_relative_offset):
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max = header.max_timestamp, header.last_offset
            if valid_bytes - last_index_entry > self._index_interval_bytes:
                self.offset_index.append(header.last_offset, valid_bytes)
                self.time_index.maybe_append(max_timestamp, offset_of_max)
                last_index_entry = valid_bytes
            valid_bytes += header.size_in_bytes
            next_offset = header.last_offset + 1
            epoch = header.partition_leader_epoch
            if leader_epoch_cache is not None and epoch >= 0:
                latest = leader_epoch_cache.latest_epoch()
                if latest is None or epoch > latest:
                    leader_epoch_cache.assign(epoch, header.base_offset)
        truncated = self._records.size - valid_bytes
        if truncated > 0:
            log.warning(
                "segment.recover truncated invalid tail segment=%s valid_bytes=%d truncated_bytes=%d",
                self.log_path,
                valid_bytes,
                truncated,
            )
            self._records.truncate_to(valid_bytes)
        self._max_timestamp_and_offset = (max_timestamp, offset_of_max)
        self.time_index.maybe_append(max_timestamp, offset_of_max, skip_full_check=True)
        self._bytes_since_last_index_entry = valid_bytes - last_index_entry
        self._next_offset = next_offset
        self._scanned_end = valid_bytes
        self._rolling_based_timestamp = None
        self.index_files_existed = True
        return truncated

    def truncate_to(self, offset: int) -> int:
        """Remove every batch with an offset >= ``offset`` (whole batches) and their index entries."""
        mapping = self.translate_offset(offset)
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        self.offset_index.resize(self._max_index_size)
        self.time_index.resize(self._max_index_size)
        truncated = 0
        if mapping is not None:
            truncated = self._records.size - mapping.position
            self._records.truncate_to(mapping.position)
        if self._records.size == 0:
            self.created_ms = self._time_ms()
            self._rolling_based_timestamp = None
        self._bytes_since_last_index_entry = 0
        self._next_offset = None
        self._max_timestamp_and_offset = self._read_largest_timestamp()
        return truncated

    def _read_largest_timestamp(self) -> tuple[int, int]:
        timestamp, offset = self.time_index.last_entry()
        _, position = self.offset_index.lookup(offset)
        for _, header in self._records.headers(position):
            if header.max_timestamp > timestamp:
                timestamp, offset = header.max_timestamp, header.last_offset
        return timestamp, offset

    # -- lifecycle -------------------------------------------------------------------------------------------

    def tolerate_index_write_errors(self, tolerate: bool) -> OSError | None:
        """While loading (``tolerate``), index entries the disk refuses stay in memory only; returns the
        first such write error (the loader takes the dir offline: its next open rebuilds the indexes)."""
        for index in (self.offset_index, self.time_index):
            index.tolerate_write_errors = tolerate
        return self.offset_index.write_error or self.time_index.write_error

    def on_become_inactive_segment(self) -> None:
        """On roll: record the largest timestamp in the time index and fix the index sizes (Kafka)."""
        self.time_index.maybe_append(*self.read_max_timestamp_and_offset_so_far(), skip_full_check=True)
        self.offset_index.trim_to_valid_size()
        self.time_index.trim_to_valid_size()

    def resize_indexes(self, max_index_size: int) -> None:
        self.offset_index.resize(max_index_size)
        self.time_index.resize(max_index_size)

    def flush(self) -> None:
        """fsync the log file and both indexes."""
        self._records.flush()
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.flush()

    def change_file_suffixes(self, old_suffix: str, new_suffix: str) -> None:
        """Rename the three files (open descriptors stay valid: reads in flight keep working)."""

        def renamed(path: Path) -> Path:
            name = path.name[: len(path.name) - len(old_suffix)] if old_suffix else path.name
            return path.with_name(name + new_suffix)

        self._records.rename_to(renamed(self.log_path))
        self.offset_index.rename_to(renamed(self.offset_index.path))
        self.time_index.rename_to(renamed(self.time_index.path))
        self.txn_index.rename_to(renamed(self.txn_index.path))

    def close(self) -> None:
        if self._records.closed:
            return
        try:
            if self._max_timestamp_and_offset is not None:
                try:
                    self.time_index.maybe_append(*self._max_timestamp_and_offset, skip_full_check=True)
                except ValueError as exc:  # a stale entry must not stop the close
                    log.warning("segment.close time index entry skipped segment=%s error=%s", self.log_path, exc)
        finally:  # a full disk fails the entry (OSError, raised); the files are closed all the same
            self.offset_index.close()
            self.time_index.close()
            self._records.close()

    def delete(self) -> None:
        """Close and remove the three files."""
        self.close()
        self.log_path.unlink(missing_ok=True)
        self.offset_index.delete()
        self.time_index.delete()
        self.txn_index.delete()


# The file names and BatchPosition are re-exported: the log, loader and cleaner import them from here.
__all__ = [
    "CLEANED_FILE_SUFFIX",
    "DELETED_FILE_SUFFIX",
    "INDEX_FILE_SUFFIX",
    "LOG_FILE_SUFFIX",
    "SWAP_FILE_SUFFIX",
    "TIME_INDEX_FILE_SUFFIX",
    "BatchPosition",
    "LogSegment",
    "LogSegmentOffsetOverflowError",
    "log_file",
    "offset_from_file",
    "offset_index_file",
    "time_index_file",
]

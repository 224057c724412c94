"""Loading a partition directory into segments (Kafka's ``LogLoader``).

1. Delete ``.deleted`` and ``.cleaned`` leftovers; finish an interrupted swap (compaction) by deleting
   the segments a ``.swap`` replaces and renaming it into place.
2. Open every ``<offset>.log``; delete index files with no log; rebuild the indexes of a segment whose
   index files are missing or fail their sanity check.
3. After an unclean shutdown, recover every segment from the one holding the recovery point: check
   every batch (size, magic, CRC-32C, offsets), rebuild the indexes, cut a torn or corrupt tail, and if
   a segment had to be cut, delete all the segments after it.
4. After a clean shutdown too, check the CRC-32C of the active segment's batches after its last offset
   index entry (at most ``index.interval.bytes`` plus the last append: the bytes the open reads anyway to
   find the log end offset), and recover the segment if one fails. Kafka trusts a clean shutdown
   completely; but a batch damaged at rest makes librdkafka readers abort (``rd_slice_narrow_copy``), and
   the newest batches are the ones every consumer reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moldau.protocol.records import MAGIC_V2, InvalidRecordError, batch_crc, iter_batches
from moldau.storage.config import LogConfig
from moldau.storage.errors import CorruptIndexError
from moldau.storage.leader_epoch_file_cache import LeaderEpochFileCache
from moldau.storage.segment import (
    CLEANED_FILE_SUFFIX,
    DELETED_FILE_SUFFIX,
    INDEX_FILE_SUFFIX,
    LOG_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
    LogSegment,
    log_file,
    offset_from_file,
)

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class LoadedLogOffsets:
    log_start_offset: int
    recovery_point: int
    next_offset: int


def _is_segment_file(path: Path, suffix: str) -> bool:
    name = path.name
    return name.endswith(suffix) and name[: -len(suffix)].isdigit() and len(name) - len(suffix) == 20


class LogLoader:
    """Loads the segments of one partition directory; see the module docstring."""

    def __init__(
        self,
        dir: Path,
        config: LogConfig,
        *,
        had_clean_shutdown: bool,
        log_start_offset_checkpoint: int,
        recovery_point_checkpoint: int,
        leader_epoch_cache: LeaderEpochFileCache,
        time_ms: Callable[[], int],
    ) -> None:
        self.dir = dir
        self.config = config
        self.had_clean_shutdown = had_clean_shutdown
        self.log_start_offset_checkpoint = log_start_offset_checkpoint
        self.recovery_point_checkpoint = recovery_point_checkpoint
        self.leader_epoch_cache = leader_epoch_cache
        self.time_ms = time_ms
        self.segments: list[LogSegment] = []
        self.index_write_error: OSError | None = None  # set if a full disk refused rebuilt index entries

    def load(self) -> tuple[list[LogSegment], LoadedLogOffsets]:
        swap_files = self._remove_temp_files_and_collect_swap_files()
        self._complete_swaps(swap_files)
        self._load_segment_files()
        recovery_point, next_offset = self._recover_log()
        for segment in self.segments:
            self.index_write_error = segment.tolerate_index_write_errors(False) or self.index_write_error
        self.segments[-1].resize_indexes(self.config.segment_index_bytes)
        self.leader_epoch_cache.truncate_from_end(next_offset)
        log_start_offset = max(self.log_start_offset_checkpoint, self.segments[0].base_offset)
        self.leader_epoch_cache.truncate_from_start(self.log_start_offset_checkpoint)
        return self.segments, LoadedLogOffsets(log_start_offset, recovery_point, next_offset)

    # -- pass 1: leftovers --------------------------------------------------------------------------------

    def _remove_temp_files_and_collect_swap_files(self) -> list[Path]:
        swap_files: list[Path] = []
        cleaned_files: list[Path] = []
        min_cleaned_offset: int | None = None
        for path in sorted(self.dir.iterdir()):
            if not path.is_file():
                continue
            name = path.name
            if name.endswith(DELETED_FILE_SUFFIX):
                log.info("log_loader deleting stray file path=%s", path)
                path.unlink(missing_ok=True)
            elif name.endswith(CLEANED_FILE_SUFFIX):
                offset = offset_from_file(path)
                min_cleaned_offset = offset if min_cleaned_offset is None else min(min_cleaned_offset, offset)
                cleaned_files.append(path)
            elif name.endswith(SWAP_FILE_SUFFIX):
                swap_files.append(path)
        valid_swaps = []
        for path in swap_files:
            # KAFKA-6264: a .swap at or after a .cleaned file belongs to a split that did not finish.
            if min_cleaned_offset is not None and offset_from_file(path) >= min_cleaned_offset:
                log.info("log_loader deleting incomplete swap file path=%s", path)
                path.unlink(missing_ok=True)
            else:
                valid_swaps.append(path)
        for path in cleaned_files:
            path.unlink(missing_ok=True)
        return valid_swaps

    def _complete_swaps(self, swap_files: list[Path]) -> None:
        min_offset: int | None = None
        max_offset: int | None = None
        for path in swap_files:
            if not path.name.endswith(LOG_FILE_SUFFIX + SWAP_FILE_SUFFIX):
                continue
            segment = LogSegment(
                self.dir, offset_from_file(path), self.config, time_ms=self.time_ms, suffix=SWAP_FILE_SUFFIX
            )
            low, high = segment.base_offset, segment.read_next_offset()
            segment.close()
            min_offset = low if min_offset is None else min(min_offset, low)
            max_offset = high if max_offset is None else max(max_offset, high)
        if min_offset is not None and max_offset is not None:
            for path in self.dir.iterdir():
                # Only segment files: producer snapshots and other per-offset files are not replaced.
                replaced = (
                    path.is_file()
                    and path.name.endswith((LOG_FILE_SUFFIX, INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX))
                    and path.name[:20].isdigit()
                    and min_offset <= offset_from_file(path) < max_offset
                )
                if replaced:
                    log.info("log_loader deleting segment file replaced by a swap path=%s", path)
                    path.unlink(missing_ok=True)
        for path in self.dir.iterdir():
            if path.is_file() and path.name.endswith(SWAP_FILE_SUFFIX):
                path.rename(path.with_name(path.name[: -len(SWAP_FILE_SUFFIX)]))

    # -- pass 2: open segments ------------------------------------------------------------------------------

    def _load_segment_files(self) -> None:
        for path in sorted(self.dir.iterdir()):
            if not path.is_file():
                continue
            if _is_segment_file(path, INDEX_FILE_SUFFIX) or _is_segment_file(path, TIME_INDEX_FILE_SUFFIX):
                if not log_file(self.dir, offset_from_file(path)).exists():
                    log.warning("log_loader deleting orphaned index file path=%s", path)
                    path.unlink(missing_ok=True)
            elif _is_segment_file(path, LOG_FILE_SUFFIX):
                segment = LogSegment(self.dir, offset_from_file(path), self.config, time_ms=self.time_ms)
                segment.tolerate_index_write_errors(True)  # a full disk must not stop the load
                try:
                    segment.sanity_check()
                except CorruptIndexError as exc:
                    log.warning("log_loader rebuilding indexes segment=%s reason=%s", segment.log_path, exc)
                    segment.recover(self.leader_epoch_cache)
                self.segments.append(segment)

    # -- pass 3: recovery -----------------------------------------------------------------------------------

    def _recover_log(self) -> tuple[int, int]:
        if not self.had_clean_shutdown:
            self._recover_unflushed_segments()
        elif self.segments:
            last = self.segments[-1]
            last.read_next_offset()
            if last.scanned_end != last.size:  # a torn tail the clean-shutdown marker did not vouch for
                log.warning(
                    "log_loader recovering active segment with a partial tail segment=%s", last.log_path
                )
                last.recover(self.leader_epoch_cache)
            elif (position := first_corrupt_tail_batch(last)) is not None:
                log.warning(
                    "log_loader recovering active segment: the batch at position %d fails its CRC "
                    "after a clean shutdown segment=%s", position, last.log_path,
                )
                last.recover(self.leader_epoch_cache)
        log_end_offset = self._delete_segments_if_log_start_greater_than_log_end()
        if not self.segments:
            self.segments.append(
                LogSegment(self.dir, self.log_start_offset_checkpoint, self.config, time_ms=self.time_ms)
            )
        if self.had_clean_shutdown and log_end_offset is not None:
            return log_end_offset, log_end_offset
        next_offset = log_end_offset if log_end_offset is not None else self.segments[-1].read_next_offset()
        return min(self.recovery_point_checkpoint, next_offset), next_offset

    def _recover_unflushed_segments(self) -> None:
        start = 0
        for i, segment in enumerate(self.segments):
            if segment.base_offset <= self.recovery_point_checkpoint:
                start = i
        for i in range(start, len(self.segments)):
            segment = self.segments[i]
            log.info("log_loader recovering unflushed segment segment=%s", segment.log_path)
            if segment.recover(self.leader_epoch_cache) > 0:
                for later in self.segments[i + 1 :]:
                    log.warning("log_loader deleting segment after a corrupt one segment=%s", later.log_path)
                    later.delete()
                del self.segments[i + 1 :]
                return

    def _delete_segments_if_log_start_greater_than_log_end(self) -> int | None:
        if not self.segments:
            return None
        log_end_offset = self.segments[-1].read_next_offset()
        if log_end_offset >= self.log_start_offset_checkpoint:
            return log_end_offset
        log.warning(
            "log_loader deleting all segments: log end offset %d is below the log start offset %d dir=%s",
            log_end_offset,
            self.log_start_offset_checkpoint,
            self.dir,
        )
        for segment in self.segments:
            segment.delete()
        self.segments.clear()
        self.leader_epoch_cache.clear_and_flush()
        return None


def first_corrupt_tail_batch(segment: LogSegment) -> int | None:
    """The file position of the first batch after the segment's last offset index entry that is not a
    v2 batch matching its CRC-32C, or None if all of them are sound (see step 4 of the module docstring)."""
    start = segment.offset_index.last_position()
    data = os.pread(segment.file.fileno(), segment.size - start, start)
    try:
        for pos, header in iter_batches(data):
            if header.magic != MAGIC_V2 or batch_crc(data, pos, pos + header.size_in_bytes) != header.crc:
                return start + pos
    except InvalidRecordError:  # a batch length below the header size
        return start
    return None

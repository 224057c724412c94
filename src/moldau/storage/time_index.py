"""The ``.timeindex`` file of a segment (Kafka's ``TimeIndex``): a sparse map from timestamp to offset.

Each 12-byte entry is ``timestamp int64, relative offset int32`` (big-endian): the largest timestamp seen
so far in the segment and the offset of the batch that carries it. Entries are added alongside offset-index
entries, only when the timestamp grows, so both columns increase. A lookup returns the greatest entry with
a timestamp <= the target; records at or after that offset are the candidates.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from pathlib import Path

from moldau.storage.abstract_index import AbstractIndex
from moldau.storage.errors import CorruptIndexError

_ENTRY = struct.Struct(">qi")
NO_TIMESTAMP = -1


class TimeIndex(AbstractIndex):
    """Sparse timestamp -> offset index of one segment."""

    entry_size = 12

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        self._timestamps = array("q")
        self._offsets = array("i")  # relative offsets
        super().__init__(path, base_offset, max_index_size)

    def _decode(self, data: bytes) -> None:
        self._timestamps = array("q")
        self._offsets = array("i")
        for timestamp, relative in _ENTRY.iter_unpack(data):
            self._timestamps.append(timestamp)
            self._offsets.append(relative)

    def _clear_columns(self, entries: int) -> None:
        del self._timestamps[entries:]
        del self._offsets[entries:]

    def _count(self) -> int:
        return len(self._timestamps)

    def last_entry(self) -> tuple[int, int]:
        """``(timestamp, offset)`` of the last entry; ``(-1, base offset)`` when empty.

        Reads only the last entry of an index that is not loaded (retention asks every segment this).
        """
        if not self._loaded:
            entries = self._entries_on_disk()
            if not entries:
                return NO_TIMESTAMP, self.base_offset
            timestamp, relative = _ENTRY.unpack(self._pread_entry(entries - 1))
            return timestamp, self.base_offset + relative
        if not self._timestamps:
            return NO_TIMESTAMP, self.base_offset
        return self._timestamps[-1], self.base_offset + self._offsets[-1]

    def maybe_append(self, timestamp: int, offset: int, skip_full_check: bool = False) -> None:
        """Append ``(timestamp, offset)`` if ``timestamp`` is larger than the last one (Kafka's rule)."""
        self._ensure_loaded()
        if not skip_full_check and self.is_full():
            raise ValueError(f"attempt to append to a full time index {self.path} ({self.entries} entries)")
        last_timestamp, last_offset = self.last_entry()
        if self._timestamps and offset < last_offset:
            raise ValueError(
                f"attempt to append offset {offset} to time index {self.path}, whose last offset is {last_offset}"
            )
        if self._timestamps and timestamp < last_timestamp:
            raise ValueError(
                f"attempt to append timestamp {timestamp} to time index {self.path}, whose last timestamp is "
                f"{last_timestamp}"
            )
        if timestamp > last_timestamp:
            relative = self.relative(offset)
            self._timestamps.append(timestamp)
            self._offsets.append(relative)
            self._write_entry(_ENTRY.pack(timestamp, relative))

    def lookup(self, target_timestamp: int) -> tuple[int, int]:
        """The greatest entry with timestamp <= target as ``(timestamp, offset)``; ``(-1, base)`` if none."""
        self._ensure_loaded()
        slot = bisect_right(self._timestamps, target_timestamp) - 1
        if slot < 0:
            return NO_TIMESTAMP, self.base_offset
        return self._timestamps[slot], self.base_offset + self._offsets[slot]

    def truncate_to(self, offset: int) -> None:
        """Remove the entries whose offset is >= ``offset``."""
        self._ensure_loaded()
        self.truncate_to_entries(bisect_right(self._offsets, offset - 1 - self.base_offset))

    def sanity_check(self) -> None:
        super().sanity_check()
        entries = self._entries_on_disk()
        if entries:
            first_timestamp, _ = _ENTRY.unpack(self._pread_entry(0))
            last_timestamp, relative = _ENTRY.unpack(self._pread_entry(entries - 1))
            if last_timestamp < first_timestamp:
                raise CorruptIndexError(
                    f"corrupt time index {self.path}: last timestamp {last_timestamp} is below the first "
                    f"{first_timestamp}"
                )
            if relative < 0:
                raise CorruptIndexError(
                    f"corrupt time index {self.path}: last offset {self.base_offset + relative} is below the "
                    f"base offset {self.base_offset}"
                )

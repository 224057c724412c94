"""The ``.index`` file of a segment (Kafka's ``OffsetIndex``): a sparse map from offset to file position.

Each 8-byte entry is ``relative offset int32, position int32`` (big-endian), where the offset is the last
offset of an append and the position is where that append starts in the ``.log`` file. An entry is added
after every ``index.interval.bytes`` of appended data. To find an offset, take the greatest entry at or
below it and scan batch headers forward from its position.

>>> import tempfile, pathlib
>>> index = OffsetIndex(pathlib.Path(tempfile.mkdtemp()) / "00000000000000000100.index", 100, 4096)
>>> index.append(109, 0); index.append(130, 4200)
>>> index.lookup(120), index.lookup(130), index.lookup(50)
((109, 0), (130, 4200), (100, 0))
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right
from pathlib import Path

from moldau.storage.abstract_index import AbstractIndex
from moldau.storage.errors import CorruptIndexError

_ENTRY = struct.Struct(">ii")


class OffsetIndex(AbstractIndex):
    """Sparse offset -> position index of one segment."""

    entry_size = 8

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        self._offsets = array("i")  # relative offsets
        self._positions = array("i")
        super().__init__(path, base_offset, max_index_size)

    def _decode(self, data: bytes) -> None:
        column = array("i", data)
        if sys.byteorder == "little":
            column.byteswap()
        self._offsets = column[0::2]
        self._positions = column[1::2]

    def _clear_columns(self, entries: int) -> None:
        del self._offsets[entries:]
        del self._positions[entries:]

    def _count(self) -> int:
        return len(self._offsets)

    @property
    def last_offset(self) -> int:
        """The offset of the last entry, or the base offset when empty."""
        self._ensure_loaded()
        return self.base_offset + self._offsets[-1] if self._offsets else self.base_offset

    def entry(self, slot: int) -> tuple[int, int]:
        self._ensure_loaded()
        return self.base_offset + self._offsets[slot], self._positions[slot]

    def append(self, offset: int, position: int) -> None:
        """Add ``offset -> position``; offsets must strictly increase (Kafka's InvalidOffsetException)."""
        self._ensure_loaded()
        if self.is_full():
            raise ValueError(f"attempt to append to a full index {self.path} ({self.entries} entries)")
        relative = self.relative(offset)
        if self._offsets and relative <= self._offsets[-1]:
            raise ValueError(
                f"attempt to append offset {offset} to {self.path}, whose last offset is {self.last_offset}"
            )
        self._offsets.append(relative)
        self._positions.append(position)
        self._write_entry(_ENTRY.pack(relative, position))

    def lookup(self, target_offset: int) -> tuple[int, int]:
        """The greatest entry with offset <= ``target_offset`` as ``(offset, position)``; ``(base, 0)`` if none."""
        self._ensure_loaded()
        slot = bisect_right(self._offsets, target_offset - self.base_offset) - 1
        if slot < 0:
            return self.base_offset, 0
        return self.base_offset + self._offsets[slot], self._positions[slot]

    def floor_position(self, position: int) -> int:
        """The greatest indexed position <= ``position`` (0 if none): a batch boundary to scan from."""
        self._ensure_loaded()
        slot = bisect_right(self._positions, position) - 1
        return self._positions[slot] if slot >= 0 else 0

    def truncate_to(self, offset: int) -> None:
        """Remove the entries whose offset is >= ``offset``."""
        self._ensure_loaded()
        self.truncate_to_entries(bisect_right(self._offsets, offset - 1 - self.base_offset))

    def sanity_check(self) -> None:
        super().sanity_check()
        entries = self._entries_on_disk()
        if entries:
            relative, _ = _ENTRY.unpack(self._pread_entry(entries - 1))
            if relative < 0:
                raise CorruptIndexError(
                    f"corrupt offset index {self.path}: last offset {self.base_offset + relative} is below "
                    f"the base offset {self.base_offset}"
                )

    def last_position(self) -> int:
        """Position of the last entry (0 when empty), without loading the whole index."""
        if self._loaded:
            return self._positions[-1] if self._positions else 0
        entries = self._entries_on_disk()
        if not entries:
            return 0
        position: int = _ENTRY.unpack(self._pread_entry(entries - 1))[1]
        return position

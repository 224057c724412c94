"""What Kafka's offset and time indexes share (Kafka's ``AbstractIndex``): a file of fixed-size big-endian
entries, sorted, appended to while the segment is active, searched by binary search.

Kafka memory-maps a preallocated file. We keep the entries in ``array`` columns in memory (loaded lazily on
first use, like Kafka's ``LazyIndex``) and append each entry to the file with one ``write``: the file on
disk is always exactly ``entries * entry_size`` bytes, which is also what Kafka leaves after a clean close,
so the files are interchangeable.
"""

from __future__ import annotations

import os
from pathlib import Path

from moldau.storage.errors import CorruptIndexError

INT32_MAX = 2**31 - 1


class AbstractIndex:
    """Base of :class:`OffsetIndex` and :class:`TimeIndex`; not used alone."""

    entry_size = 0  # set by subclasses

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._max_entries = max_index_size // self.entry_size
        self._fd = -1
        self._loaded = False
        # Set while a log loads: an entry the disk refuses (full) stays in memory, the file keeps whole
        # entries, and `write_error` tells the loader to take the dir offline (see LogLoader).
        self.tolerate_write_errors = False
        self.write_error: OSError | None = None
        # Changed since the last fsync: with flush.messages=1 every acknowledgement waits for a flush, and
        # an index gets an entry only every index.interval.bytes, so most flushes need not fsync it.
        self._dirty = False
        self._file_entries = self._entries_on_disk()

    # -- subclass hooks ---------------------------------------------------------------------------------

    def _decode(self, data: bytes) -> None:
        raise NotImplementedError

    def _clear_columns(self, entries: int) -> None:
        raise NotImplementedError

    # -- file ---------------------------------------------------------------------------------------------

    def _entries_on_disk(self) -> int:
        try:
            return os.stat(self.path).st_size // self.entry_size
        except FileNotFoundError:
            return 0

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        usable = len(data) - len(data) % self.entry_size
        self._decode(data[:usable])
        self._loaded = True

    def _writer(self) -> int:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self._fd

    def _write_entry(self, raw: bytes) -> None:
        if self.write_error is not None and self.tolerate_write_errors:
            return  # the file stops at its last whole entry: a sparse index with fewer entries is valid
        self._dirty = True
        try:
            os.write(self._writer(), raw)
        except OSError as exc:
            if not self.tolerate_write_errors:
                raise
            self.write_error = exc
            try:
                fd = self._writer()
                size = os.fstat(fd).st_size
                os.ftruncate(fd, size - size % self.entry_size)  # drop a torn entry
            except OSError:
                pass  # a torn entry fails the next open's sanity check, which rebuilds the index

    def _pread_entry(self, slot: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(slot * self.entry_size)
            return f.read(self.entry_size)

    # -- common operations ------------------------------------------------------------------------------

    def _count(self) -> int:
        raise NotImplementedError

    @property
    def entries(self) -> int:
        return self._count() if self._loaded else self._file_entries

    @property
    def max_entries(self) -> int:
        return self._max_entries

    def is_full(self) -> bool:
        return self.entries >= self._max_entries

    def resize(self, max_index_size: int) -> None:
        """Change the capacity (Kafka resizes the mmap; here only the entry limit changes)."""
        self._max_entries = max(max_index_size // self.entry_size, 0)

    def trim_to_valid_size(self) -> None:
        """Make the index full at its current size, as Kafka does when a segment stops being active."""
        self._max_entries = self.entries

    def can_append_offset(self, offset: int) -> bool:
        relative = offset - self.base_offset
        return 0 <= relative <= INT32_MAX

    def relative(self, offset: int) -> int:
        relative = offset - self.base_offset
        if not 0 <= relative <= INT32_MAX:
            raise ValueError(f"offset {offset} does not fit an index based at {self.base_offset}")
        return relative

    def truncate_to_entries(self, entries: int) -> None:
        self._ensure_loaded()
        if entries >= self.entries:
            return
        self._clear_columns(entries)
        if self._fd >= 0 or self.path.exists():
            self._dirty = True
            os.truncate(self.path, entries * self.entry_size)

    def reset(self) -> None:
        """Remove every entry (before a segment is recovered and its index rebuilt)."""
        self._ensure_loaded()
        self._clear_columns(0)
        fd = self._writer()
        self._dirty = True
        os.ftruncate(fd, 0)

    def sanity_check(self) -> None:
        """Raise :class:`CorruptIndexError` if the file cannot be a valid index (Kafka's checks)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError as exc:
            raise CorruptIndexError(f"index file {self.path} does not exist") from exc
        if size % self.entry_size:
            raise CorruptIndexError(
                f"index file {self.path} is {size} bytes, not a multiple of the entry size {self.entry_size}"
            )

    def flush(self) -> None:
        """fsync the file if it changed since the last flush (a change during the fsync marks it again)."""
        if not self._dirty:
            return
        self._dirty = False
        try:
            if self._fd >= 0:
                os.fsync(self._fd)
            elif self.path.exists():
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except BaseException:
            self._dirty = True
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def rename_to(self, path: Path) -> None:
        if self.path.exists():
            os.replace(self.path, path)
        self.path = path

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def unload(self) -> None:
        """Drop the in-memory entries of an inactive index; the next lookup reads the file again."""
        if self._loaded and self._fd < 0:
            self._clear_columns(0)
            self._loaded = False
            self._file_entries = self._entries_on_disk()

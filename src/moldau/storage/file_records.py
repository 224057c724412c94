"""The ``.log`` file of one segment (Kafka's ``FileRecords``): whole record batches appended at the end,
walked by their headers and cut back at a batch boundary.

It knows the file and the batch framing only; offsets, indexes and timestamps belong to
:class:`~moldau.storage.segment.LogSegment`. Batches are never decoded here: a walk reads the 12-byte
log overhead and the fixed header fields (``lastOffsetDelta``), and recovery also checks each batch's CRC.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from moldau.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    RecordBatchHeader,
    batch_crc,
    read_batch_header,
)

# Header walks read 8 KiB at a time: many small batches per read, and a big batch costs one small read.
_SCAN_CHUNK = 8192
_RECOVER_CHUNK = 4 * 1024 * 1024
_HEAD = struct.Struct(">qi")  # baseOffset, batchLength
_LAST_OFFSET_DELTA = struct.Struct(">i")


class BatchPosition(NamedTuple):
    """Where a batch is: its offsets, its position in the ``.log`` file and its size in bytes."""

    base_offset: int
    last_offset: int
    position: int
    size: int


class FileRecords:
    """One ``.log`` file opened for appends (O_APPEND) and positional reads (pread).

    >>> import tempfile, pathlib
    >>> from moldau.protocol.records import Record, build_batch
    >>> records = FileRecords(pathlib.Path(tempfile.mkdtemp()) / "00000000000000000000.log")
    >>> records.append(build_batch([Record(0, 1000, None, b"hi")]))
    >>> [(batch.base_offset, batch.position) for batch in records.batches(0)]
    [(0, 0)]
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # 'a+' is O_APPEND: every write lands at the end, also after a truncation; reads use pread.
        self._file = io.FileIO(path, "a+")
        self._fd = self._file.fileno()
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    @property
    def file(self) -> io.FileIO:
        return self._file

    @property
    def closed(self) -> bool:
        return self._file.closed

    def pread(self, size: int, position: int) -> bytes:
        return os.pread(self._fd, size, position)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at the end; on a failed write, cut off whatever part of it landed."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # A partial batch must not stay: the next append would land after it (O_APPEND).
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)

    def batches(self, start: int, end: int | None = None) -> Iterator[BatchPosition]:
        """Complete batches from ``start`` (a batch boundary) up to ``end``; stops at a partial batch."""
        end = self._size if end is None else end
        pos = start
        chunk = b""
        chunk_start = start
        while end - pos >= HEADER_SIZE:
            off = pos - chunk_start
            if off + HEADER_SIZE > len(chunk):
                chunk = os.pread(self._fd, min(_SCAN_CHUNK, end - pos), pos)
                chunk_start = pos
                off = 0
                if len(chunk) < HEADER_SIZE:
                    return
            base_offset, batch_length = _HEAD.unpack_from(chunk, off)
            size = batch_length + LOG_OVERHEAD
            if size < HEADER_SIZE or pos + size > end:
                return
            (last_offset_delta,) = _LAST_OFFSET_DELTA.unpack_from(chunk, off + 23)
            yield BatchPosition(base_offset, base_offset + last_offset_delta, pos, size)
            pos += size

    def headers(self, start: int) -> Iterator[tuple[int, RecordBatchHeader]]:
        """``(position, header)`` of each complete batch from ``start``."""
        for batch in self.batches(start):
            yield batch.position, read_batch_header(os.pread(self._fd, HEADER_SIZE, batch.position))

    def valid_batches(self, base_offset: int, fits: Callable[[int], bool]) -> Iterator[RecordBatchHeader]:
        """Batches from the start of the file while each is whole, a v2 batch and matches its CRC-32C,
        with offsets that increase from ``base_offset`` and for which ``fits(last_offset)`` holds.
        Stops at the first that is not (Kafka's recovery walk)."""
        pos = 0
        chunk = b""
        chunk_start = 0
        expected_offset = base_offset
        while self._size - pos >= HEADER_SIZE:
            off = pos - chunk_start
            if off + HEADER_SIZE > len(chunk):
                chunk, chunk_start, off = os.pread(self._fd, _RECOVER_CHUNK, pos), pos, 0
            header = read_batch_header(chunk, off)
            size = header.size_in_bytes
            if size < HEADER_SIZE or header.magic != MAGIC_V2 or pos + size > self._size:
                return
            if off + size > len(chunk):
                chunk, chunk_start, off = os.pread(self._fd, max(size, _RECOVER_CHUNK), pos), pos, 0
            if batch_crc(chunk, off, off + size) != header.crc:
                return
            if header.base_offset < expected_offset or header.last_offset_delta < 0 or not fits(header.last_offset):
                return
            yield header
            expected_offset = header.last_offset + 1
            pos += size

    def truncate_to(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def flush(self) -> None:
        os.fsync(self._fd)

    def rename_to(self, path: Path) -> None:
        """Rename the file; the open descriptor stays valid, so reads in flight keep working."""
        os.replace(self.path, path)
        self.path = path

    def close(self) -> None:
        self._file.close()


__all__ = ["BatchPosition", "FileRecords"]

"""Producer state snapshot files, ``<offset>.snapshot``: the producer state of the log below ``offset``.

Version 1 is Kafka's format (``ProducerStateManager`` ``PID_SNAPSHOT_MAP_SCHEMA``), read for files Kafka
wrote. It keeps only each producer's last batch, so after a restart a retry of any earlier batch among
the last five is refused as out of order. We write version 2, the same layout with every retained batch,
so retries after a restart are recognised just as before it::

    version                 int16   (1 or 2)
    crc                     uint32  CRC-32C of everything after this field
    producer_entries        int32 count, then per producer:
      v1: producer_id int64, epoch int16, last_sequence int32, last_offset int64, offset_delta int32,
          timestamp int64, coordinator_epoch int32, current_txn_first_offset int64 (-1: none)
      v2: producer_id int64, epoch int16, coordinator_epoch int32, last_timestamp int64,
          current_txn_first_offset int64, batch count int8, then oldest first per batch:
          last_sequence int32, last_offset int64, offset_delta int32, timestamp int64
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

import google_crc32c

from moldau.protocol.errors import ErrorCode
from moldau.storage.errors import StorageError
from moldau.storage.producer_state_entry import BatchMetadata, ProducerStateEntry

KAFKA_PRODUCER_SNAPSHOT_VERSION = 1
PRODUCER_SNAPSHOT_VERSION = 2
PRODUCER_SNAPSHOT_FILE_SUFFIX = ".snapshot"

_PREFIX = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
_ENTRY_V1 = struct.Struct(">qhiqiqiq")
_ENTRY_V2 = struct.Struct(">qhiqqb")
_BATCH_V2 = struct.Struct(">iqiq")
_ENTRIES_OFFSET = _PREFIX.size


class CorruptSnapshotError(StorageError):
    """A snapshot file fails its version, size or CRC check (Kafka's CorruptSnapshotException)."""

    error_code = ErrorCode.UNKNOWN_SERVER_ERROR  # internal: an older snapshot is used


def producer_snapshot_file(dir: Path, offset: int) -> Path:
    return dir / f"{offset:020d}{PRODUCER_SNAPSHOT_FILE_SUFFIX}"


def list_snapshot_files(dir: Path) -> dict[int, Path]:
    """``{offset: path}`` of the snapshot files in ``dir``."""
    found = {}
    for path in dir.iterdir():
        name = path.name
        stem = name[: -len(PRODUCER_SNAPSHOT_FILE_SUFFIX)]
        if name.endswith(PRODUCER_SNAPSHOT_FILE_SUFFIX) and len(stem) == 20 and stem.isdigit():
            found[int(stem)] = path
    return dict(sorted(found.items()))


def encode_snapshot(entries: Iterable[ProducerStateEntry]) -> bytes:
    rows = sorted(entries, key=lambda e: e.producer_id)
    body = bytearray(_COUNT.pack(len(rows)))
    for e in rows:
        txn = -1 if e.current_txn_first_offset is None else e.current_txn_first_offset
        body += _ENTRY_V2.pack(e.producer_id, e.producer_epoch, e.coordinator_epoch, e.last_timestamp, txn,
                               len(e.batch_metadata))
        for b in e.batch_metadata:
            body += _BATCH_V2.pack(b.last_seq, b.last_offset, b.offset_delta, b.timestamp)
    crc = google_crc32c.value(bytes(body))
    return _PREFIX.pack(PRODUCER_SNAPSHOT_VERSION, crc) + body


def decode_snapshot(data: bytes, name: str = "snapshot") -> list[ProducerStateEntry]:
    if len(data) < _ENTRIES_OFFSET + _COUNT.size:
        raise CorruptSnapshotError(f"{name} is {len(data)} bytes, shorter than a snapshot header")
    version, crc = _PREFIX.unpack_from(data, 0)
    if version not in (KAFKA_PRODUCER_SNAPSHOT_VERSION, PRODUCER_SNAPSHOT_VERSION):
        raise CorruptSnapshotError(f"{name} has unknown version {version} (expected 1 or 2)")
    computed = google_crc32c.value(data[_ENTRIES_OFFSET:])
    if crc != computed:
        raise CorruptSnapshotError(f"{name} is corrupt: stored crc {crc}, computed crc {computed}")
    (count,) = _COUNT.unpack_from(data, _ENTRIES_OFFSET)
    try:
        entries, end = (_decode_v1 if version == 1 else _decode_v2)(data, _ENTRIES_OFFSET + _COUNT.size, count)
    except struct.error as exc:
        raise CorruptSnapshotError(f"{name} is truncated: {exc}") from None
    if count < 0 or end != len(data):
        raise CorruptSnapshotError(f"{name} declares {count} entries but holds {len(data)} bytes")
    return entries


def _decode_v1(data: bytes, pos: int, count: int) -> tuple[list[ProducerStateEntry], int]:
    entries = []
    for _ in range(count):
        pid, epoch, seq, offset, delta, timestamp, coordinator_epoch, txn = _ENTRY_V1.unpack_from(data, pos)
        pos += _ENTRY_V1.size
        entry = ProducerStateEntry(pid, epoch, coordinator_epoch, timestamp, txn if txn >= 0 else None)
        if offset >= 0:
            entry.batch_metadata.append(BatchMetadata(seq, offset, delta, timestamp))
        entries.append(entry)
    return entries, pos


def _decode_v2(data: bytes, pos: int, count: int) -> tuple[list[ProducerStateEntry], int]:
    entries = []
    for _ in range(count):
        pid, epoch, coordinator_epoch, timestamp, txn, batches = _ENTRY_V2.unpack_from(data, pos)
        pos += _ENTRY_V2.size
        entry = ProducerStateEntry(pid, epoch, coordinator_epoch, timestamp, txn if txn >= 0 else None)
        for _ in range(batches):
            entry.batch_metadata.append(BatchMetadata(*_BATCH_V2.unpack_from(data, pos)))
            pos += _BATCH_V2.size
        entries.append(entry)
    return entries, pos


def read_snapshot(path: Path) -> list[ProducerStateEntry]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CorruptSnapshotError(f"{path} vanished: {exc}") from None
    return decode_snapshot(data, str(path))


def write_snapshot(path: Path, entries: Iterable[ProducerStateEntry], *, sync: bool) -> None:
    """Write (replace) a snapshot; a torn write fails the CRC on load and an older snapshot is used."""
    data = encode_snapshot(entries)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync a snapshot written without ``sync``; a file deleted meanwhile is nothing to make durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

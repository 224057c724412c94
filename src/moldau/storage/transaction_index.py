"""The aborted-transaction index of one segment (Kafka's ``TransactionIndex``, ``<base>.txnindex``).

One 34-byte entry per transaction aborted in the segment, appended when the abort marker is written:
``version int16 (0), producer_id int64, first_offset int64, last_offset int64 (the marker),
last_stable_offset int64`` (the LSO just after the abort). A read_committed Fetch collects the entries
overlapping the range it returns so the consumer can drop the aborted records (KIP-98).

>>> import tempfile, pathlib
>>> index = TransactionIndex(pathlib.Path(tempfile.mkdtemp()) / "0.txnindex")
>>> index.append(AbortedTxn(7, 3, 10, 11)); index.collect_aborted(0, 5)
[AbortedTxn(producer_id=7, first_offset=3, last_offset=10, last_stable_offset=11)]
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TXN_INDEX_FILE_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
ENTRY_VERSION = 0


def txn_index_file(dir: Path, offset: int, suffix: str = "") -> Path:
    return dir / f"{offset:020d}{TXN_INDEX_FILE_SUFFIX}{suffix}"


@dataclass(slots=True, frozen=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    """Entries are kept in memory (they are few) and appended to the file; the file exists once written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[AbortedTxn] = self._read() if path.exists() else []
        self._dirty = False

    def _read(self) -> list[AbortedTxn]:
        data = self.path.read_bytes()
        entries = []
        for pos in range(0, len(data) - _ENTRY.size + 1, _ENTRY.size):
            version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
            if version != ENTRY_VERSION:
                log.warning("txn_index.bad_entry path=%s position=%d version=%d", self.path, pos, version)
                break
            entries.append(AbortedTxn(pid, first, last, lso))
        return entries

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry; one at or below the last entry's marker is already there (a replay) and ignored."""
        if self.entries and txn.last_offset <= self.entries[-1].last_offset:
            return
        self.entries.append(txn)
        with open(self.path, "ab") as f:
            f.write(_ENTRY.pack(ENTRY_VERSION, txn.producer_id, txn.first_offset, txn.last_offset,
                                txn.last_stable_offset))
        self._dirty = True

    def collect_aborted(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions that overlap [fetch_offset, upper_bound_offset) (Kafka's ``collectAbortedTxns``)."""
        return [t for t in self.entries if t.last_offset >= fetch_offset and t.first_offset < upper_bound_offset]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose marker is at or beyond ``offset`` (log truncation)."""
        kept = [t for t in self.entries if t.last_offset < offset]
        if len(kept) == len(self.entries):
            return
        self.entries = kept
        self.path.write_bytes(b"".join(_ENTRY.pack(ENTRY_VERSION, t.producer_id, t.first_offset, t.last_offset,
                                                   t.last_stable_offset) for t in kept))

    def flush(self) -> None:
        if self._dirty and self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dirty = False

    def rename_to(self, path: Path) -> None:
        if self.path.exists():
            os.replace(self.path, path)
        self.path = path

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

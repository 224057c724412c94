"""The partition's leader epochs and the offset each began at (Kafka's ``LeaderEpochFileCache``), kept in
the ``leader-epoch-checkpoint`` file of the partition directory.

An entry ``(epoch, start_offset)`` is added when the first batch stamped with a new leader epoch is
appended. OffsetForLeaderEpoch (KIP-101/KIP-279) answers from :meth:`end_offset_for`, and a follower
truncates its log to that offset.

>>> import tempfile, pathlib
>>> cache = LeaderEpochFileCache(pathlib.Path(tempfile.mkdtemp()) / "leader-epoch-checkpoint")
>>> cache.assign(0, 0); cache.assign(3, 120)
>>> cache.end_offset_for(0, log_end_offset=200), cache.end_offset_for(3, log_end_offset=200)
((0, 120), (3, 200))
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from moldau.storage.checkpoint_file import CheckpointFile, CorruptCheckpointError

log = logging.getLogger(__name__)

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
LEADER_EPOCH_CHECKPOINT_FILENAME = "leader-epoch-checkpoint"


class LeaderEpochFileCache:
    """Epoch -> start offset entries, both strictly increasing.

    Changes are written to the checkpoint file at once (temp file + rename) but fsynced only by
    :meth:`flush`, which the log calls before it advances its recovery point: appends never fsync. After a
    crash, entries for unflushed data are rebuilt by segment recovery, as in Kafka.
    """

    def __init__(self, path: Path) -> None:
        self._checkpoint = CheckpointFile(path, 2)
        self._lock = threading.Lock()
        self._entries: list[tuple[int, int]] = []
        self._unsynced = False
        try:
            stored = self._checkpoint.read()
        except CorruptCheckpointError as exc:
            log.warning("leader_epoch_cache.load ignored a corrupt checkpoint path=%s error=%s", path, exc)
            stored = []
        for epoch, start_offset in stored:
            self._assign(int(epoch), int(start_offset))

    @property
    def path(self) -> Path:
        return self._checkpoint.path

    def entries(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._entries)

    def _is_update_needed(self, epoch: int, start_offset: int) -> bool:
        if not self._entries:
            return True
        latest_epoch, latest_start = self._entries[-1]
        return epoch != latest_epoch or start_offset < latest_start

    def _assign(self, epoch: int, start_offset: int) -> bool:
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry: epoch {epoch}, start offset {start_offset}")
        if not self._is_update_needed(epoch, start_offset):
            return False
        # Drop entries that would break monotonicity (a new leader overwrote the end of the log).
        while self._entries and (self._entries[-1][0] >= epoch or self._entries[-1][1] >= start_offset):
            removed = self._entries.pop()
            if removed[1] != start_offset:
                log.warning(
                    "leader_epoch_cache.assign truncated conflicting entry epoch=%d start_offset=%d new=(%d, %d)",
                    removed[0],
                    removed[1],
                    epoch,
                    start_offset,
                )
        self._entries.append((epoch, start_offset))
        return True

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset`` (no-op if it already does)."""
        with self._lock:
            if self._assign(epoch, start_offset):
                self._write()

    def latest_epoch(self) -> int | None:
        with self._lock:
            return self._entries[-1][0] if self._entries else None

    def latest_entry(self) -> tuple[int, int] | None:
        with self._lock:
            return self._entries[-1] if self._entries else None

    def earliest_entry(self) -> tuple[int, int] | None:
        with self._lock:
            return self._entries[0] if self._entries else None

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch the record at ``offset`` was written in, if known."""
        with self._lock:
            previous = None
            for epoch, start_offset in self._entries:
                if start_offset == offset:
                    return epoch
                if start_offset > offset:
                    return previous
                previous = epoch
            return previous

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch, end_offset)`` for OffsetForLeaderEpoch, with Kafka's rules.

        The end offset of an epoch is the start offset of the next larger epoch, or the log end offset for
        the latest epoch. The epoch returned is the largest known epoch <= the requested one; an unknown
        newer epoch gives ``(-1, -1)``.
        """
        with self._lock:
            if requested_epoch == UNDEFINED_EPOCH or not self._entries:
                return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            if self._entries[-1][0] == requested_epoch:
                return requested_epoch, log_end_offset
            higher = next((e for e in self._entries if e[0] > requested_epoch), None)
            if higher is None:
                return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            floor = None
            for entry in self._entries:
                if entry[0] <= requested_epoch:
                    floor = entry
            if floor is None:
                return requested_epoch, higher[1]
            return floor[0], higher[1]

    def truncate_from_end(self, end_offset: int) -> None:
        """Remove the entries whose start offset is >= ``end_offset`` (after a log truncation)."""
        with self._lock:
            if end_offset < 0 or not self._entries or self._entries[-1][1] < end_offset:
                return
            while self._entries and self._entries[-1][1] >= end_offset:
                self._entries.pop()
            self._write()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop the entries wholly before ``start_offset``; the epoch in force there now starts at it."""
        with self._lock:
            removed = None
            while self._entries and self._entries[0][1] <= start_offset:
                removed = self._entries.pop(0)
            if removed is not None:
                self._entries.insert(0, (removed[0], start_offset))
                if removed[1] != start_offset:  # unchanged: no rewrite (every log open calls this)
                    self._write()

    def clear_and_flush(self) -> None:
        with self._lock:
            self._entries.clear()
            self._checkpoint.write([], sync=True)
            self._unsynced = False

    def flush(self) -> None:
        """fsync the checkpoint if it changed since the last flush."""
        with self._lock:
            if self._unsynced:
                self._checkpoint.write(self._entries, sync=True)
                self._unsynced = False

    def _write(self) -> None:
        if self._checkpoint.path.parent.exists():
            self._unsynced = True
            try:
                self._checkpoint.write(self._entries, sync=False)
            except OSError as exc:
                # A full disk: the entries in memory are right, and flush() (before the recovery point
                # moves) writes them again or fails, taking the log dir offline; a crash meanwhile
                # rebuilds them by recovery.
                log.debug("leader_epoch_cache.write deferred path=%s error=%s", self.path, exc)

"""Kafka's text checkpoint files (``CheckpointFile``): a version line ``0``, a count line, then one entry
per line with space-separated fields, written to ``<name>.tmp``, fsynced and renamed over the old file.

Used for ``recovery-point-offset-checkpoint``, ``log-start-offset-checkpoint``,
``replication-offset-checkpoint`` (entries ``topic partition offset``) and ``leader-epoch-checkpoint``
(entries ``epoch start_offset``).

>>> import tempfile, pathlib
>>> f = CheckpointFile(pathlib.Path(tempfile.mkdtemp()) / "recovery-point-offset-checkpoint", 3)
>>> f.write([("orders.v1", 0, 42)])
>>> f.path.read_text()
'0\\n1\\norders.v1 0 42\\n'
>>> f.read()
[['orders.v1', '0', '42']]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from moldau.protocol.errors import ErrorCode
from moldau.storage.errors import StorageError

VERSION = 0


class CorruptCheckpointError(StorageError):
    """A checkpoint file is malformed (bad version, count or entry)."""

    error_code = ErrorCode.KAFKA_STORAGE_ERROR  # Kafka's CheckpointFileWithFailureHandler


class CheckpointFile:
    """One checkpoint file whose entries have ``fields`` space-separated values."""

    def __init__(self, path: Path, fields: int) -> None:
        self.path = path
        self.fields = fields

    def write(self, entries: Iterable[Sequence[object]], *, sync: bool = True) -> None:
        """Replace the file atomically; with ``sync`` the data and the rename are fsynced."""
        lines = [" ".join(str(field) for field in entry) for entry in entries]
        text = f"{VERSION}\n{len(lines)}\n" + "".join(line + "\n" for line in lines)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if sync:
            fsync_dir(self.path.parent)

    def read(self) -> list[list[str]]:
        """The entries as lists of strings; ``[]`` when the file does not exist."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        if len(lines) < 2 or lines[0].strip() != str(VERSION):
            raise CorruptCheckpointError(f"checkpoint {self.path} does not start with version line {VERSION}")
        try:
            count = int(lines[1])
        except ValueError as exc:
            raise CorruptCheckpointError(f"checkpoint {self.path} has a bad count line {lines[1]!r}") from exc
        entries = [line.split() for line in lines[2:] if line.strip()]
        if len(entries) != count or any(len(entry) != self.fields for entry in entries):
            raise CorruptCheckpointError(
                f"checkpoint {self.path} expected {count} entries of {self.fields} fields, found {entries!r}"
            )
        return entries


def fsync_dir(path: Path) -> None:
    """fsync a directory so that file creations and renames in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

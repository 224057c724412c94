"""A byte range of an open segment file: what a fetch sends, with ``sendfile`` where the transport can."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class FileRegion:
    """``size`` bytes of ``file`` from ``position``: whole record batches, exactly as they are on disk.

    The file object belongs to the log segment: do not close it. Pass ``file``, ``position`` and ``size``
    to ``loop.sock_sendfile`` / ``os.sendfile``, or call :meth:`read_bytes`.

    A region stays readable while its segment is merely deleted (Kafka's ``file.delete.delay.ms`` keeps
    deleted files open for a while); a truncation of the log below the region can shorten it, in which
    case :meth:`read_bytes` returns fewer bytes.
    """

    file: io.BufferedRandom | io.FileIO
    position: int
    size: int

    def read_bytes(self) -> bytes:
        """Read the region with ``os.pread`` (no shared file position, safe from any thread)."""
        fd = self.file.fileno()
        data = os.pread(fd, self.size, self.position)
        if len(data) == self.size or not data:
            return data
        parts = [data]
        done = len(data)
        while done < self.size:
            chunk = os.pread(fd, self.size - done, self.position + done)
            if not chunk:
                break
            parts.append(chunk)
            done += len(chunk)
        return b"".join(parts)

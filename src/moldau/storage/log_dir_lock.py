"""One broker per log directory: Kafka's ``.lock`` file (``LogManager.lockLogDirs``).

A broker takes an exclusive, non-blocking ``flock`` on ``<log dir>/.lock`` before it reads or writes
anything there and holds it until it shuts down; the kernel drops it when the process dies, so a
SIGKILLed broker leaves no stale lock. Kafka leaves the file empty; we write who holds it (pid, host,
listeners) so that the broker refused can name the holder. ``flock`` (not ``fcntl``'s record locks)
also refuses a second broker in the same process, which embedded brokers need.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> first = LogDirLock.acquire(d, "pid=1")
>>> try:
...     LogDirLock.acquire(d, "pid=2")
... except LogDirLockedError as exc:
...     print(exc.holder)
pid=1
>>> first.release()
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from moldau.protocol.errors import ErrorCode
from moldau.storage.errors import StorageError

LOCK_FILE = ".lock"


class LogDirLockedError(StorageError):
    """Another broker (process or embedded) holds the log directory's ``.lock``."""

    error_code = ErrorCode.KAFKA_STORAGE_ERROR  # the broker refuses to start

    def __init__(self, log_dir: Path, holder: str) -> None:
        who = f" by another broker ({holder})" if holder else " by another broker"
        super().__init__(
            f"log dir {log_dir} is locked{who}: only one broker may use a log dir "
            f"(Kafka's {LOCK_FILE}); stop that broker or give this one other log.dirs"
        )
        self.log_dir = log_dir
        self.holder = holder


class LogDirLock:
    """A held ``.lock``; :meth:`release` it at shutdown."""

    def __init__(self, log_dir: Path, fd: int) -> None:
        self.log_dir = log_dir
        self._fd = fd

    @classmethod
    def acquire(cls, log_dir: Path, holder: str) -> LogDirLock:
        """Lock ``log_dir`` (created if missing) for this broker, described by ``holder``; raises
        :class:`LogDirLockedError` naming the current holder if another broker has it."""
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            os.close(fd)
            raise LogDirLockedError(log_dir, current) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            # Who holds it is a courtesy for the next broker's message: a full disk must not stop us.
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode() + b"\n", 0)
        except OSError:
            pass
        return cls(log_dir, fd)

    def release(self) -> None:
        """Unlock (the file stays, as Kafka's does: deleting it would race with a starting broker)."""
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1

"""The log directories an I/O error took offline (Kafka's ``LogDirFailureChannel``).

Any write to a log dir that fails with an ``OSError`` (a full disk: ``ENOSPC``; a failing one: ``EIO``)
reports the dir here; from then on its logs refuse appends with ``KAFKA_STORAGE_ERROR`` instead of
trying again, so a full disk costs one log line, not one traceback per request.

Where we differ from Kafka, on purpose: Kafka closes every log of the failed dir (reads answer
``KAFKA_STORAGE_ERROR`` too) and halts the broker when no log dir is left online. A single Moldau broker
keeps serving reads of what the dir holds, and keeps running, so consumers can drain it and an operator
can shut it down cleanly. As in Kafka, a dir comes back online when the broker restarts (after space has
been freed or the disk replaced); its logs are then recovered from their recovery points.

>>> channel = LogDirFailureChannel()
>>> channel.maybe_add_offline_log_dir("/data", "appending to t-0", OSError(28, "No space left on device"))
True
>>> channel.is_offline("/data"), channel.maybe_add_offline_log_dir("/data", "again", OSError(28, "full"))
(True, False)
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class LogDirFailureChannel:
    """Thread-safe set of offline log dirs; the first failure of a dir logs one line."""

    def __init__(self) -> None:
        self._offline: dict[str, str] = {}
        self._lock = threading.Lock()

    def maybe_add_offline_log_dir(self, log_dir: str | Path, action: str, error: BaseException) -> bool:
        """Take ``log_dir`` offline after ``error`` while ``action``; True if it was online until now."""
        key = str(log_dir)
        with self._lock:
            if key in self._offline:
                return False
            self._offline[key] = f"{action}: {error}"
        log.error(
            "log_dir.offline log_dir=%s cause=%r error=%s: its partitions answer KAFKA_STORAGE_ERROR to "
            "appends, reads continue; free space or fix the disk, then restart the broker to bring it online",
            key, action, error,
        )
        return True

    def is_offline(self, log_dir: str | Path) -> bool:
        return str(log_dir) in self._offline

    def offline_log_dirs(self) -> dict[str, str]:
        """Offline dirs and what took each offline."""
        with self._lock:
            return dict(self._offline)

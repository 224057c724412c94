"""The log cleaner (Kafka's ``LogCleaner``): background threads that compact logs whose
``cleanup.policy`` contains ``compact``.

Each of ``log.cleaner.threads`` threads has its own offset map of
``log.cleaner.dedupe.buffer.size / log.cleaner.threads`` bytes; it asks the
:class:`LogCleanerManager` for the filthiest cleanable log, cleans it with a :class:`Cleaner`, moves the
log's ``cleaner-offset-checkpoint`` entry, and sleeps ``log.cleaner.backoff.ms`` when there is nothing
to clean. Python threads share the GIL with the broker's event loop, so the cleaner pauses
(``time.sleep(0)``) after every batch it reads or writes.

>>> import tempfile, pathlib
>>> from moldau.storage.config import LogConfig
>>> from moldau.storage.log import Log
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> lg = Log.open(d / "users-0", LogConfig(cleanup_policy="compact"))
>>> cleaner = LogCleaner(CleanerConfig(), [d], lambda: [lg])
>>> cleaner.clean_once() is None  # nothing to clean yet
True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moldau.clock import wall_clock_ms
from moldau.protocol.records import InvalidRecordError
from moldau.storage.cleaner import Cleaner, CleanerStats, CleaningAbortedError
from moldau.storage.errors import KafkaStorageError
from moldau.storage.log import Log
from moldau.storage.log_cleaner_manager import LogCleanerManager, LogToClean
from moldau.storage.offset_map import DEFAULT_LOAD_FACTOR, SkimpyOffsetMap

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class CleanerConfig:
    """Kafka's ``log.cleaner.*`` broker configs, with Kafka's defaults."""

    num_threads: int = 1  # log.cleaner.threads
    dedupe_buffer_size: int = 128 * 1024 * 1024  # log.cleaner.dedupe.buffer.size
    io_buffer_load_factor: float = DEFAULT_LOAD_FACTOR  # log.cleaner.io.buffer.load.factor
    backoff_ms: int = 15000  # log.cleaner.backoff.ms
    enable_cleaner: bool = True  # log.cleaner.enable


class LogCleaner:
    """Owns the cleaner threads; ``startup()`` / ``shutdown()``, or :meth:`clean_once` to clean inline."""

    def __init__(
        self,
        config: CleanerConfig,
        log_dirs: list[Path],
        logs: Callable[[], list[Log]],
        *,
        time_ms: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.time_ms = time_ms or wall_clock_ms
        self.manager = LogCleanerManager(log_dirs, logs)
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._threads: list[threading.Thread] = []
        memory = config.dedupe_buffer_size // max(config.num_threads, 1)
        self._map_memory = memory
        self._inline_cleaner = self._new_cleaner()
        self.cleans = 0  # completed cleans, for tests and metrics

    def _new_cleaner(self) -> Cleaner:
        offset_map = SkimpyOffsetMap(self._map_memory, self.config.io_buffer_load_factor)
        return Cleaner(offset_map, time_ms=self.time_ms, check_done=self._check_done)

    def _check_done(self, log_: Log) -> None:
        if self._stop.is_set():
            raise CleaningAbortedError("the log cleaner is shutting down")
        if log_.closed:
            raise CleaningAbortedError(f"{log_.dir.name} was closed while it was being cleaned")

    # -- threads -------------------------------------------------------------------------------------------

    def startup(self) -> None:
        if not self.config.enable_cleaner:
            return
        for i in range(self.config.num_threads):
            cleaner = self._new_cleaner()
            thread = threading.Thread(
                target=self._run, args=(cleaner,), name=f"kafka-log-cleaner-thread-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("log_cleaner.started threads=%d", len(self._threads))

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the threads; a clean in progress is aborted (its ``*.cleaned`` files are removed)."""
        self._stop.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def wakeup(self) -> None:
        """Look for a log to clean now instead of after the backoff."""
        self._wakeup.set()

    def _run(self, cleaner: Cleaner) -> None:
        while not self._stop.is_set():
            try:
                cleaned = self._try_clean_filthiest_log(cleaner) is not None
            except Exception:
                log.exception("log_cleaner.unexpected_error; backing off")
                cleaned = False
            if not cleaned:
                self._wakeup.wait(self.config.backoff_ms / 1000)
                self._wakeup.clear()

    # -- cleaning --------------------------------------------------------------------------------------------

    def clean_once(self) -> CleanerStats | None:
        """Clean the filthiest cleanable log on this thread; None when no log needs cleaning."""
        return self._try_clean_filthiest_log(self._inline_cleaner)

    def _try_clean_filthiest_log(self, cleaner: Cleaner) -> CleanerStats | None:
        to_clean = self.manager.grab_filthiest_compacted_log(self.time_ms())
        if to_clean is None:
            return None
        end_offset = None
        try:
            end_offset, stats = cleaner.clean(to_clean)
        except CleaningAbortedError as exc:
            log.info("log_cleaner.aborted topic_partition=%s reason=%s", to_clean.log.dir.name, exc)
            return None
        except InvalidRecordError as exc:
            log.error("log_cleaner.uncleanable topic_partition=%s error=%s", to_clean.log.dir.name, exc)
            self.manager.mark_uncleanable(to_clean.log)
            return None
        except (OSError, KafkaStorageError) as exc:
            # Kafka's LogCleaner: an I/O error (a full disk) takes the log dir offline, logged once, and
            # the log is not cleaned again until the broker restarts.
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            to_clean.log.failure_channel.maybe_add_offline_log_dir(
                to_clean.log.dir.parent, f"cleaning {to_clean.log.dir.name}", cause)
            self.manager.mark_uncleanable(to_clean.log)
            return None
        finally:
            self.manager.done_cleaning(to_clean.log, end_offset)
        self.cleans += 1
        _log_stats(to_clean, end_offset, stats)
        return stats


def _log_stats(to_clean: LogToClean, end_offset: int, stats: CleanerStats) -> None:
    mb = 1024 * 1024
    elapsed = stats.elapsed_s
    map_s = max(stats.map_done_s - stats.start_s, 0.0)
    log.info(
        "log_cleaner.cleaned topic_partition=%s first_dirty_offset=%d end_offset=%d segments=%d "
        "bytes_read=%d bytes_written=%d size_reduction=%.1f%% records_read=%d records_written=%d "
        "invalid_records=%d map_records=%d map_bytes=%d duration_ms=%.0f map_ms=%.0f "
        "read_mb_per_s=%.1f records_per_s=%.0f dirty_ratio=%.2f",
        to_clean.log.dir.name,
        to_clean.first_dirty_offset,
        end_offset,
        stats.segments,
        stats.bytes_read,
        stats.bytes_written,
        100.0 * (1 - stats.bytes_written / stats.bytes_read) if stats.bytes_read else 0.0,
        stats.messages_read,
        stats.messages_written,
        stats.invalid_messages,
        stats.map_messages_read,
        stats.map_bytes_read,
        elapsed * 1000,
        map_s * 1000,
        (stats.bytes_read + stats.map_bytes_read) / mb / elapsed,
        (stats.messages_read + stats.map_messages_read) / elapsed,
        to_clean.cleanable_ratio,
    )

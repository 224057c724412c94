"""All the partition logs of a broker across its log directories (Kafka's ``LogManager``).

Each log directory holds one ``<topic>-<partition>`` directory per partition and Kafka's files:

- ``recovery-point-offset-checkpoint``: per partition, the offset below which data is fsynced;
- ``log-start-offset-checkpoint``: per partition whose log start offset is past its first segment;
- ``replication-offset-checkpoint``: per partition, the high watermark;
- ``.kafka_cleanshutdown``: written after a clean shutdown, removed at startup; without it the logs are
  recovered from their recovery points;
- ``.lock``: held by the one broker using the dir (``log_dir_lock``).

An I/O error takes a log dir offline (``log_dir_failure_channel``): its logs refuse appends, checkpoints
and the clean-shutdown marker are no longer written to it, and the next start recovers it.

>>> import tempfile, pathlib
>>> manager = LogManager([pathlib.Path(tempfile.mkdtemp())], LogConfig())
>>> manager.startup()
>>> manager.get_or_create_log("orders.eu-west", 3).dir.name
'orders.eu-west-3'
>>> manager.shutdown()
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from moldau.clock import wall_clock_ms
from moldau.storage.checkpoint_file import CheckpointFile, CorruptCheckpointError, fsync_dir
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, StorageError
from moldau.storage.log import Log, parse_topic_partition_name
from moldau.storage.log_dir_failure_channel import LogDirFailureChannel
from moldau.storage.log_dir_lock import LogDirLock
from moldau.storage.scheduler import Scheduler, ThreadScheduler

log = logging.getLogger(__name__)

RECOVERY_POINT_CHECKPOINT_FILE = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT_FILE = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT_FILE = "replication-offset-checkpoint"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
DELETE_DIR_SUFFIX = "-delete"
FUTURE_DIR_SUFFIX = "-future"
STRAY_DIR_SUFFIX = "-stray"

TopicPartition = tuple[str, int]


def _read_offsets(path: Path) -> dict[TopicPartition, int]:
    try:
        entries = CheckpointFile(path, 3).read()
    except CorruptCheckpointError as exc:
        log.warning("log_manager.checkpoint_ignored path=%s error=%s", path, exc)
        return {}
    return {(topic, int(partition)): int(offset) for topic, partition, offset in entries}


def _write_offsets(path: Path, offsets: Mapping[TopicPartition, int]) -> None:
    CheckpointFile(path, 3).write(
        (topic, partition, offset) for (topic, partition), offset in sorted(offsets.items())
    )


class LogManager:
    """Opens, creates, checkpoints and deletes the partition logs of one broker."""

    def __init__(
        self,
        log_dirs: list[Path],
        default_config: LogConfig,
        *,
        now_ms: Callable[[], int] | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        if not log_dirs:
            raise ValueError("log.dirs must name at least one directory")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.default_config = default_config
        self._now_ms = now_ms or wall_clock_ms
        self._logs: dict[TopicPartition, Log] = {}
        self._lock = threading.Lock()
        self._dir_locks: list[LogDirLock] = []
        self.failure_channel = LogDirFailureChannel()
        # Runs each rolled segment's flush ("flush-log"); owned (and shut down) here unless passed in.
        self._own_scheduler: ThreadScheduler | None = None
        if scheduler is None:
            scheduler = self._own_scheduler = ThreadScheduler(name="flush-log")
        self.scheduler: Scheduler = scheduler

    def lock_log_dirs(self, holder: str) -> None:
        """Take every log dir's ``.lock`` (Kafka's ``lockLogDirs``) before anything else touches them;
        raises :class:`~moldau.storage.log_dir_lock.LogDirLockedError` if another broker holds one."""
        try:
            for log_dir in self.log_dirs:
                self._dir_locks.append(LogDirLock.acquire(log_dir, holder))
        except BaseException:
            self.unlock_log_dirs()
            raise

    def unlock_log_dirs(self) -> None:
        for dir_lock in self._dir_locks:
            dir_lock.release()
        self._dir_locks.clear()

    # -- startup ---------------------------------------------------------------------------------------------

    def startup(self, topic_configs: Mapping[str, LogConfig] | None = None) -> None:
        """Load every partition directory, recovering logs after an unclean shutdown."""
        configs = topic_configs or {}
        for log_dir in self.log_dirs:
            log_dir.mkdir(parents=True, exist_ok=True)
            marker = log_dir / CLEAN_SHUTDOWN_FILE
            had_clean_shutdown = marker.exists()
            recovery_points = _read_offsets(log_dir / RECOVERY_POINT_CHECKPOINT_FILE)
            log_start_offsets = _read_offsets(log_dir / LOG_START_OFFSET_CHECKPOINT_FILE)
            high_watermarks = _read_offsets(log_dir / REPLICATION_OFFSET_CHECKPOINT_FILE)
            for child in sorted(log_dir.iterdir()):
                if not child.is_dir():
                    continue
                tp = self._partition_of(child)
                if tp is None:
                    continue
                if tp in self._logs:
                    raise StorageError(
                        f"partition {tp[0]}-{tp[1]} is in two log directories: {self._logs[tp].dir} and {child}"
                    )
                try:
                    partition_log = Log.open(
                        child,
                        configs.get(tp[0], self.default_config),
                        recovery_point=recovery_points.get(tp, 0),
                        log_start_offset=log_start_offsets.get(tp),
                        had_clean_shutdown=had_clean_shutdown,
                        now_ms=self._now_ms,
                        failure_channel=self.failure_channel,
                        scheduler=self.scheduler,
                    )
                except OSError as exc:
                    raise KafkaStorageError(
                        f"cannot load {child}: {exc}; free space on (or repair) {log_dir} and start again"
                    ) from exc
                partition_log.update_high_watermark(high_watermarks.get(tp, 0))
                self._logs[tp] = partition_log
            marker.unlink(missing_ok=True)
            log.info(
                "log_manager.startup log_dir=%s clean_shutdown=%s logs=%d",
                log_dir,
                had_clean_shutdown,
                sum(1 for lg in self._logs.values() if lg.dir.parent == log_dir),
            )

    @staticmethod
    def _partition_of(child: Path) -> TopicPartition | None:
        name = child.name
        if name.endswith(DELETE_DIR_SUFFIX):
            log.info("log_manager deleting directory marked for deletion dir=%s", child)
            shutil.rmtree(child, ignore_errors=True)
            return None
        if name.endswith((FUTURE_DIR_SUFFIX, STRAY_DIR_SUFFIX)):
            log.warning("log_manager skipping directory dir=%s", child)
            return None
        try:
            return parse_topic_partition_name(name)
        except ValueError:
            log.warning("log_manager skipping a directory that is not <topic>-<partition> dir=%s", child)
            return None

    # -- logs ------------------------------------------------------------------------------------------------

    def get_log(self, topic: str, partition: int) -> Log | None:
        return self._logs.get((topic, partition))

    def all_logs(self) -> list[Log]:
        return list(self._logs.values())

    def get_or_create_log(self, topic: str, partition: int, config: LogConfig | None = None) -> Log:
        """The partition's log, created empty in the log directory with the fewest partitions."""
        tp = (topic, partition)
        with self._lock:
            existing = self._logs.get(tp)
            if existing is not None:
                return existing
            online = [d for d in self.log_dirs if not self.failure_channel.is_offline(d)]
            if not online:
                raise KafkaStorageError(f"cannot create {topic}-{partition}: every log dir is offline")
            log_dir = min(online, key=lambda d: sum(1 for lg in self._logs.values() if lg.dir.parent == d))
            dir = log_dir / f"{topic}-{partition}"
            try:
                partition_log = Log.open(dir, config or self.default_config, now_ms=self._now_ms,
                                         failure_channel=self.failure_channel, scheduler=self.scheduler)
                fsync_dir(log_dir)
            except OSError as exc:
                self.failure_channel.maybe_add_offline_log_dir(log_dir, f"creating {dir.name}", exc)
                raise KafkaStorageError(f"I/O error while creating {dir}: {exc}") from exc
            self._logs[tp] = partition_log
            log.info("log_manager.created_log topic=%s partition=%d dir=%s", topic, partition, dir)
            return partition_log

    def delete_log(self, topic: str, partition: int) -> None:
        """Close the log, rename its directory ``<topic>-<partition>.<id>-delete`` and remove it.

        Removing a big directory takes time: call this from a worker thread.
        """
        with self._lock:
            partition_log = self._logs.pop((topic, partition), None)
        if partition_log is None:
            return
        partition_log.close()
        doomed = partition_log.dir.with_name(f"{topic}-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
        partition_log.dir.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("log_manager.deleted_log topic=%s partition=%d", topic, partition)

    # -- background work the broker schedules ------------------------------------------------------------------

    def flush_dirty_logs(self, now_ms: int) -> int:
        """Kafka's ``kafka-log-flusher`` task, every ``log.flush.scheduler.interval.ms``: flush the logs
        whose ``flush.messages``/``flush.ms`` is due or whose rolled segments are not yet fsynced
        (:meth:`Log.should_flush`, the one flush policy). Call from a worker thread."""
        flushed = 0
        for partition_log in self.all_logs():
            if partition_log.should_flush(now_ms):
                try:
                    partition_log.flush()
                except KafkaStorageError:
                    continue  # its dir is offline now, and the channel said so once
                flushed += 1
        return flushed

    def cleanup_logs(self, now_ms: int) -> int:
        """Apply retention to every log; returns the number of segments deleted."""
        deleted = 0
        for partition_log in self.all_logs():
            try:
                deleted += partition_log.delete_old_segments(now_ms)
            except KafkaStorageError:
                continue  # its dir is offline now, and the channel said so once
        return deleted

    def checkpoint(self) -> None:
        """Write the three checkpoint files of every log directory (shutdown, and tests)."""
        self.checkpoint_recovery_offsets_and_high_watermarks()
        self.checkpoint_log_start_offsets()

    def checkpoint_recovery_offsets_and_high_watermarks(self) -> None:
        """Kafka's ``kafka-recovery-point-checkpoint`` task, every ``log.flush.offset.checkpoint.interval.ms``:
        the recovery points (and, as there is no separate replica manager task here, the high watermarks).
        Fsynced: call from a worker thread."""
        self._checkpoint_dirs("writing the recovery point checkpoint", self._checkpoint_recovery_and_hw)

    def checkpoint_log_start_offsets(self) -> None:
        """Kafka's ``kafka-log-start-offset-checkpoint`` task, every
        ``log.flush.start.offset.checkpoint.interval.ms``. Fsynced: call from a worker thread."""
        self._checkpoint_dirs("writing the log start offset checkpoint", self._checkpoint_log_start)

    def _checkpoint_dirs(self, action: str, write: Callable[[Path, dict[TopicPartition, Log]], None]) -> None:
        """An offline dir is skipped; a dir whose checkpoint cannot be written goes offline (Kafka's
        ``checkpointLogRecoveryOffsetsInDir``)."""
        for log_dir in self.log_dirs:
            if self.failure_channel.is_offline(log_dir):
                continue
            logs = {(lg.topic, lg.partition): lg for lg in self.all_logs() if lg.dir.parent == log_dir}
            try:
                write(log_dir, logs)
            except OSError as exc:
                self.failure_channel.maybe_add_offline_log_dir(log_dir, action, exc)

    @staticmethod
    def _checkpoint_recovery_and_hw(log_dir: Path, logs: dict[TopicPartition, Log]) -> None:
        _write_offsets(
            log_dir / RECOVERY_POINT_CHECKPOINT_FILE, {tp: lg.recovery_point for tp, lg in logs.items()}
        )
        _write_offsets(
            log_dir / REPLICATION_OFFSET_CHECKPOINT_FILE,
            {tp: lg.high_watermark for tp, lg in logs.items()},
        )

    @staticmethod
    def _checkpoint_log_start(log_dir: Path, logs: dict[TopicPartition, Log]) -> None:
        _write_offsets(
            log_dir / LOG_START_OFFSET_CHECKPOINT_FILE,
            {
                tp: lg.log_start_offset
                for tp, lg in logs.items()
                if lg.log_start_offset > lg.segments[0].base_offset
            },
        )

    def shutdown(self) -> None:
        """Flush and close every log, write the checkpoints and the clean-shutdown marker, unlock the dirs.

        An offline dir (or one that fails now, e.g. a full disk) gets no checkpoints and no marker, as in
        Kafka: its logs are recovered from their last recovery points at the next start.
        """
        try:
            if self._own_scheduler is not None:
                self._own_scheduler.shutdown()  # rolled-segment flushes finish before the final flush
            for partition_log in self.all_logs():
                try:
                    partition_log.flush()
                except KafkaStorageError:
                    pass  # the channel logged it; this dir gets no clean-shutdown marker
            self.checkpoint()
            for partition_log in self.all_logs():
                partition_log.close()
            for log_dir in self.log_dirs:
                if not self.failure_channel.is_offline(log_dir):
                    self._write_clean_shutdown_marker(log_dir)
            offline = self.failure_channel.offline_log_dirs()
            log.info("log_manager.shutdown logs=%d offline_log_dirs=%s", len(self._logs), sorted(offline) or "none")
        finally:
            self.unlock_log_dirs()

    def _write_clean_shutdown_marker(self, log_dir: Path) -> None:
        marker = log_dir / CLEAN_SHUTDOWN_FILE
        try:
            with open(marker, "w") as file:
                file.write(json.dumps({"version": 0, "brokerEpoch": -1}, separators=(",", ":")))
                file.flush()
                os.fsync(file.fileno())
            fsync_dir(log_dir)
        except OSError as exc:
            # A torn or empty marker must not vouch for logs that were not closed cleanly.
            marker.unlink(missing_ok=True)
            self.failure_channel.maybe_add_offline_log_dir(log_dir, "writing the clean-shutdown marker", exc)

"""Per-topic log configuration, with Kafka's topic-config names (snake_cased) and Kafka's defaults."""

from __future__ import annotations

from dataclasses import dataclass

LONG_MAX = 2**63 - 1

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"


@dataclass(slots=True)
class LogConfig:
    """The topic configs the storage layer reads (``segment.bytes`` -> ``segment_bytes`` ...).

    >>> LogConfig(segment_bytes=4096).retention_ms
    604800000
    """

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    segment_index_bytes: int = 10485760
    index_interval_bytes: int = 4096
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    retention_ms: int = 604800000
    retention_bytes: int = -1
    max_message_bytes: int = 1048588
    message_timestamp_type: str = CREATE_TIME
    # KIP-937 timestamp bounds with the defaults of current Kafka (ServerLogConfigs): no bound into the
    # past, one hour into the future.
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = 3600000
    file_delete_delay_ms: int = 60000
    preallocate: bool = False  # accepted for compatibility; segments are never preallocated
    # "delete", "compact" or "compact,delete"; retention by time and size only with "delete".
    cleanup_policy: str = "delete"
    # Compaction (Kafka's LogCleaner): how long tombstones stay, how old records must be (min) or may get
    # (max) before they are cleaned, and the dirty fraction that makes a log worth cleaning.
    delete_retention_ms: int = 86400000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.message_timestamp_type not in (CREATE_TIME, LOG_APPEND_TIME):
            raise ValueError(
                f"message.timestamp.type must be {CREATE_TIME} or {LOG_APPEND_TIME}, "
                f"got {self.message_timestamp_type!r}"
            )
        if self.segment_bytes < 61:
            raise ValueError(
                f"segment.bytes must hold at least one record batch header, got {self.segment_bytes}"
            )
        if self.segment_index_bytes < 4:  # Kafka's lower bound; below 12 the time index is always full
            raise ValueError(
                f"segment.index.bytes must be at least 4 (Kafka's minimum), got {self.segment_index_bytes}"
            )

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == LOG_APPEND_TIME

    @property
    def delete(self) -> bool:
        """Whether retention deletes old segments (``cleanup.policy`` contains ``delete``)."""
        return "delete" in self.cleanup_policy.split(",")

    @property
    def compact(self) -> bool:
        """Whether the log cleaner compacts this log (``cleanup.policy`` contains ``compact``)."""
        return "compact" in self.cleanup_policy.split(",")

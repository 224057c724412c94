"""What an append returns (Kafka's ``LogAppendInfo``, the fields a Produce response needs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class AppendInfo:
    """Offsets given to an appended set of batches.

    ``log_append_time`` is the broker time stamped on the batches of a LogAppendTime topic, -1 for
    CreateTime (the Produce response's ``log_append_time_ms``).
    """

    first_offset: int
    last_offset: int
    log_append_time: int
    log_start_offset: int
    num_messages: int
    max_timestamp: int = -1
    valid_bytes: int = 0

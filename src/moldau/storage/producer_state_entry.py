"""What a partition remembers about one idempotent producer (Kafka's ``ProducerStateEntry`` and
``BatchMetadata``): its epoch and the metadata of its last five batches, enough to recognise a retried
batch and to check that the next one continues the sequence.

Sequence numbers are non-negative int32 that wrap from ``Int.MAX`` to 0 (Kafka's
``DefaultRecordBatch.incrementSequence``).

>>> entry = ProducerStateEntry.empty(7)
>>> entry.add_batch(0, last_seq=4, last_offset=104, offset_delta=4, timestamp=1000)
>>> entry.last_seq, entry.batch_with_sequence_range(0, 4).first_offset
(4, 100)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

INT_MAX = 2**31 - 1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_TIMESTAMP = -1
NUM_BATCHES_TO_RETAIN = 5  # the producer's max.in.flight.requests.per.connection limit for idempotence


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping past ``Int.MAX`` to 0.

    >>> increment_sequence(2**31 - 2, 3)
    1
    """
    if sequence > INT_MAX - increment:
        return increment - (INT_MAX - sequence) - 1
    return sequence + increment


def decrement_sequence(sequence: int, decrement: int) -> int:
    """``sequence - decrement`` wrapping below 0 to ``Int.MAX``.

    >>> decrement_sequence(1, 3)
    2147483646
    """
    if sequence < decrement:
        return INT_MAX - (decrement - sequence) + 1
    return sequence - decrement


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """Whether ``next_seq`` directly follows ``last_seq`` (Kafka's ``ProducerAppendInfo.inSequence``)."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT_MAX)


class BatchMetadata(NamedTuple):
    """One appended batch of a producer: its last sequence and offset, its size in offsets, its timestamp.

    A named tuple rather than a frozen dataclass: one is built per idempotent append, and it is 3x cheaper.
    """

    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_seq(self) -> int:
        return decrement_sequence(self.last_seq, self.offset_delta)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@dataclass(slots=True)
class ProducerStateEntry:
    """A producer id's epoch and last batches in one partition, oldest batch first."""

    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    coordinator_epoch: int = -1
    last_timestamp: int = NO_TIMESTAMP
    current_txn_first_offset: int | None = None
    batch_metadata: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))

    @classmethod
    def empty(cls, producer_id: int) -> ProducerStateEntry:
        return cls(producer_id)

    def copy(self) -> ProducerStateEntry:
        return ProducerStateEntry(self.producer_id, self.producer_epoch, self.coordinator_epoch,
                                  self.last_timestamp, self.current_txn_first_offset,
                                  deque(self.batch_metadata, maxlen=NUM_BATCHES_TO_RETAIN))

    @property
    def is_empty(self) -> bool:
        return not self.batch_metadata

    @property
    def first_seq(self) -> int:
        return self.batch_metadata[0].first_seq if self.batch_metadata else NO_SEQUENCE

    @property
    def last_seq(self) -> int:
        return self.batch_metadata[-1].last_seq if self.batch_metadata else NO_SEQUENCE

    @property
    def last_data_offset(self) -> int:
        return self.batch_metadata[-1].last_offset if self.batch_metadata else -1

    @property
    def last_offset_delta(self) -> int:
        return self.batch_metadata[-1].offset_delta if self.batch_metadata else 0

    def maybe_update_producer_epoch(self, producer_epoch: int) -> bool:
        """A new epoch forgets the batches of the old one (their sequences start again at 0)."""
        if self.producer_epoch != producer_epoch:
            self.batch_metadata.clear()
            self.producer_epoch = producer_epoch
            return True
        return False

    def add_batch(self, producer_epoch: int, last_seq: int, last_offset: int, offset_delta: int,
                  timestamp: int) -> None:
        if self.producer_epoch != producer_epoch:
            self.maybe_update_producer_epoch(producer_epoch)
        # The deque's maxlen drops the oldest of the five retained batches.
        self.batch_metadata.append(BatchMetadata(last_seq, last_offset, offset_delta, timestamp))
        self.last_timestamp = timestamp

    def update(self, next_entry: ProducerStateEntry) -> None:
        """Fold the entry a validated append produced into this one (Kafka's ``update``)."""
        self.maybe_update_producer_epoch(next_entry.producer_epoch)
        self.batch_metadata.extend(next_entry.batch_metadata)
        self.coordinator_epoch = next_entry.coordinator_epoch
        self.current_txn_first_offset = next_entry.current_txn_first_offset
        self.last_timestamp = next_entry.last_timestamp

    def find_duplicate_batch(self, producer_epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        """The retained batch with exactly this epoch and sequence range: a producer's retry."""
        if producer_epoch != self.producer_epoch:
            return None
        return self.batch_with_sequence_range(first_seq, last_seq)

    def batch_with_sequence_range(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for batch in self.batch_metadata:
            if batch.last_seq == last_seq and batch.first_seq == first_seq:
                return batch
        return None

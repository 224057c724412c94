"""One transactional id's state (Kafka's ``TransactionMetadata`` and ``TransactionState``), and its record.

The state is what the last ``__transaction_state`` record for the id says; the coordinator changes it
only by writing a new record and replaying it (``TransactionStateManager.replay``).

>>> m = TransactionMetadata("tx", producer_id=4, producer_epoch=0, txn_timeout_ms=60000)
>>> decode_value("tx", encode_value(m)).producer_id
4
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from moldau.protocol import api, messages
from moldau.protocol.errors import ProtocolError

TRANSACTION_STATE_TOPIC = "__transaction_state"
KEY_VERSION = 0
VALUE_VERSION = 0  # Kafka writes v0 unless the client uses transaction.version 2 (KIP-890)
_INT16 = struct.Struct(">h")
TopicPartition = tuple[str, int]


class TransactionState(enum.IntEnum):
    """Kafka's ``TransactionState`` with its stored ids and the names Admin clients see."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def from_name(cls, name: str) -> TransactionState | None:
        return next((s for s in cls if s.display_name.lower() == name.lower()), None)

    @property
    def is_prepare(self) -> bool:
        return self in (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT)

    @property
    def is_complete(self) -> bool:
        return self in (TransactionState.EMPTY, TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT)


class TransactionRecordError(ValueError):
    """A ``__transaction_state`` record this broker cannot read."""


@dataclass(slots=True)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    txn_timeout_ms: int
    state: TransactionState = TransactionState.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    txn_start_timestamp_ms: int = -1
    txn_last_update_timestamp_ms: int = -1
    last_producer_epoch: int = -1

    def copy(self, **changes: object) -> TransactionMetadata:
        fields = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        fields["partitions"] = set(self.partitions)
        fields.update(changes)
        return TransactionMetadata(**fields)  # type: ignore[arg-type]


def encode_key(transactional_id: str) -> bytes:
    return _INT16.pack(KEY_VERSION) + api.encode_message(
        "TransactionLogKey", 0, messages.TransactionLogKey(transactional_id=transactional_id))


def decode_key(data: bytes) -> str:
    try:
        (version,) = _INT16.unpack_from(data, 0)
        if version != KEY_VERSION:
            raise TransactionRecordError(f"unknown TransactionLogKey version {version}")
        return api.decode_message("TransactionLogKey", 0, data, 2)[0].transactional_id
    except (ProtocolError, struct.error) as exc:
        raise TransactionRecordError(f"unreadable TransactionLogKey: {exc}") from None


def encode_value(m: TransactionMetadata) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(m.partitions):
        by_topic.setdefault(topic, []).append(partition)
    value = messages.TransactionLogValue(
        producer_id=m.producer_id, producer_epoch=m.producer_epoch, transaction_timeout_ms=m.txn_timeout_ms,
        transaction_status=int(m.state),
        transaction_partitions=[messages.TransactionLogValue.PartitionsSchema(topic=t, partition_ids=ids)
                                for t, ids in by_topic.items()],
        transaction_last_update_timestamp_ms=m.txn_last_update_timestamp_ms,
        transaction_start_timestamp_ms=m.txn_start_timestamp_ms)
    return _INT16.pack(VALUE_VERSION) + api.encode_message("TransactionLogValue", VALUE_VERSION, value)


def decode_value(transactional_id: str, data: bytes) -> TransactionMetadata:
    try:
        (version,) = _INT16.unpack_from(data, 0)
        value = api.decode_message("TransactionLogValue", version, data, 2)[0]
        state = TransactionState(value.transaction_status)
    except (ProtocolError, struct.error, ValueError) as exc:
        raise TransactionRecordError(f"unreadable TransactionLogValue of {transactional_id!r}: {exc}") from None
    partitions = {(p.topic, i) for p in value.transaction_partitions or () for i in p.partition_ids}
    return TransactionMetadata(transactional_id, value.producer_id, value.producer_epoch,
                               value.transaction_timeout_ms, state, partitions,
                               value.transaction_start_timestamp_ms, value.transaction_last_update_timestamp_ms)

"""The records the group coordinator writes to `__consumer_offsets`, framed as Kafka frames them.

Kafka's `CoordinatorRecordSerde`: the key is an int16 record type (`CoordinatorRecordType`, the
schema's `apiKey`: 0/1 offset commit, 2 group metadata) followed by the key struct at version 0; the
value is an int16 version followed by the value struct at that version; a null value is a tombstone.

>>> key = OffsetCommitKey("g", "t", 0)
>>> decode_key(encode_key(key)) == key
True
>>> partition_for("my-group", 50)
12
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from moldau.protocol import api, messages
from moldau.protocol.errors import ProtocolError

OFFSETS_TOPIC = "__consumer_offsets"
LEGACY_OFFSET_COMMIT, OFFSET_COMMIT, GROUP_METADATA = 0, 1, 2
# Versions Kafka 4.x writes: OffsetCommitValue v3 (v1 only with an expire timestamp), GroupMetadataValue v3.
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3
_INT16 = struct.Struct(">h")


class CoordinatorRecordError(ValueError):
    """A `__consumer_offsets` record whose key or value this broker cannot read."""


@dataclass(slots=True, frozen=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(slots=True, frozen=True)
class GroupMetadataKey:
    group: str


RecordKey = OffsetCommitKey | GroupMetadataKey


def java_string_hash(text: str) -> int:
    """Java's `String.hashCode` (UTF-16 code units, 32-bit wrap-around)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """Kafka's `Utils.abs(groupId.hashCode()) % groupMetadataTopicPartitionCount` (abs of MIN_VALUE is 0)."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


def encode_key(key: RecordKey) -> bytes:
    if isinstance(key, OffsetCommitKey):
        body = messages.OffsetCommitKey(group=key.group, topic=key.topic, partition=key.partition)
        return _INT16.pack(OFFSET_COMMIT) + api.encode_message("OffsetCommitKey", 0, body)
    return _INT16.pack(GROUP_METADATA) + api.encode_message("GroupMetadataKey", 0, messages.GroupMetadataKey(
        group=key.group))


def decode_key(data: bytes) -> RecordKey | None:
    """The key of a stored record, or None for record types of other group kinds (KIP-848, share, streams)."""
    if len(data) < 2:
        raise CoordinatorRecordError(f"coordinator record key of {len(data)} bytes has no type")
    (record_type,) = _INT16.unpack_from(data, 0)
    try:
        if record_type in (LEGACY_OFFSET_COMMIT, OFFSET_COMMIT):
            body, _ = api.decode_message("OffsetCommitKey", 0, data, 2)
            return OffsetCommitKey(body.group, body.topic, body.partition)
        if record_type == GROUP_METADATA:
            body, _ = api.decode_message("GroupMetadataKey", 0, data, 2)
            return GroupMetadataKey(body.group)
    except ProtocolError as exc:
        raise CoordinatorRecordError(f"unreadable coordinator record key of type {record_type}: {exc}") from None
    return None


def encode_value(name: str, version: int, body: object) -> bytes:
    return _INT16.pack(version) + api.encode_message(name, version, body)


def decode_value(name: str, data: bytes) -> object:
    if len(data) < 2:
        raise CoordinatorRecordError(f"{name} of {len(data)} bytes has no version")
    (version,) = _INT16.unpack_from(data, 0)
    try:
        return api.decode_message(name, version, data, 2)[0]
    except ProtocolError as exc:
        raise CoordinatorRecordError(f"unreadable {name} v{version}: {exc}") from None

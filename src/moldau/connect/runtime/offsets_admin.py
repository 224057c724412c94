"""KIP-875: read, alter and reset a connector's offsets through the REST API.

Source connectors: the framework's offset store, keyed by source partition. Sink connectors: the committed
offsets of the consumer group `connect-<connector>`, shown as `{"kafka_topic", "kafka_partition"}` ->
`{"kafka_offset"}` (SinkUtils' keys).
"""

from __future__ import annotations

from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient

from moldau.connect.api.errors import BadRequestException
from moldau.connect.runtime.sink_task import consumer_group_id
from moldau.connect.storage.offsets import OffsetBackingStore, offset_key

ADMIN_TIMEOUT_S = 30
KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET = "kafka_topic", "kafka_partition", "kafka_offset"


def modified_message(connector_accepted: bool, reset: bool) -> dict[str, str]:
    """The `{"message": ...}` Kafka returns (Worker.completeModifyOffsetsCallback)."""
    kind = "reset" if reset else "altered"
    if connector_accepted:
        return {"message": f"The offsets for this connector have been {kind} successfully"}
    return {"message": f"The Connect framework-managed offsets for this connector have been {kind} successfully. "
                       f"However, if this connector manages offsets externally, they will need to be manually "
                       f"{kind} in the system that the connector uses."}


def source_offsets(store: OffsetBackingStore, connector: str) -> dict[str, Any]:
    store.refresh()
    return {"offsets": [{"partition": p, "offset": o} for p, o in store.connector_offsets(connector)]}


def sink_offsets(admin_config: dict[str, Any], connector: str) -> dict[str, Any]:
    admin = AdminClient(admin_config)
    request = confluent_kafka.ConsumerGroupTopicPartitions(consumer_group_id(connector))
    try:
        result = admin.list_consumer_group_offsets([request])[request.group_id].result(ADMIN_TIMEOUT_S)
    except confluent_kafka.KafkaException as exc:
        if exc.args[0].code() in (confluent_kafka.KafkaError.GROUP_ID_NOT_FOUND,):
            return {"offsets": []}
        raise
    return {"offsets": [{"partition": {KAFKA_TOPIC: tp.topic, KAFKA_PARTITION: tp.partition},
                         "offset": {KAFKA_OFFSET: tp.offset}}
                        for tp in sorted(result.topic_partitions, key=lambda t: (t.topic, t.partition))
                        if tp.offset >= 0]}


def parse_offsets_body(body: Any) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    if not isinstance(body, dict) or not isinstance(body.get("offsets"), list) or not body["offsets"]:
        raise BadRequestException("The offsets to be altered may not be null or empty")
    parsed = []
    for entry in body["offsets"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("partition"), dict):
            raise BadRequestException("Partitions / offsets need to be provided for an alter offsets request")
        parsed.append((entry["partition"], entry.get("offset")))
    return parsed


def alter_source_offsets(store: OffsetBackingStore, connector: str,
                         offsets: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
    store.put(connector, {offset_key(connector, partition): offset for partition, offset in offsets})


def reset_source_offsets(store: OffsetBackingStore, connector: str) -> None:
    store.refresh()
    keys = {offset_key(connector, p): None for p, _ in store.connector_offsets(connector)}
    if keys:
        store.put(connector, keys)


def alter_sink_offsets(admin_config: dict[str, Any], connector: str,
                       offsets: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
    partitions = []
    for partition, offset in offsets:
        try:
            topic, index = str(partition[KAFKA_TOPIC]), int(partition[KAFKA_PARTITION])
        except (KeyError, TypeError, ValueError):
            raise BadRequestException(f"Sink connector partitions need '{KAFKA_TOPIC}' and '{KAFKA_PARTITION}' "
                                      f"keys, got {partition}") from None
        if offset is None:
            raise BadRequestException("Resetting one partition of a sink connector is not supported; use DELETE "
                                      "to reset all of them")
        try:
            value = int(offset[KAFKA_OFFSET])
        except (KeyError, TypeError, ValueError):
            raise BadRequestException(f"Sink connector offsets need a '{KAFKA_OFFSET}' key, got {offset}") from None
        if value < 0:
            raise BadRequestException(f"Offsets must be non-negative, got {value} for {topic}-{index}")
        partitions.append(confluent_kafka.TopicPartition(topic, index, value))
    admin = AdminClient(admin_config)
    request = confluent_kafka.ConsumerGroupTopicPartitions(consumer_group_id(connector), partitions)
    admin.alter_consumer_group_offsets([request])[request.group_id].result(ADMIN_TIMEOUT_S)


def reset_sink_offsets(admin_config: dict[str, Any], connector: str) -> None:
    """Kafka deletes the connector's consumer group, which forgets all its committed offsets."""
    admin = AdminClient(admin_config)
    group = consumer_group_id(connector)
    try:
        admin.delete_consumer_groups([group])[group].result(ADMIN_TIMEOUT_S)
    except confluent_kafka.KafkaException as exc:
        if exc.args[0].code() != confluent_kafka.KafkaError.GROUP_ID_NOT_FOUND:
            raise

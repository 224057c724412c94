"""Given a registry, when confluent-kafka's schema-registry serializers produce records through Moldau,
then the deserializers read back the same values, with the writer's schema fetched by id."""

from __future__ import annotations

import json
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.fixtures import unique_topic

USER_AVRO = """{"type": "record", "name": "User", "namespace": "example",
  "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"},
             {"name": "email", "type": ["null", "string"], "default": null}]}"""


def round_trip(registry, serializer, deserializer, values: list) -> list:
    topic = unique_topic("sr")
    producer = Producer({"bootstrap.servers": registry.bootstrap_servers})
    for value in values:
        payload = serializer(value, SerializationContext(topic, MessageField.VALUE))
        assert payload[0] == 0  # Confluent's wire format: magic byte 0, then the 4-byte schema id
        producer.produce(topic, value=payload)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": registry.bootstrap_servers, "group.id": str(uuid.uuid4())})
    consumer.assign([TopicPartition(topic, 0, 0)])  # auto-created with one partition; no group rebalance
    received = []
    try:
        while len(received) < len(values):
            message = consumer.poll(30)
            assert message is not None, f"only {len(received)} of {len(values)} records arrived"
            assert message.error() is None, message.error()
            received.append(deserializer(message.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    return received


def test_avro_round_trip(registry):
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

    client = SchemaRegistryClient({"url": registry.url})
    values = [{"name": "ada", "age": 36, "email": None}, {"name": "alan", "age": 41, "email": "a@t.uk"}]
    got = round_trip(registry, AvroSerializer(client, USER_AVRO),
                     AvroDeserializer(SchemaRegistryClient({"url": registry.url})), values)
    assert got == values
    subjects = client.get_subjects()
    assert len(subjects) == 1 and subjects[0].endswith("-value")
    latest = client.get_latest_version(subjects[0])
    assert latest.version == 1 and latest.schema_id >= 1


def test_json_schema_round_trip(registry):
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    schema = json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object",
        "properties": {"id": {"type": "integer"}, "items": {"type": "array", "items": {"type": "string"}}},
        "required": ["id"],
    })
    client = SchemaRegistryClient({"url": registry.url})
    values = [{"id": 1, "items": ["a", "b"]}, {"id": 2, "items": []}]
    got = round_trip(registry, JSONSerializer(schema, client), JSONDeserializer(None, schema_registry_client=client),
                     values)
    assert got == values
    registered = client.get_latest_version(client.get_subjects()[0])
    assert registered.schema.schema_type == "JSON"


def order_message_class():
    """A Protobuf message class built at run time (no protoc here), in a pool of its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    file = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3")
    order = file.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    order.field.add(name="items", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_protobuf_round_trip(registry):
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    order = order_message_class()
    client = SchemaRegistryClient({"url": registry.url})
    values = [order(id=1, items=["a", "b"]), order(id=2)]
    got = round_trip(registry, ProtobufSerializer(order, client, {"use.deprecated.format": False}),
                     ProtobufDeserializer(order, {"use.deprecated.format": False}, client), values)
    assert [(m.id, list(m.items)) for m in got] == [(1, ["a", "b"]), (2, [])]
    registered = client.get_latest_version(client.get_subjects()[0])
    assert registered.schema.schema_type == "PROTOBUF"
    # The serializer sent a base64 descriptor; like Confluent, the registry keeps (and answers) .proto text.
    assert registered.schema.schema_str.startswith('syntax = "proto3";') and "message Order" in \
        registered.schema.schema_str


def test_kafka_python_producer_with_registry_ids_read_by_avro_deserializer(registry):
    """A second client library: kafka-python writes Confluent's wire format by hand (magic 0, the id the
    registry gave over plain HTTP, fastavro's body); confluent-kafka's AvroDeserializer reads it back."""
    import io
    import struct

    import fastavro
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from kafka import KafkaProducer

    from tests.registry.http import call

    topic = unique_topic("sr-kp")
    status, body = call(registry.url, "POST", f"/subjects/{topic}-value/versions", {"schema": USER_AVRO})
    assert status == 200
    parsed = fastavro.parse_schema(json.loads(USER_AVRO))
    values = [{"name": "grace", "age": 85, "email": None}, {"name": "linus", "age": 56, "email": "l@k.org"}]
    producer = KafkaProducer(bootstrap_servers=registry.bootstrap_servers)
    for value in values:
        buffer = io.BytesIO()
        buffer.write(struct.pack(">bI", 0, body["id"]))
        fastavro.schemaless_writer(buffer, parsed, value)
        producer.send(topic, buffer.getvalue()).get(timeout=30)
    producer.close()
    consumer = Consumer({"bootstrap.servers": registry.bootstrap_servers, "group.id": str(uuid.uuid4())})
    consumer.assign([TopicPartition(topic, 0, 0)])
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    got = []
    try:
        while len(got) < len(values):
            message = consumer.poll(30)
            assert message is not None and message.error() is None
            got.append(deserializer(message.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    assert got == values

"""ProtobufConverter through the built-in Schema Registry: a Postgres source writes protobuf records in Confluent's
wire format, the Postgres sink reads them back; the bytes decode with confluent-kafka's ProtobufDeserializer and
a message class built by the `protobuf` package from the registered descriptor; subject name strategies and
`use.latest.version` follow Confluent's serializer configs."""

from __future__ import annotations

import datetime as dt

import pytest

from moldau.connect.api.data import INT64, OPTIONAL_STRING, Schema, Struct, timestamp_schema
from moldau.connect.converters.protobuf import ProtobufConverter, decode_indexes, encode_indexes
from moldau.connect.runtime.standalone import standalone_herder
from moldau.testing import running_broker
from tests.connect.connect_fixtures import FAST_WORKER, read_topic, wait_until
from tests.connect.pg_fixtures import postgres, sql  # noqa: F401 (fixture)
from tests.fixtures import unique_topic

LINE = Schema.struct([("sku", Schema("string")), ("qty", Schema("int32"))], name="Line")
ORDER = Schema.struct([("id", INT64), ("customer", OPTIONAL_STRING), ("placed_at", timestamp_schema(True)),
                       ("tags", Schema.array(Schema("string"), optional=True)),
                       ("attrs", Schema.map(Schema("string"), Schema("int64"), optional=True)),
                       ("lines", Schema.array(LINE, optional=True))], name="shop.Order")


@pytest.fixture(scope="module")
def registry_broker():
    with running_broker(schema_registry=True) as broker:
        yield broker


def order(customer: str | None = "ada") -> Struct:
    return Struct(ORDER, {"id": 7, "customer": customer, "placed_at": dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
                          "tags": ["a", "b"], "attrs": {"x": 1}, "lines": [Struct(LINE, {"sku": "s1", "qty": 2})]})


def converter(url: str, **configs: str) -> ProtobufConverter:
    out = ProtobufConverter()
    out.configure({"schema.registry.url": url, **configs}, is_key=False)
    return out


def test_message_indexes_use_confluents_encoding():
    assert encode_indexes([0]) == b"\x00"
    assert encode_indexes([1, 2]) == bytes([4, 2, 4])  # zigzag varints: count 2, then 1 and 2
    assert decode_indexes(bytes([4, 2, 4]) + b"rest", 0) == ([1, 2], 3)


def test_round_trip_and_the_bytes_decode_with_the_protobuf_package(registry_broker):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
    from google.protobuf.message_factory import GetMessageClass

    url = registry_broker.schema_registry_url
    topic = unique_topic("proto")
    conv = converter(url)
    data = conv.from_connect_data(topic, ORDER, order(customer=None))
    assert data[0] == 0 and data[5] == 0  # magic byte, 4-byte id, message indexes [0]
    back = conv.to_connect_data(topic, data)
    assert back.value.to_dict() == order(customer=None).to_dict()
    assert back.schema.name == "shop.Order" and back.schema.field("customer").schema.optional

    client = SchemaRegistryClient({"url": url})
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF" and "message Order" in latest.schema.schema_str
    # Rebuild the message class from the registry's serialized descriptor with the protobuf package alone.
    fdp = descriptor_pb2.FileDescriptorProto.FromString(
        __import__("base64").b64decode(client.get_schema(latest.schema_id, fmt="serialized").schema_str))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(fdp.SerializeToString())
    message_type = GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    decoded = ProtobufDeserializer(message_type, {"use.deprecated.format": False})(
        conv.from_connect_data(topic, ORDER, order()), SerializationContext(topic, MessageField.VALUE))
    assert decoded.id == 7 and decoded.customer == "ada" and list(decoded.tags) == ["a", "b"]
    assert decoded.placed_at.seconds == int(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp())
    assert dict(decoded.attrs) == {"x": 1} and decoded.lines[0].sku == "s1" and decoded.lines[0].qty == 2


def test_subject_name_strategies_and_use_latest_version(registry_broker):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    url = registry_broker.schema_registry_url
    topic = unique_topic("proto-strategy")
    client = SchemaRegistryClient({"url": url})
    record = converter(url, **{"value.subject.name.strategy":
                               "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"})
    first = record.from_connect_data(topic, ORDER, order())
    assert f"{topic}-shop.Order" in client.get_subjects()
    # use.latest.version without auto-registration writes with the subject's latest schema id
    latest = converter(url, **{"auto.register.schemas": "false", "use.latest.version": "true",
                               "value.subject.name.strategy": "TopicRecordNameStrategy"})
    second = latest.from_connect_data(topic, ORDER, order())
    assert second[1:5] == first[1:5] and latest.to_connect_data(topic, second).value.get("customer") == "ada"
    with pytest.raises(Exception, match="(?i)not found|40401"):
        converter(url, **{"auto.register.schemas": "false", "use.latest.version": "true"}).from_connect_data(
            unique_topic("proto-none"), ORDER, order())


@pytest.mark.timeout(300)
def test_postgres_source_to_sink_through_protobuf(registry_broker, postgres):  # noqa: F811
    url = registry_broker.schema_registry_url
    source, target = unique_topic("pb_src").replace("-", "_"), unique_topic("pb_dst").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {source} (id SERIAL PRIMARY KEY, name TEXT, score BIGINT, "
                      "updated_at TIMESTAMPTZ NOT NULL DEFAULT date_trunc('milliseconds', now()))")
    sql(postgres.url, f"INSERT INTO {source} (name, score) VALUES ('a', 1), (NULL, 2), ('c', NULL)")
    topic = f"pb-{source}"
    converters = {"value.converter": "io.confluent.connect.protobuf.ProtobufConverter",
                  "value.converter.schema.registry.url": url}
    herder = standalone_herder({"bootstrap.servers": registry_broker.bootstrap_servers, **FAST_WORKER, **converters,
                                "key.converter": "org.apache.kafka.connect.storage.StringConverter"})
    try:
        herder.put_connector_config("pb-src", {
            "connector.class": "PostgresSource", "connection.url": postgres.url, "mode": "incrementing",
            "incrementing.column.name": "id", "table.whitelist": source, "topic.prefix": "pb-",
            "poll.interval.ms": "100", "topic.creation.default.replication.factor": "1",
            "topic.creation.default.partitions": "1"}, allow_replace=False)
        records = read_topic(registry_broker.bootstrap_servers, topic, 3)
        assert len(records) == 3 and all(m.value()[0] == 0 and m.value()[5] == 0 for m in records)
        herder.put_connector_config("pb-sink", {
            "connector.class": "PostgresSink", "connection.url": postgres.url, "topics": topic,
            "table.name.format": target, "insert.mode": "upsert", "pk.mode": "record_value", "pk.fields": "id",
            "auto.create": "true"}, allow_replace=False)
        expected = sql(postgres.url, f"SELECT id, name, score, updated_at FROM {source} ORDER BY id")
        wait_until(lambda: sql(postgres.url, "SELECT to_regclass(%s) IS NOT NULL", (target,))[0][0] and sql(
            postgres.url, f"SELECT id, name, score, updated_at FROM {target} ORDER BY id") == expected,
            120, "the protobuf copy to equal the source")
    finally:
        herder.stop()

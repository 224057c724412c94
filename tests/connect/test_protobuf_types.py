"""ProtobufConverter keeps every Connect type, as Confluent's ProtobufData maps it: int8/int16 through
`(confluent.field_meta)` params, Decimal as `confluent.type.Decimal`, Date / Time / Timestamp as
`google.type.Date` / `google.type.TimeOfDay` / `google.protobuf.Timestamp`, optional vs required (proto3
`optional`, or `google.protobuf.*Value` wrappers with `wrapper.for.nullables`), arrays of structs and maps.
A record round-trips through fromConnectData/toConnectData with its schema intact (Struct equality compares the
schemas); confluent-kafka's ProtobufDeserializer reads the bytes, and its ProtobufSerializer's bytes read back."""

from __future__ import annotations

import base64
import datetime as dt
import decimal

import pytest

from moldau.connect.api.data import (
    DATE,
    TIME,
    Schema,
    Struct,
    decimal_schema,
    replace_schema,
    timestamp_schema,
)
from moldau.connect.converters.protobuf import ProtobufConverter
from moldau.testing import running_broker
from tests.fixtures import unique_topic

DATE_SCHEMA = Schema("int32", name=DATE, version=1)
TIME_SCHEMA = Schema("int32", name=TIME, version=1)
AMOUNT = replace_schema(decimal_schema(2), parameters={"scale": "2", "connect.decimal.precision": "10"})
# Nested structs read back with the full name of their nested message
LINE = Schema.struct([("sku", Schema("string")), ("qty", Schema("int16")), ("price", AMOUNT)],
                     name="moldau.test.AllTypes.Line")
ALL = Schema.struct([
    ("i8", Schema("int8")), ("i16", Schema("int16")), ("i32", Schema("int32")), ("i64", Schema("int64")),
    ("f32", Schema("float32")), ("f64", Schema("float64")), ("flag", Schema("boolean")), ("text", Schema("string")),
    ("raw", Schema("bytes")),
    ("o_i8", Schema("int8", optional=True)), ("o_i16", Schema("int16", optional=True)),
    ("o_i64", Schema("int64", optional=True)), ("o_text", Schema("string", optional=True)),
    ("o_raw", Schema("bytes", optional=True)),
    ("amount", AMOUNT), ("o_amount", decimal_schema(4, optional=True)),
    ("day", DATE_SCHEMA), ("o_day", replace_schema(DATE_SCHEMA, optional=True)),
    ("at", TIME_SCHEMA), ("o_at", replace_schema(TIME_SCHEMA, optional=True)),
    ("ts", timestamp_schema()), ("o_ts", timestamp_schema(optional=True)),
    ("line", LINE), ("o_line", replace_schema(LINE, optional=True)),
    ("lines", Schema.array(LINE, optional=True)), ("tags", Schema.array(Schema("string"), optional=True)),
    ("shorts", Schema.array(Schema("int16"), optional=True)),
    ("days", Schema.array(DATE_SCHEMA, optional=True)),
    ("attrs", Schema.map(Schema("string"), Schema("int64"), optional=True)),
    ("by_id", Schema.map(Schema("int32"), LINE, optional=True)),
    ("prices", Schema.map(Schema("string"), AMOUNT, optional=True)),  # Confluent's generic map entry
    ("by_code", Schema.map(Schema("int8"), Schema("string", optional=True), optional=True)),
], name="moldau.test.AllTypes")


def line(sku: str, qty: int, price: str) -> Struct:
    return Struct(LINE, {"sku": sku, "qty": qty, "price": decimal.Decimal(price)})


def full() -> Struct:
    return Struct(ALL, {
        "i8": -128, "i16": 32767, "i32": -2**31, "i64": 2**63 - 1, "f32": 1.5, "f64": -2.25, "flag": True,
        "text": "héllo", "raw": b"\x00\xff", "o_i8": 7, "o_i16": -300, "o_i64": 0, "o_text": "", "o_raw": b"",
        "amount": decimal.Decimal("-12345678.90"), "o_amount": decimal.Decimal("0.0001"),
        "day": dt.date(2024, 2, 29), "o_day": dt.date(1969, 12, 31),
        "at": dt.time(13, 45, 30, 123000), "o_at": dt.time(0, 0, 0, 1000),
        "ts": dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.UTC),
        "o_ts": dt.datetime(1960, 1, 1, tzinfo=dt.UTC),
        "line": line("a", 1, "1.10"), "o_line": line("b", -2, "0.00"),
        "lines": [line("c", 3, "3.30"), line("d", 4, "-4.40")], "tags": ["x", "y"], "shorts": [1, -1],
        "days": [dt.date(2000, 1, 1)], "attrs": {"k": 5}, "by_id": {9: line("e", 5, "5.50")},
        "prices": {"p": decimal.Decimal("99.99")}, "by_code": {-3: "minus three", 4: "four"}})


def sparse() -> Struct:
    """Optional fields null; the repeated ones empty (protobuf has no null list)."""
    return Struct(ALL, {
        "i8": 0, "i16": 0, "i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0, "flag": False, "text": "", "raw": b"",
        "o_i8": None, "o_i16": None, "o_i64": None, "o_text": None, "o_raw": None,
        "amount": decimal.Decimal("0.00"), "o_amount": None, "day": dt.date(1970, 1, 1), "o_day": None,
        "at": dt.time(0), "o_at": None, "ts": dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "o_ts": None,
        "line": line("", 0, "0.00"), "o_line": None, "lines": [], "tags": [], "shorts": [], "days": [],
        "attrs": {}, "by_id": {}, "prices": {}, "by_code": {}})


@pytest.fixture(scope="module")
def registry_url():
    with running_broker(schema_registry=True) as broker:
        yield broker.schema_registry_url


def converter(url: str, **configs: str) -> ProtobufConverter:
    out = ProtobufConverter()
    out.configure({"schema.registry.url": url, **configs}, is_key=False)
    return out


def test_every_connect_type_round_trips_with_its_schema(registry_url):
    topic = unique_topic("pb-types")
    conv = converter(registry_url)
    for record in (full(), sparse()):
        back = converter(registry_url).to_connect_data(topic, conv.from_connect_data(topic, ALL, record))
        assert back.schema == ALL
        assert back.value == record, (back.value.to_dict(), record.to_dict())
    text = conv.client.get_latest_version(f"{topic}-value").schema.schema_str
    # Confluent's representation, as its ProtobufData writes it
    for expected in ('import "confluent/meta.proto"', 'import "google/type/date.proto"',
                     'import "google/type/timeofday.proto"', 'import "confluent/type/decimal.proto"',
                     'int32 i8 = 1 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int8" }] }]',
                     "optional int32 o_i16 = 11", ".google.type.Date day = 17", "optional .google.type.Date o_day",
                     ".google.type.TimeOfDay at = 19", "optional .google.protobuf.Timestamp o_ts",
                     ('.confluent.type.Decimal amount = 15 [(confluent.field_meta) = { params: [{ key: "precision", '
                      'value: "10" }, { key: "scale", value: "2" }] }]'), "map<string, int64> attrs",
                     "map<int32, Line> by_id", "repeated PricesEntry prices", "repeated Line lines"):
        assert expected in text, (expected, text)


def test_wrapper_for_nullables(registry_url):
    schema = Schema.struct([("id", Schema("int64")), ("o_i16", Schema("int16", optional=True)),
                            ("o_s", Schema("string", optional=True)), ("o_f", Schema("float32", optional=True))],
                           name="moldau.test.Wrapped")
    topic = unique_topic("pb-wrap")
    configs = {"wrapper.for.nullables": "true"}
    for values in ({"id": 1, "o_i16": 5, "o_s": "", "o_f": 0.0}, {"id": 2, "o_i16": None, "o_s": None, "o_f": None}):
        record = Struct(schema, values)
        data = converter(registry_url, **configs).from_connect_data(topic, schema, record)
        back = converter(registry_url, **configs).to_connect_data(topic, data)
        assert back.schema == schema and back.value == record
    text = converter(registry_url).client.get_latest_version(f"{topic}-value").schema.schema_str
    assert ".google.protobuf.Int32Value o_i16" in text and '"connect.type", value: "int16"' in text
    assert ".google.protobuf.StringValue o_s" in text and "int64 id = 1;" in text
    # Confluent's default reader (neither option): every field optional, wrappers are structs
    plain = converter(registry_url, **{"optional.for.nullables": "false"}).to_connect_data(topic, data)
    assert all(f.schema.optional for f in plain.schema.fields) and plain.schema.field("o_s").schema.type == "struct"


def _message_type(registry_url: str, schema_id: int):
    """A message class for a registered schema, built from its serialized descriptor by the protobuf package
    alone, with the imports as confluent-kafka and googleapis-common-protos ship them."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from confluent_kafka.schema_registry.confluent.type import decimal_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2, wrappers_pb2
    from google.protobuf.message_factory import GetMessageClass
    from google.type import date_pb2, timeofday_pb2

    client = SchemaRegistryClient({"url": registry_url})
    fdp = descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode(client.get_schema(schema_id, fmt="serialized").schema_str))
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, meta_pb2, decimal_pb2, timestamp_pb2, wrappers_pb2, date_pb2, timeofday_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(fdp.SerializeToString())
    return GetMessageClass(pool.FindMessageTypeByName("moldau.test.AllTypes"))


def test_confluent_kafka_reads_and_writes_the_same_types(registry_url):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from confluent_kafka.schema_registry.protobuf import (
        ProtobufDeserializer,
        ProtobufSerializer,
        protobuf_to_decimal,
    )
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = unique_topic("pb-interop")
    conv = converter(registry_url)
    data = conv.from_connect_data(topic, ALL, full())
    schema_id = int.from_bytes(data[1:5], "big")
    message_type = _message_type(registry_url, schema_id)
    context = SerializationContext(topic, MessageField.VALUE)
    decoded = ProtobufDeserializer(message_type, {"use.deprecated.format": False})(data, context)
    assert (decoded.i8, decoded.i16, decoded.o_i16, decoded.i64) == (-128, 32767, -300, 2**63 - 1)
    assert protobuf_to_decimal(decoded.amount) == decimal.Decimal("-12345678.90")
    assert (decoded.day.year, decoded.day.month, decoded.day.day) == (2024, 2, 29)
    assert (decoded.at.hours, decoded.at.minutes, decoded.at.seconds, decoded.at.nanos) == (13, 45, 30, 123_000_000)
    assert decoded.ts.ToDatetime(tzinfo=dt.UTC) == full().get("ts") and decoded.HasField("o_line")
    assert [entry.sku for entry in decoded.lines] == ["c", "d"] and decoded.by_id[9].qty == 5
    assert {p.key: protobuf_to_decimal(p.value) for p in decoded.prices} == {"p": decimal.Decimal("99.99")}
    params = decoded.DESCRIPTOR.fields_by_name["i8"].GetOptions().Extensions[meta_pb2.field_meta].params
    assert dict(params) == {"connect.type": "int8"}

    # The other way: confluent-kafka's serializer registers the message's descriptor (the known imports without
    # references) and its bytes read back as the same Connect record.
    other = unique_topic("pb-interop-in")
    serializer = ProtobufSerializer(message_type, SchemaRegistryClient({"url": registry_url}),
                                    {"use.deprecated.format": False})
    written = serializer(decoded, SerializationContext(other, MessageField.VALUE))
    back = converter(registry_url).to_connect_data(other, written)
    assert back.schema == ALL and back.value == full()


def test_a_schema_registered_as_proto_text_reads_as_confluent_maps_it(registry_url):
    """A .proto registered as text (as Java clients do) with Confluent's field metadata, an enum, a oneof and an
    unsigned field; bytes written by the protobuf package read back with ProtobufData's mapping (enum symbols as
    strings, uint32 widened to int64, oneof members optional)."""
    from confluent_kafka.schema_registry import Schema as RegisteredSchema
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    from moldau.registry.formats.protobuf import well_known_files

    text = """syntax = "proto3";
package acme;
import "confluent/meta.proto";
import "google/type/date.proto";
import "confluent/type/decimal.proto";
message Reading {
  int32 small = 1 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int8" }] }];
  uint32 count = 2;
  Kind kind = 3;
  .google.type.Date day = 4;
  optional string note = 5;
  confluent.type.Decimal price = 6 [(confluent.field_meta).params = { key: "scale", value: "3" }];
  oneof source {
    string sensor = 7;
    int64 station = 8;
  }
  enum Kind { UNKNOWN = 0; HOT = 1; COLD = 2; }
}
"""
    topic = unique_topic("pb-text")
    client = SchemaRegistryClient({"url": registry_url})
    schema_id = client.register_schema(f"{topic}-value", RegisteredSchema(text, "PROTOBUF"))
    fdp = descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode(client.get_schema(schema_id, fmt="serialized").schema_str))
    pool = descriptor_pool.DescriptorPool()
    for name in fdp.dependency:
        for serialized in well_known_files(name) or []:
            try:
                pool.AddSerializedFile(serialized)
            except (TypeError, ValueError):
                pass  # descriptor.proto, needed twice
    pool.AddSerializedFile(fdp.SerializeToString())
    reading = GetMessageClass(pool.FindMessageTypeByName("acme.Reading"))(
        small=-5, count=4_000_000_000, kind=2, note="n", station=77)
    reading.day.year, reading.day.month, reading.day.day = 2023, 12, 31
    reading.price.value, reading.price.scale = (12345).to_bytes(2, "big", signed=True), 3
    data = b"\x00" + schema_id.to_bytes(4, "big") + b"\x00" + reading.SerializeToString()
    back = converter(registry_url).to_connect_data(topic, data)
    types = {f.name: (f.schema.type, f.schema.name, f.schema.optional) for f in back.schema.fields}
    assert types["small"] == ("int8", None, False) and types["count"] == ("int64", None, False)
    assert types["kind"] == ("string", None, False) and types["note"] == ("string", None, True)
    assert types["day"] == ("int32", DATE, False) and types["sensor"] == ("string", None, True)
    assert back.schema.field("price").schema.parameters == {"scale": "3"}
    assert back.value.to_dict() == {"small": -5, "count": 4_000_000_000, "kind": "COLD", "day": dt.date(2023, 12, 31),
                                    "note": "n", "price": decimal.Decimal("12.345"), "sensor": None, "station": 77}

"""Single Message Transforms and predicates, configured by Kafka's class names, on schemaless and struct data."""

from __future__ import annotations

import datetime as dt

import pytest

from moldau.connect.api import ConfigException, Schema, SinkRecord, SourceRecord, Struct
from moldau.connect.api.data import INT32, INT64, OPTIONAL_STRING, STRING
from moldau.connect.api.errors import DataException
from moldau.connect.api.records import Header
from moldau.connect.plugins import Plugins
from moldau.connect.runtime.transformation_chain import build_chain

T = "org.apache.kafka.connect.transforms."
ADDRESS = Schema.struct([("city", STRING), ("zip", OPTIONAL_STRING)], optional=True)
PERSON = Schema.struct([("id", INT32), ("name", STRING), ("ssn", OPTIONAL_STRING), ("address", ADDRESS)],
                       name="person")


def person():
    return Struct(PERSON, {"id": 1, "name": "Ada", "ssn": "123-45", "address": Struct(ADDRESS, {"city": "Prague"})})


def sink_record(value, schema=None, key=None, topic="orders", headers=()):
    return SinkRecord(topic, 2, None, key, schema, value, 1700000000000, list(headers), kafka_offset=42)


def chain(**config):
    aliases = sorted({k.split(".")[1] for k in config if k.startswith("t.")})
    props = {"transforms": ",".join(aliases)}
    prefixes = {"t.": "transforms.", "p.": "predicates."}
    props.update({prefixes[k[:2]] + k[2:] if k[:2] in prefixes else k: v for k, v in config.items()})
    return build_chain(Plugins(), props)


def test_insert_field_value_on_struct_and_map():
    c = chain(**{"t.a.type": T + "InsertField$Value", "t.a.topic.field": "src_topic",
                 "t.a.offset.field": "off!", "t.a.static.field": "dc", "t.a.static.value": "eu"})
    out = c.apply(sink_record(person(), PERSON))
    assert out.value.get("src_topic") == "orders" and out.value.get("off") == 42 and out.value.get("dc") == "eu"
    assert out.value_schema.field("off").schema == INT64 and out.value_schema.field("src_topic").schema.optional
    assert c.apply(sink_record({"x": 1})).value == {"x": 1, "src_topic": "orders", "off": 42, "dc": "eu"}
    with pytest.raises(DataException, match="sink records"):
        c.apply(SourceRecord("t", None, None, None, None, {"x": 1}))


def test_replace_mask_extract_hoist_flatten_cast():
    replaced = chain(**{"t.r.type": T + "ReplaceField$Value", "t.r.exclude": "ssn",
                        "t.r.renames": "name:full_name"}).apply(sink_record(person(), PERSON))
    assert [f.name for f in replaced.value_schema.fields] == ["id", "full_name", "address"]
    assert replaced.value.get("full_name") == "Ada"
    masked = chain(**{"t.m.type": T + "MaskField$Value", "t.m.fields": "ssn,id"}).apply(sink_record(person(), PERSON))
    assert masked.value.get("ssn") == "" and masked.value.get("id") == 0
    assert chain(**{"t.m.type": T + "MaskField$Value", "t.m.fields": "ssn", "t.m.replacement": "***"}).apply(
        sink_record({"ssn": "1"})).value == {"ssn": "***"}
    extracted = chain(**{"t.e.type": T + "ExtractField$Value", "t.e.field": "name"}).apply(sink_record(person(), PERSON))
    assert (extracted.value_schema, extracted.value) == (STRING, "Ada")
    hoisted = chain(**{"t.h.type": T + "HoistField$Key", "t.h.field": "id"}).apply(sink_record(None, key=7))
    assert hoisted.key == {"id": 7}
    flat = chain(**{"t.f.type": T + "Flatten$Value", "t.f.delimiter": "_"}).apply(sink_record(person(), PERSON))
    assert flat.value.get("address_city") == "Prague" and flat.value_schema.field("address_city").schema.optional
    assert chain(**{"t.f.type": T + "Flatten$Value"}).apply(sink_record({"a": {"b": {"c": 1}}})).value == {"a.b.c": 1}
    cast = chain(**{"t.c.type": T + "Cast$Value", "t.c.spec": "id:string,name:string"}).apply(
        sink_record(person(), PERSON))
    assert cast.value.get("id") == "1" and cast.value_schema.field("id").schema.type == "string"
    assert chain(**{"t.c.type": T + "Cast$Key", "t.c.spec": "int64"}).apply(sink_record(None, key="12")).key == 12
    with pytest.raises(ConfigException, match="Invalid type found in casting spec: decimal"):
        chain(**{"t.c.type": T + "Cast$Value", "t.c.spec": "x:decimal"})


def test_value_to_key_then_extract_key_like_the_jdbc_quickstart():
    c = chain(**{"t.createKey.type": T + "ValueToKey", "t.createKey.fields": "id",
                 "t.extractInt.type": T + "ExtractField$Key", "t.extractInt.field": "id",
                 "transforms": "createKey,extractInt"})
    out = c.apply(sink_record(person(), PERSON))
    assert (out.key_schema, out.key) == (INT32, 1)


def test_routers_and_filter_with_predicates():
    route = chain(**{"t.r.type": T + "RegexRouter", "t.r.regex": "(.*)ders", "t.r.replacement": "$1-routed"})
    assert route.apply(sink_record({})).topic == "or-routed"
    assert route.apply(sink_record({}, topic="orders2")).topic == "orders2"  # matches() needs the whole name
    stamped = chain(**{"t.ts.type": T + "TimestampRouter", "t.ts.timestamp.format": "yyyy-MM-dd'T'HH"})
    when = dt.datetime.fromtimestamp(1700000000, dt.UTC)
    assert stamped.apply(sink_record({})).topic == f"orders-{when:%Y-%m-%d}T{when:%H}"
    drop_tombstones = chain(**{"t.f.type": T + "Filter", "t.f.predicate": "isTomb", "predicates": "isTomb",
                               "p.isTomb.type": T + "predicates.RecordIsTombstone"})
    assert drop_tombstones.apply(sink_record(None)) is None
    assert drop_tombstones.apply(sink_record({"a": 1})) is not None
    keep_only_audit = chain(**{"t.f.type": T + "Filter", "t.f.predicate": "audit", "t.f.negate": "true",
                               "predicates": "audit", "p.audit.type": T + "predicates.HasHeaderKey",
                               "p.audit.name": "audit"})
    assert keep_only_audit.apply(sink_record({})) is None
    assert keep_only_audit.apply(sink_record({}, headers=[Header("audit", "1")])) is not None
    only_orders = chain(**{"t.i.type": T + "InsertHeader", "t.i.header": "h", "t.i.value.literal": "v",
                           "t.i.predicate": "o", "predicates": "o", "p.o.type": T + "predicates.TopicNameMatches",
                           "p.o.pattern": "ord.*"})
    assert only_orders.apply(sink_record({})).headers == [Header("h", "v", OPTIONAL_STRING)]
    assert only_orders.apply(sink_record({}, topic="x")).headers == []

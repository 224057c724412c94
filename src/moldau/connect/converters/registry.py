"""Schema Registry converters: Avro (io.confluent.connect.avro.AvroConverter) and JSON Schema
(io.confluent.connect.json.JsonSchemaConverter), in Confluent's wire format: magic byte 0, the 4-byte schema
id, then the encoded value. Schemas are registered under `<topic>-key` / `<topic>-value`
(TopicNameStrategy) through confluent-kafka's SchemaRegistryClient, against any registry speaking
Confluent's REST API (`schema.registry.url`).

    value.converter=io.confluent.connect.avro.AvroConverter
    value.converter.schema.registry.url=http://localhost:8081
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import struct
from typing import Any

from moldau.connect.api.data import (
    DATE,
    DECIMAL,
    TIME,
    TIMESTAMP,
    Schema,
    SchemaAndValue,
    Struct,
    decimal_schema,
)
from moldau.connect.api.errors import ConnectException, DataException
from moldau.connect.converters import logical
from moldau.connect.converters.base import Converter

MAGIC = 0
_HEADER = struct.Struct(">bI")
_STRATEGIES = ("TopicNameStrategy", "RecordNameStrategy", "TopicRecordNameStrategy")
_PRIMITIVE_TO_AVRO = {"int8": "int", "int16": "int", "int32": "int", "int64": "long", "float32": "float",
                      "float64": "double", "boolean": "boolean", "string": "string", "bytes": "bytes"}


class RegistryConverter(Converter):
    SCHEMA_TYPE = ""

    def configure(self, configs: dict[str, Any], is_key: bool = False) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.is_key = is_key
        url = configs.get("schema.registry.url")
        if not url:
            raise ConnectException(f"{type(self).__name__} needs schema.registry.url")
        settings = {"url": str(url).split(",")[0].strip()}
        user_info = configs.get("basic.auth.user.info")
        if user_info:
            settings["basic.auth.user.info"] = str(user_info)
        self.client = SchemaRegistryClient(settings)
        self.auto_register = str(configs.get("auto.register.schemas", "true")).lower() == "true"
        # use.latest.version: serialize against the subject's latest registered version rather than registering
        # (Confluent's AbstractKafkaSchemaSerDe; meant for auto.register.schemas=false)
        self.use_latest = str(configs.get("use.latest.version", "false")).lower() == "true"
        strategy = str(configs.get(f"{'key' if is_key else 'value'}.subject.name.strategy", "TopicNameStrategy"))
        self.strategy = strategy.rsplit(".", 1)[-1]
        if self.strategy not in _STRATEGIES:
            raise ConnectException(f"Unknown subject name strategy {strategy!r}: expected one of "
                                   f"{', '.join(_STRATEGIES)}")
        self._ids: dict[tuple[str, str], int] = {}
        self._latest: dict[str, tuple[int, str]] = {}
        self._schemas: dict[int, tuple[Any, Schema]] = {}

    def subject(self, topic: str, record_name: str | None = None) -> str:
        """The subject per Confluent's strategies (io.confluent.kafka.serializers.subject.*)."""
        if self.strategy == "TopicNameStrategy":
            return f"{topic}-{'key' if self.is_key else 'value'}"
        if not record_name:
            raise DataException(f"{self.strategy} needs a named record schema")
        return record_name if self.strategy == "RecordNameStrategy" else f"{topic}-{record_name}"

    def latest(self, subject: str) -> tuple[int, str]:
        """(id, schema text) of the subject's latest version, cached like Confluent's latest-version cache."""
        if subject not in self._latest:
            registered = self.client.get_latest_version(subject)
            if registered.schema_id is None:
                raise ConnectException(f"Subject {subject} has no latest version")
            self._latest[subject] = (registered.schema_id, registered.schema.schema_str or "")
        return self._latest[subject]

    def schema_id(self, topic: str, schema_text: str, record_name: str | None = None) -> int:
        from confluent_kafka.schema_registry import Schema as RegistrySchema

        subject = self.subject(topic, record_name)
        if self.use_latest:
            return self.latest(subject)[0]
        key = (subject, schema_text)
        if key not in self._ids:
            registry_schema = RegistrySchema(schema_text, self.SCHEMA_TYPE)
            if self.auto_register:
                self._ids[key] = self.client.register_schema(key[0], registry_schema)
            else:
                found = self.client.lookup_schema(key[0], registry_schema).schema_id
                if found is None:
                    raise ConnectException(f"Schema not registered under subject {key[0]}")
                self._ids[key] = found
        return self._ids[key]

    def writer_schema(self, data: bytes) -> tuple[int, bytes]:
        if len(data) < _HEADER.size or data[0] != MAGIC:
            raise DataException("Unknown magic byte: not Schema Registry wire format")
        _, schema_id = _HEADER.unpack_from(data)
        return schema_id, data[_HEADER.size:]


# -- Avro ---------------------------------------------------------------------------------------------


def to_avro_schema(schema: Schema, names: set[str] | None = None) -> Any:
    names = names if names is not None else set()
    if schema.name == TIMESTAMP:
        avro: Any = {"type": "long", "logicalType": "timestamp-millis"}
    elif schema.name == DATE:
        avro = {"type": "int", "logicalType": "date"}
    elif schema.name == TIME:
        avro = {"type": "int", "logicalType": "time-millis"}
    elif schema.name == DECIMAL:
        avro = {"type": "bytes", "logicalType": "decimal", "precision": 64,
                "scale": int((schema.parameters or {}).get("scale", "0"))}
    elif schema.type == "struct":
        name = (schema.name or "ConnectDefault").replace("-", "_")
        while name in names:
            name += "_"
        names.add(name)
        namespace, _, simple = name.rpartition(".")
        avro = {"type": "record", "name": simple, "fields": [
            {"name": f.name, "type": to_avro_schema(f.schema, names), **({"default": None} if f.schema.optional else {})}
            for f in schema.fields]}
        if namespace:
            avro["namespace"] = namespace
    elif schema.type == "array":
        assert schema.value_schema is not None
        avro = {"type": "array", "items": to_avro_schema(schema.value_schema, names)}
    elif schema.type == "map":
        assert schema.value_schema is not None
        avro = {"type": "map", "values": to_avro_schema(schema.value_schema, names)}
    else:
        avro = _PRIMITIVE_TO_AVRO[schema.type]
    return ["null", avro] if schema.optional else avro


def from_avro_schema(avro: Any, optional: bool = False) -> Schema:
    if isinstance(avro, list):
        others = [a for a in avro if a != "null"]
        if len(others) != 1:
            raise DataException(f"Avro unions other than [null, T] are not supported: {avro}")
        return from_avro_schema(others[0], optional=True)
    if isinstance(avro, str):
        avro = {"type": avro}
    kind, logical_type = avro.get("type"), avro.get("logicalType")
    if logical_type in ("timestamp-millis", "timestamp-micros"):
        return Schema("int64", optional=optional, name=TIMESTAMP, version=1)
    if logical_type == "date":
        return Schema("int32", optional=optional, name=DATE, version=1)
    if logical_type == "decimal":
        return decimal_schema(int(avro.get("scale", 0)), optional)
    if kind == "record":
        name = f"{avro['namespace']}.{avro['name']}" if avro.get("namespace") else avro["name"]
        return Schema.struct([(f["name"], from_avro_schema(f["type"])) for f in avro["fields"]], name=name,
                             optional=optional)
    if kind == "array":
        return Schema.array(from_avro_schema(avro["items"]), optional)
    if kind == "map":
        return Schema.map(Schema("string"), from_avro_schema(avro["values"]), optional)
    mapping = {"int": "int32", "long": "int64", "float": "float32", "double": "float64", "boolean": "boolean",
               "string": "string", "bytes": "bytes", "enum": "string", "fixed": "bytes"}
    if kind not in mapping:
        raise DataException(f"Unsupported Avro type {kind}")
    return Schema(mapping[kind], optional=optional)


def _to_avro_value(schema: Schema, value: Any) -> Any:
    if value is None:
        return None
    if schema.type == "struct":
        return {f.name: _to_avro_value(f.schema, value.get(f.name))
                for f in schema.fields}
    if schema.type == "array" and schema.value_schema:
        return [_to_avro_value(schema.value_schema, v) for v in value]
    if schema.type == "map" and schema.value_schema:
        return {k: _to_avro_value(schema.value_schema, v) for k, v in value.items()}
    if schema.name == TIMESTAMP and isinstance(value, int):
        return logical.from_wire(schema, value)
    return value


def _from_avro_value(schema: Schema, value: Any) -> Any:
    if value is None:
        return None
    if schema.type == "struct":
        return Struct.trusted(schema, {f.name: _from_avro_value(f.schema, value.get(f.name)) for f in schema.fields})
    if schema.type == "array" and schema.value_schema:
        return [_from_avro_value(schema.value_schema, v) for v in value]
    if schema.type == "map" and schema.value_schema:
        return {k: _from_avro_value(schema.value_schema, v) for k, v in value.items()}
    if schema.name == TIMESTAMP and isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if schema.name == DECIMAL and not isinstance(value, decimal.Decimal):
        return decimal.Decimal(value)
    return value


class AvroConverter(RegistryConverter):
    SCHEMA_TYPE = "AVRO"

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        import fastavro

        if value is None:
            return None
        if schema is None:
            raise DataException("AvroConverter needs a schema (use JsonConverter for schemaless data)")
        avro = to_avro_schema(schema)
        text = json.dumps(avro, sort_keys=True)
        schema_id = self.schema_id(topic, text, schema.name)
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC, schema_id))
        fastavro.schemaless_writer(out, fastavro.parse_schema(avro), _to_avro_value(schema, value))
        return out.getvalue()

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        import fastavro

        if data is None:
            return SchemaAndValue(None, None)
        schema_id, body = self.writer_schema(data)
        if schema_id not in self._schemas:
            avro = json.loads(self.client.get_schema(schema_id).schema_str or "null")
            self._schemas[schema_id] = (fastavro.parse_schema(avro), from_avro_schema(avro))
        parsed, connect_schema = self._schemas[schema_id]
        return SchemaAndValue(connect_schema,
                              _from_avro_value(connect_schema, fastavro.schemaless_reader(io.BytesIO(body), parsed)))


# -- JSON Schema --------------------------------------------------------------------------------------


def to_json_schema(schema: Schema) -> dict[str, Any]:
    from moldau.connect.converters.json import schema_to_json

    if schema.type == "struct":
        out: dict[str, Any] = {"type": "object", "title": schema.name or "ConnectDefault", "properties": {
            f.name: to_json_schema(f.schema) for f in schema.fields},
            "required": [f.name for f in schema.fields if not f.schema.optional], "additionalProperties": False}
    elif schema.type == "array" and schema.value_schema:
        out = {"type": "array", "items": to_json_schema(schema.value_schema)}
    elif schema.type == "map" and schema.value_schema:
        out = {"type": "object", "additionalProperties": to_json_schema(schema.value_schema)}
    else:
        kind = {"int8": "integer", "int16": "integer", "int32": "integer", "int64": "integer", "float32": "number",
                "float64": "number", "boolean": "boolean", "string": "string", "bytes": "string"}[schema.type]
        out = {"type": kind, "connect.type": schema.type}
        if schema.name:
            out["connect.schema"] = schema_to_json(schema)
    if schema.optional:
        return {"oneOf": [{"type": "null"}, out]}
    return out


def from_json_schema(node: dict[str, Any], optional: bool = False) -> Schema:
    from moldau.connect.converters.json import schema_from_json

    if "oneOf" in node:
        others = [n for n in node["oneOf"] if n.get("type") != "null"]
        return from_json_schema(others[0], optional=True)
    if "connect.schema" in node:
        base = schema_from_json(node["connect.schema"])
        return base.as_optional() if optional else base
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        required = set(node.get("required", []))
        return Schema.struct([(name, from_json_schema(child, optional=name not in required))
                              for name, child in node["properties"].items()], name=node.get("title"),
                             optional=optional)
    if kind == "object":
        return Schema.map(Schema("string"), from_json_schema(node.get("additionalProperties") or {}), optional)
    if kind == "array":
        return Schema.array(from_json_schema(node.get("items", {})), optional)
    connect_type = node.get("connect.type") or {"integer": "int64", "number": "float64", "boolean": "boolean"}.get(
        str(kind), "string")
    return Schema(connect_type, optional=optional)


class JsonSchemaConverter(RegistryConverter):
    SCHEMA_TYPE = "JSON"

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        from moldau.connect.converters.json import value_to_json

        if value is None:
            return None
        if schema is None:
            raise DataException("JsonSchemaConverter needs a schema (use JsonConverter for schemaless data)")
        schema_id = self.schema_id(topic, json.dumps(to_json_schema(schema)), schema.name)  # property order is field order
        payload = json.dumps(value_to_json(schema, value), separators=(",", ":")).encode()
        return _HEADER.pack(MAGIC, schema_id) + payload

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        from moldau.connect.converters.json import value_from_json

        if data is None:
            return SchemaAndValue(None, None)
        schema_id, body = self.writer_schema(data)
        if schema_id not in self._schemas:
            node = json.loads(self.client.get_schema(schema_id).schema_str or "{}")
            self._schemas[schema_id] = (node, from_json_schema(node))
        _, connect_schema = self._schemas[schema_id]
        return SchemaAndValue(connect_schema, value_from_json(connect_schema, json.loads(body)))

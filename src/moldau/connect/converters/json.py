"""JsonConverter, with Kafka's `{"schema": ..., "payload": ...}` envelope when `schemas.enable=true`."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
from collections.abc import Callable
from typing import Any

from moldau.connect.api.data import DECIMAL, Field, Schema, SchemaAndValue, Struct
from moldau.connect.api.errors import DataException
from moldau.connect.converters import logical
from moldau.connect.converters.base import Converter, HeaderConverter


def _flag(value: Any, default: bool) -> bool:
    return default if value is None else str(value).strip().lower() == "true"


def schema_to_json(schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {"type": schema.type, "optional": schema.optional}
    if schema.type == "struct":
        out["fields"] = [{**schema_to_json(f.schema), "field": f.name} for f in schema.fields]
    elif schema.type == "array" and schema.value_schema:
        out["items"] = schema_to_json(schema.value_schema)
    elif schema.type == "map" and schema.key_schema and schema.value_schema:
        out["keys"] = schema_to_json(schema.key_schema)
        out["values"] = schema_to_json(schema.value_schema)
    for key, attr in (("name", "name"), ("version", "version"), ("doc", "doc"), ("parameters", "parameters")):
        if getattr(schema, attr) is not None:
            out[key] = getattr(schema, attr)
    if schema.default is not None:
        out["default"] = value_to_json(schema, schema.default)
    return out


def schema_from_json(node: dict[str, Any]) -> Schema:
    if not isinstance(node, dict) or "type" not in node:
        raise DataException(f"Schema must contain 'type' field: {node!r}")
    type_ = node["type"]
    fields: tuple[Field, ...] = ()
    key = value = None
    if type_ == "struct":
        fields = tuple(Field(f["field"], i, schema_from_json(f)) for i, f in enumerate(node.get("fields", [])))
    elif type_ == "array":
        value = schema_from_json(node["items"])
    elif type_ == "map":
        key, value = schema_from_json(node["keys"]), schema_from_json(node["values"])
    schema = Schema(type_, optional=bool(node.get("optional", False)), name=node.get("name"),
                    version=node.get("version"), doc=node.get("doc"), parameters=node.get("parameters"),
                    fields=fields, key_schema=key, value_schema=value)
    if node.get("default") is not None:
        from moldau.connect.api.data import replace_schema
        schema = replace_schema(schema, default=value_from_json(schema, node["default"]))
    return schema


def value_to_json(schema: Schema | None, value: Any) -> Any:
    """A Connect value as a JSON-able tree, following its schema when there is one."""
    if value is None:
        if schema is not None and schema.default is not None:
            return value_to_json(schema, schema.default)
        return None
    if schema is None:
        return _schemaless_to_json(value)
    if schema.name:
        value = logical.to_wire(schema, value)
    if schema.type == "struct":
        if not isinstance(value, Struct):
            if isinstance(value, dict):
                return {f.name: value_to_json(f.schema, value.get(f.name)) for f in schema.fields}
            raise DataException(f"Struct schema with a {type(value).__name__} value")
        values = value._values
        return {f.name: value_to_json(f.schema, values.get(f.name)) for f in schema.fields}
    if schema.type == "array":
        return [value_to_json(schema.value_schema, v) for v in value]
    if schema.type == "map":
        if schema.key_schema is not None and schema.key_schema.type == "string":
            return {k: value_to_json(schema.value_schema, v) for k, v in value.items()}
        return [[value_to_json(schema.key_schema, k), value_to_json(schema.value_schema, v)] for k, v in value.items()]
    if schema.type == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if schema.type in ("int8", "int16", "int32", "int64") and (not isinstance(value, int) or isinstance(value, bool)):
        raise DataException(f"Invalid Java object for schema type {schema.type.upper()}: {type(value).__name__}")
    return value


def _schemaless_to_json(value: Any) -> Any:
    if isinstance(value, Struct):
        return value_to_json(value.schema, value)
    if isinstance(value, dict):
        return {str(k): _schemaless_to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_schemaless_to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return logical.to_wire(Schema("int64", name="org.apache.kafka.connect.data.Timestamp"), value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def value_from_json(schema: Schema | None, node: Any) -> Any:
    if schema is None:
        return node
    if node is None:
        if schema.default is not None:
            return schema.default
        if not schema.optional:
            raise DataException(f"Invalid null value for required {schema.type.upper()} field")
        return None
    if schema.type == "struct":
        if not isinstance(node, dict):
            raise DataException(f"Struct schema with a JSON {type(node).__name__}")
        return Struct.trusted(schema, {f.name: value_from_json(f.schema, node.get(f.name)) for f in schema.fields})
    if schema.type == "array":
        return [value_from_json(schema.value_schema, v) for v in node]
    if schema.type == "map":
        if isinstance(node, dict):
            return {k: value_from_json(schema.value_schema, v) for k, v in node.items()}
        return {value_from_json(schema.key_schema, k): value_from_json(schema.value_schema, v) for k, v in node}
    if schema.type == "bytes":
        if schema.name == DECIMAL and isinstance(node, (int, float)):
            return decimal.Decimal(str(node))
        node = base64.b64decode(node)
    return logical.from_wire(schema, node) if schema.name else node


SCHEMA_CACHE_SIZE = 1000  # Kafka's schemas.cache.size default
# The envelope's head and the separator before the payload, with the whitespace JSON allows around them
# (Kafka's converter writes none; Python's json.dumps writes ", " and ": ").
_HEAD = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"schema"[ \t\n\r]*:[ \t\n\r]*')
_MID = re.compile(r'[ \t\n\r]*,[ \t\n\r]*"payload"[ \t\n\r]*:[ \t\n\r]*')
_TAIL = re.compile(r'[ \t\n\r]*\}[ \t\n\r]*')
_ENVELOPE_HEAD, _ENVELOPE_MID = b'{"schema":', b',"payload":'
# The C scanner behind json.loads, called at a position: one JSON value parsed in place, no slicing.
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
# json.dumps with arguments builds a new encoder per call; one is enough.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SIMPLE_TYPES = frozenset(("int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string"))
Reader = Callable[[Any], Any]


def _identity_on_the_wire(schema: Schema) -> bool:
    """A JSON value of this schema is its Connect value as is (no base64, no logical type, no nesting)."""
    return schema.type in _SIMPLE_TYPES and schema.name is None


def compile_reader(schema: Schema) -> Reader:
    """`value_from_json` specialised for one schema. For a struct (the common record), one dict comprehension
    plus null checks for its primitive fields, and `value_from_json` only for the others (logical types,
    bytes, nested values), instead of a recursive call per field."""
    if schema.type != "struct":
        return lambda node: value_from_json(schema, node)
    names = tuple(f.name for f in schema.fields)
    name_set = frozenset(names)
    simple = [f for f in schema.fields if _identity_on_the_wire(f.schema)]
    required = tuple((f.name, f.schema.type) for f in simple if not f.schema.optional and f.schema.default is None)
    defaults = tuple((f.name, f.schema.default) for f in simple if f.schema.default is not None)
    # value_from_json judges null, default and optional itself for these.
    others = tuple((f.name, f.schema) for f in schema.fields if not _identity_on_the_wire(f.schema))
    trusted = Struct.trusted

    def read(node: Any) -> Any:
        if not isinstance(node, dict):
            return value_from_json(schema, node)  # null (default / optional / error) or a type error
        if node.keys() == name_set:
            values = node  # exactly the schema's fields: json.loads built a fresh dict, so take it as is
        else:
            get = node.get
            values = {name: get(name) for name in names}
        for name, default in defaults:
            if values[name] is None:
                values[name] = default
        for name, type_ in required:
            if values[name] is None:
                raise DataException(f"Invalid null value for required {type_.upper()} field")
        for name, field_schema in others:
            values[name] = value_from_json(field_schema, values[name])
        return trusted(schema, values)

    return read


Writer = Callable[[Any], Any]
_INT_TYPES = frozenset(("int8", "int16", "int32", "int64"))


def compile_writer(schema: Schema) -> Writer:
    """`value_to_json` specialised for one struct schema: primitive fields copied (ints type-checked, as
    Kafka's converter does), `value_to_json` only for logical, bytes and nested fields."""
    if schema.type != "struct":
        return lambda value: value_to_json(schema, value)
    plan = tuple((f.name, f.schema, 0 if f.schema.default is not None else
                  1 if f.schema.type in _INT_TYPES and f.schema.name is None else
                  2 if _identity_on_the_wire(f.schema) else 0) for f in schema.fields)

    def write(value: Any) -> Any:
        if value.__class__ is not Struct:
            return value_to_json(schema, value)
        values = value._values
        out = {}
        for name, field_schema, kind in plan:
            v = values.get(name)
            if v is None or kind == 0:
                out[name] = value_to_json(field_schema, v)
            elif kind == 2 or v.__class__ is int:
                out[name] = v
            else:
                out[name] = value_to_json(field_schema, v)  # the type check and its error
        return out

    return write


class JsonConverter(Converter, HeaderConverter):
    """org.apache.kafka.connect.json.JsonConverter: `schemas.enable` (default true), `schemas.cache.size`.

    Schemas repeat on every record, so both directions cache them: the JSON text of each Schema object,
    and the Schema parsed from each distinct schema text (as Kafka's converter caches them). Reading, a
    record whose schema text equals the previous record's is not parsed again at all: only its payload is,
    by a reader compiled once per schema (`compile_reader`).
    """

    schemas_enable = True

    def configure(self, configs: dict[str, Any], is_key: bool = False) -> None:
        self.is_key = is_key
        self.schemas_enable = _flag(configs.get("schemas.enable"), True)
        self.cache_size = int(configs.get("schemas.cache.size", SCHEMA_CACHE_SIZE))
        self._to_json: dict[int, tuple[Schema, bytes, Writer]] = {}
        self._from_json: dict[str, tuple[Schema | None, Reader]] = {}
        self._last: tuple[str, Schema | None, Reader] | None = None

    def _schema_entry(self, schema: Schema) -> tuple[Schema, bytes, Writer]:
        cached = getattr(self, "_to_json", {}).get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached
        entry = (schema, json.dumps(schema_to_json(schema), separators=(",", ":")).encode(), compile_writer(schema))
        if hasattr(self, "_to_json"):
            if len(self._to_json) >= self.cache_size:
                self._to_json.clear()
            self._to_json[id(schema)] = entry
        return entry

    def _schema_bytes(self, schema: Schema) -> bytes:
        return self._schema_entry(schema)[1]

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        if schema is None:
            if value is None:
                return None
            tree, schema_text = value_to_json(None, value), b"null"
        else:
            _, schema_text, write = self._schema_entry(schema)
            tree = value_to_json(schema, value) if value is None else write(value)
        payload = _encode(tree).encode()
        if not self.schemas_enable:
            return payload
        return b"".join((_ENVELOPE_HEAD, schema_text, _ENVELOPE_MID, payload, b"}"))

    def _parse_schema(self, raw: str) -> tuple[Schema | None, Reader]:
        cache = getattr(self, "_from_json", None)
        entry = cache.get(raw) if cache is not None else None
        if entry is None:
            node = json.loads(raw)
            schema = None if node is None else schema_from_json(node)
            entry = (schema, (lambda payload: payload) if schema is None else compile_reader(schema))
            if cache is not None:
                if len(cache) >= self.cache_size:
                    cache.clear()
                cache[raw] = entry
        return entry

    def _envelope(self, data: bytes) -> SchemaAndValue | None:
        """The fast path for `{"schema": S, "payload": P}`: S looked up by its text, only P parsed. None when
        the record has another layout (then the generic path parses it, or explains what is wrong)."""
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return None
        head = _HEAD.match(text)
        if head is None:
            return None
        start = head.end()
        last = getattr(self, "_last", None)
        try:
            if last is not None and text.startswith(last[0], start):
                # The same text as the previous schema, and a complete JSON value: it ends exactly there.
                raw, schema, reader = last
            else:
                end = _scan_once(text, start)[1]
                raw = text[start:end]
                schema, reader = self._parse_schema(raw)
                self._last = (raw, schema, reader)
            mid = _MID.match(text, start + len(raw))
            if mid is None:
                return None
            payload, end = _scan_once(text, mid.end())
        except (StopIteration, ValueError):
            return None  # not JSON here: the generic path reports it
        if not (end == len(text) - 1 and text[end] == "}") and _TAIL.fullmatch(text, end) is None:
            return None  # e.g. fields after the payload: the generic path names the problem
        return SchemaAndValue(schema, reader(payload))

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        if data is None:
            return SchemaAndValue(None, None)
        if self.schemas_enable:
            fast = self._envelope(data)
            if fast is not None:
                return fast
        try:
            tree = json.loads(data)
        except ValueError as exc:
            raise DataException(f"Converting byte[] to Kafka Connect data failed due to serialization error: "
                                f"{exc}") from exc
        if not self.schemas_enable:
            return SchemaAndValue(None, tree)
        if not isinstance(tree, dict) or set(tree) != {"schema", "payload"}:
            raise DataException("JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields "
                                "and may not contain additional fields. If you are trying to deserialize plain "
                                "JSON data, set schemas.enable=false in your converter configuration.")
        if tree["schema"] is None:
            return SchemaAndValue(None, tree["payload"])
        schema = schema_from_json(tree["schema"])
        return SchemaAndValue(schema, value_from_json(schema, tree["payload"]))

    def from_connect_header(self, topic: str, key: str, schema: Schema | None, value: Any) -> bytes | None:
        return self.from_connect_data(topic, schema, value)

    def to_connect_header(self, topic: str, key: str, data: bytes | None) -> SchemaAndValue:
        return self.to_connect_data(topic, data)

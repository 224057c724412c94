"""Connect's data model: Schema, Struct and logical types (org.apache.kafka.connect.data).

A value is plain Python (int, float, str, bytes, bool, list, dict, None) or a `Struct`; its `Schema`, when
there is one, says which Connect type it has, so that converters (JSON with `schemas.enable`, Avro) and
sinks (Postgres table creation) know the types that plain Python values cannot carry (int32 vs int64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moldau.connect.api.errors import DataException

# Connect's Schema.Type names, as the JSON converter spells them (lower case on the wire).
PRIMITIVE_TYPES = ("int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string", "bytes")
TYPES = PRIMITIVE_TYPES + ("array", "map", "struct")

# Logical types: a name on a primitive schema (Kafka's Timestamp, Date, Time, Decimal).
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"  # int64 milliseconds since the epoch
DATE = "org.apache.kafka.connect.data.Date"  # int32 days since the epoch
TIME = "org.apache.kafka.connect.data.Time"  # int32 milliseconds since midnight
DECIMAL = "org.apache.kafka.connect.data.Decimal"  # bytes, unscaled big-endian two's complement; param "scale"


@dataclass(slots=True, frozen=True)
class Field:
    name: str
    index: int
    schema: Schema


@dataclass(slots=True, frozen=True)
class Schema:
    """An immutable Connect schema. Build structs with `Schema.struct([...])`."""

    type: str
    optional: bool = False
    name: str | None = None
    version: int | None = None
    doc: str | None = None
    default: Any = None
    parameters: dict[str, str] | None = None
    fields: tuple[Field, ...] = ()
    key_schema: Schema | None = None  # map
    value_schema: Schema | None = None  # map values, array elements

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise DataException(f"Unknown schema type {self.type!r}: expected one of {', '.join(TYPES)}")

    @staticmethod
    def struct(fields: list[tuple[str, Schema]], name: str | None = None, optional: bool = False) -> Schema:
        return Schema("struct", optional=optional, name=name,
                      fields=tuple(Field(n, i, s) for i, (n, s) in enumerate(fields)))

    @staticmethod
    def array(element: Schema, optional: bool = False) -> Schema:
        return Schema("array", optional=optional, value_schema=element)

    @staticmethod
    def map(key: Schema, value: Schema, optional: bool = False) -> Schema:
        return Schema("map", optional=optional, key_schema=key, value_schema=value)

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def as_optional(self) -> Schema:
        return self if self.optional else _replace(self, optional=True)


def _replace(schema: Schema, **changes: Any) -> Schema:
    values = {name: getattr(schema, name) for name in Schema.__dataclass_fields__}
    values.update(changes)
    return Schema(**values)


def replace_schema(schema: Schema, **changes: Any) -> Schema:
    return _replace(schema, **changes)


def _primitive(type_: str, optional: bool = False, name: str | None = None) -> Schema:
    return Schema(type_, optional=optional, name=name)


INT8, INT16, INT32, INT64 = (_primitive(t) for t in ("int8", "int16", "int32", "int64"))
FLOAT32, FLOAT64, BOOLEAN = _primitive("float32"), _primitive("float64"), _primitive("boolean")
STRING, BYTES = _primitive("string"), _primitive("bytes")
OPTIONAL_INT32, OPTIONAL_INT64 = _primitive("int32", True), _primitive("int64", True)
OPTIONAL_STRING, OPTIONAL_BYTES = _primitive("string", True), _primitive("bytes", True)
OPTIONAL_FLOAT64, OPTIONAL_BOOLEAN = _primitive("float64", True), _primitive("boolean", True)


def timestamp_schema(optional: bool = False) -> Schema:
    return Schema("int64", optional=optional, name=TIMESTAMP, version=1)


def decimal_schema(scale: int, optional: bool = False) -> Schema:
    return Schema("bytes", optional=optional, name=DECIMAL, version=1, parameters={"scale": str(scale)})


class Struct:
    """A structured value whose fields follow a struct `Schema` (org.apache.kafka.connect.data.Struct)."""

    __slots__ = ("_values", "schema")

    def __init__(self, schema: Schema, values: dict[str, Any] | None = None) -> None:
        if schema.type != "struct":
            raise DataException(f"A Struct needs a struct schema, not {schema.type}")
        self.schema = schema
        self._values: dict[str, Any] = {}
        for name, value in (values or {}).items():
            self.put(name, value)

    def put(self, name: str, value: Any) -> Struct:
        if self.schema.field(name) is None:
            raise DataException(f"{name!r} is not a field of struct schema {self.schema.name or ''}".rstrip())
        self._values[name] = value
        return self

    def get(self, name: str) -> Any:
        f = self.schema.field(name)
        if f is None:
            raise DataException(f"{name!r} is not a field of struct schema {self.schema.name or ''}".rstrip())
        return self._values.get(name, f.schema.default)

    @classmethod
    def trusted(cls, schema: Schema, values: dict[str, Any]) -> Struct:
        """A struct from values already known to match `schema` (converters, sources): no per-field checks."""
        struct = cls.__new__(cls)
        struct.schema = schema
        struct._values = values
        return struct

    def to_dict(self) -> dict[str, Any]:
        """Field values by name, nested structs as dicts (what schemaless sinks and JSON want)."""
        values = self._values
        return {f.name: _plain(values.get(f.name, f.schema.default)) for f in self.schema.fields}

    def validate(self) -> None:
        for f in self.schema.fields:
            if self.get(f.name) is None and not f.schema.optional:
                raise DataException(f"Invalid value: null used for required field {f.name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Struct) and other.schema == self.schema and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"Struct{self.to_dict()!r}"


def _plain(value: Any) -> Any:
    if isinstance(value, Struct):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def plain(value: Any) -> Any:
    """A value with every Struct turned into a dict."""
    return _plain(value)


@dataclass(slots=True, frozen=True)
class SchemaAndValue:
    schema: Schema | None
    value: Any


def infer_schema(value: Any) -> Schema | None:
    """The Connect schema of a plain Python value, as Kafka's `Values.inferSchema` would choose it."""
    if value is None:
        return None
    if isinstance(value, Struct):
        return value.schema
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INT32 if -(2**31) <= value < 2**31 else INT64
    if isinstance(value, float):
        return FLOAT64
    if isinstance(value, str):
        return STRING
    if isinstance(value, (bytes, bytearray)):
        return BYTES
    return None

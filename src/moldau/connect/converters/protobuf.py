"""io.confluent.connect.protobuf.ProtobufConverter: Connect data as protobuf in Confluent's wire format, magic
byte 0, the 4-byte schema id, the message-index array (zigzag varints: the count, then the index path of the
message in the file; `[0]` is written as the single byte 0), then the protobuf payload.

Connect schema -> .proto (proto3), as Confluent's ProtobufData does it: a struct is a message (the struct's name
gives package and message name), fields are numbered 1..n in order, nested structs are nested messages,
arrays are `repeated`, maps are `map<K, V>`, Timestamp is `google.protobuf.Timestamp`. Optional primitives use
proto3 `optional` (Confluent's `optional.for.nullables`) so that null survives the round trip. Not kept:
int8/int16 (read back as int32), Date/Time (int32), Decimal (its text, a string): Confluent keeps those
through its own `confluent/meta.proto` and `confluent/type/decimal.proto` imports, not registered here.

The .proto is built as a `FileDescriptorProto`, printed with the registry's own `to_proto_text`, and parsed
back with the registry's protobuf format when reading, so both sides share one protobuf implementation.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool  # type: ignore[import-untyped]
from google.protobuf.message_factory import GetMessageClass  # type: ignore[import-untyped]

from moldau.connect.api.data import (
    DATE,
    DECIMAL,
    TIME,
    TIMESTAMP,
    Schema,
    SchemaAndValue,
    Struct,
    replace_schema,
    timestamp_schema,
)
from moldau.connect.api.errors import DataException
from moldau.connect.converters import logical
from moldau.connect.converters.registry import _HEADER, MAGIC, RegistryConverter

FD = descriptor_pb2.FieldDescriptorProto
_TIMESTAMP_FILE = "google/protobuf/timestamp.proto"
_TIMESTAMP_TYPE = ".google.protobuf.Timestamp"
_SCALAR = {"int8": FD.TYPE_INT32, "int16": FD.TYPE_INT32, "int32": FD.TYPE_INT32, "int64": FD.TYPE_INT64,
           "float32": FD.TYPE_FLOAT, "float64": FD.TYPE_DOUBLE, "boolean": FD.TYPE_BOOL, "string": FD.TYPE_STRING,
           "bytes": FD.TYPE_BYTES}
# Confluent's ProtobufData.toConnectSchema: unsigned 32-bit widens to int64
_TO_CONNECT = {FD.TYPE_INT32: "int32", FD.TYPE_SINT32: "int32", FD.TYPE_SFIXED32: "int32", FD.TYPE_UINT32: "int64",
               FD.TYPE_FIXED32: "int64", FD.TYPE_INT64: "int64", FD.TYPE_SINT64: "int64", FD.TYPE_SFIXED64: "int64",
               FD.TYPE_UINT64: "int64", FD.TYPE_FIXED64: "int64", FD.TYPE_FLOAT: "float32",
               FD.TYPE_DOUBLE: "float64", FD.TYPE_BOOL: "boolean", FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes",
               FD.TYPE_ENUM: "string"}


# -- message indexes ----------------------------------------------------------------------------------


def _zigzag_varint(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_indexes(indexes: list[int]) -> bytes:
    if indexes == [0]:
        return b"\x00"  # Confluent's shortcut for the first message in the file
    return b"".join(_zigzag_varint(v) for v in [len(indexes), *indexes])


def decode_indexes(data: bytes, offset: int) -> tuple[list[int], int]:
    def varint() -> int:
        nonlocal offset
        shift = result = 0
        while True:
            if offset >= len(data):
                raise DataException("Truncated protobuf message-index array")
            byte = data[offset]
            offset += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7

    count = varint()
    if count == 0:
        return [0], offset
    return [varint() for _ in range(count)], offset


# -- Connect schema -> FileDescriptorProto ------------------------------------------------------------


def _message_name(name: str | None, fallback: str) -> str:
    simple = (name or fallback).rsplit(".", 1)[-1]
    return "".join(c if c.isalnum() or c == "_" else "_" for c in simple) or fallback


def to_file_descriptor(schema: Schema) -> tuple[Any, str]:
    """The proto3 file for a struct schema, and the full name of its message."""
    if schema.type != "struct":
        raise DataException(f"ProtobufConverter needs a struct schema, not {schema.type}")
    package = schema.name.rpartition(".")[0] if schema.name else ""
    proto = descriptor_pb2.FileDescriptorProto(name="schema.proto", syntax="proto3", package=package)
    top = proto.message_type.add()
    _fill_message(top, schema, "ConnectDefault1", proto)
    return proto, f"{package}.{top.name}" if package else top.name


def _fill_message(out: Any, schema: Schema, fallback: str, file: Any) -> None:
    out.name = _message_name(schema.name, fallback)
    for number, fld in enumerate(schema.fields, 1):
        target = out.field.add(name=fld.name, number=number, label=FD.LABEL_OPTIONAL)
        element = fld.schema
        if element.type == "array":
            assert element.value_schema is not None
            target.label = FD.LABEL_REPEATED
            element = element.value_schema
            if element.type in ("array", "map"):
                raise DataException(f"Field {fld.name!r}: protobuf has no nested repeated fields")
        if element.type == "map":
            assert element.key_schema is not None and element.value_schema is not None
            if element.key_schema.type not in ("string", "int32", "int64", "boolean"):
                raise DataException(f"Field {fld.name!r}: protobuf map keys must be integers, bools or strings")
            entry = out.nested_type.add(name="".join(p.capitalize() for p in fld.name.split("_")) + "Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=FD.LABEL_OPTIONAL, type=_SCALAR[element.key_schema.type])
            value = entry.field.add(name="value", number=2, label=FD.LABEL_OPTIONAL)
            _set_type(value, element.value_schema, f"{fld.name}_value", out, file)
            target.label, target.type, target.type_name = FD.LABEL_REPEATED, FD.TYPE_MESSAGE, entry.name
            continue
        _set_type(target, element, fld.name, out, file)
        if target.label != FD.LABEL_REPEATED and fld.schema.optional and target.type != FD.TYPE_MESSAGE:
            target.proto3_optional = True
    for target in out.field:  # synthetic oneofs come after real ones, as protoc orders them
        if target.proto3_optional:
            target.oneof_index = len(out.oneof_decl)
            out.oneof_decl.add(name=f"_{target.name}")


def _set_type(target: Any, schema: Schema, field_name: str, parent: Any, file: Any) -> None:
    if schema.name == TIMESTAMP:
        target.type, target.type_name = FD.TYPE_MESSAGE, _TIMESTAMP_TYPE
        if _TIMESTAMP_FILE not in file.dependency:
            file.dependency.append(_TIMESTAMP_FILE)
    elif schema.name == DECIMAL:
        target.type = FD.TYPE_STRING
    elif schema.type == "struct":
        nested = parent.nested_type.add()
        _fill_message(nested, schema, "".join(p.capitalize() for p in field_name.split("_")), file)
        target.type, target.type_name = FD.TYPE_MESSAGE, nested.name
    else:
        target.type = _SCALAR[schema.type]


def message_class(proto: Any, full_name: str) -> Any:
    """A message class for `full_name` in a pool of its own (no generated code: nothing is compiled)."""
    pool = descriptor_pool.DescriptorPool()
    from moldau.registry.formats.protobuf import _well_known

    for dependency in proto.dependency:
        serialized = _well_known(dependency)
        if serialized is None:
            raise DataException(f"Protobuf import {dependency!r} is not supported by ProtobufConverter")
        pool.AddSerializedFile(serialized)
    pool.AddSerializedFile(proto.SerializeToString())
    return GetMessageClass(pool.FindMessageTypeByName(full_name.lstrip(".")))


# -- descriptor -> Connect schema ---------------------------------------------------------------------


def to_connect_schema(descriptor: Any, optional: bool = False) -> Schema:
    fields = [(f.name, _field_schema(f)) for f in descriptor.fields]
    return Schema.struct(fields, name=descriptor.full_name, optional=optional)


def _field_schema(fld: Any) -> Schema:
    message = fld.message_type
    if message is not None and message.GetOptions().map_entry:
        key, value = message.fields_by_name["key"], message.fields_by_name["value"]
        return Schema.map(_required(_single(key)), _single(value), optional=True)
    element = _single(fld)
    if fld.is_repeated:
        return Schema.array(_required(element), optional=True)
    return element


def _single(fld: Any) -> Schema:
    if fld.message_type is not None:
        if fld.message_type.full_name == _TIMESTAMP_TYPE[1:]:
            return timestamp_schema(optional=True)
        return to_connect_schema(fld.message_type, optional=True)
    optional = bool(fld.has_presence) and not fld.is_repeated
    return Schema(_TO_CONNECT[fld.type], optional=optional)


def _required(schema: Schema) -> Schema:
    return replace_schema(schema, optional=False) if schema.optional else schema


# -- values -------------------------------------------------------------------------------------------


def _to_proto_value(schema: Schema, value: Any) -> Any:
    if schema.name == DECIMAL:
        return str(value)
    if schema.name in (DATE, TIME):
        return logical.to_wire(schema, value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def fill(message: Any, schema: Schema, value: Struct) -> None:
    """Set `message`'s fields from a Struct, by field name (so a registered schema with other numbers works)."""
    descriptor = message.DESCRIPTOR
    for fld in schema.fields:
        item = value.get(fld.name)
        target = descriptor.fields_by_name.get(fld.name)
        if item is None:
            continue
        if target is None:
            raise DataException(f"Field {fld.name!r} is not in protobuf message {descriptor.full_name}")
        kind = fld.schema
        if kind.type == "map":
            assert kind.value_schema is not None
            container = getattr(message, fld.name)
            for k, v in item.items():
                if target.message_type.fields_by_name["value"].message_type is not None:
                    _fill_single(container[k], kind.value_schema, v)
                else:
                    container[k] = _to_proto_value(kind.value_schema, v)
        elif kind.type == "array":
            assert kind.value_schema is not None
            container = getattr(message, fld.name)
            for v in item:
                if target.message_type is not None:
                    _fill_single(container.add(), kind.value_schema, v)
                else:
                    container.append(_to_proto_value(kind.value_schema, v))
        elif target.message_type is not None:
            _fill_single(getattr(message, fld.name), kind, item)
        else:
            setattr(message, fld.name, _to_proto_value(kind, item))


def _fill_single(message: Any, schema: Schema, value: Any) -> None:
    if schema.name == TIMESTAMP:
        aware = value if not isinstance(value, int) else logical.from_wire(schema, value)
        message.FromDatetime(aware if aware.tzinfo else aware.replace(tzinfo=dt.UTC))
    else:
        message.SetInParent()
        fill(message, schema, value)


def read(message: Any, schema: Schema) -> Struct:
    values: dict[str, Any] = {}
    for fld in schema.fields:
        current = getattr(message, fld.name)
        kind = fld.schema
        if kind.type == "map":
            assert kind.value_schema is not None
            values[fld.name] = {k: _read_single(kind.value_schema, v) for k, v in current.items()}
        elif kind.type == "array":
            assert kind.value_schema is not None
            values[fld.name] = [_read_single(kind.value_schema, v) for v in current]
        elif kind.optional and not message.HasField(fld.name):
            values[fld.name] = None
        else:
            values[fld.name] = _read_single(kind, current)
    return Struct.trusted(schema, values)


def _read_single(schema: Schema, value: Any) -> Any:
    if schema.name == TIMESTAMP:
        return value.ToDatetime(tzinfo=dt.UTC)
    if schema.type == "struct":
        return read(value, schema)
    return value


# -- the converter ------------------------------------------------------------------------------------


class ProtobufConverter(RegistryConverter):
    SCHEMA_TYPE = "PROTOBUF"

    def configure(self, configs: dict[str, Any], is_key: bool = False) -> None:
        super().configure(configs, is_key)
        self._writers: dict[Any, tuple[int, Any, list[int]]] = {}  # Connect schema -> (id, class, indexes)
        self._readers: dict[tuple[int, tuple[int, ...]], tuple[Any, Schema]] = {}

    def _writer(self, text: str) -> tuple[Any, list[int]]:
        """The message class and index path of the first message of registered .proto text."""
        proto = self._parse(text)
        return message_class(proto, _full_name(proto, [0])), [0]

    @staticmethod
    def _parse(text: str) -> Any:
        from moldau.registry.formats.protobuf import parse

        return parse(text, {}, False).parsed.file

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        if value is None:
            return None
        if schema is None or not isinstance(value, Struct):
            raise DataException("ProtobufConverter needs a struct with a schema (use JsonConverter for schemaless data)")
        from moldau.registry.formats.proto_text import to_proto_text

        try:
            cache_key: Any = hash(schema)  # a Schema with parameters (Decimal) is unhashable: use its repr
            cache_key = schema
        except TypeError:
            cache_key = repr(schema)
        cached = self._writers.get(cache_key)
        if cached is None:
            proto, full_name = to_file_descriptor(schema)
            text = to_proto_text(proto)
            schema_id = self.schema_id(topic, text, full_name)
            if self.use_latest:  # write with the registered schema's field numbers, matched by name
                cls, indexes = self._writer(self.latest(self.subject(topic, full_name))[1])
            else:
                cls, indexes = message_class(proto, full_name), [0]
            cached = (schema_id, cls, indexes)
            self._writers[cache_key] = cached
        schema_id, cls, indexes = cached
        message = cls()
        fill(message, schema, value)
        return _HEADER.pack(MAGIC, schema_id) + encode_indexes(indexes) + message.SerializeToString()

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        if data is None:
            return SchemaAndValue(None, None)
        schema_id, _ = self.writer_schema(data)
        indexes, offset = decode_indexes(data, _HEADER.size)
        key = (schema_id, tuple(indexes))
        if key not in self._readers:
            proto = self._parse(self.client.get_schema(schema_id).schema_str or "")
            cls = message_class(proto, _full_name(proto, indexes))
            self._readers[key] = (cls, to_connect_schema(cls.DESCRIPTOR))
        cls, connect_schema = self._readers[key]
        message = cls()
        message.ParseFromString(data[offset:])
        return SchemaAndValue(connect_schema, read(message, connect_schema))


def _full_name(proto: Any, indexes: list[int]) -> str:
    try:
        message = proto.message_type[indexes[0]]
        name = message.name
        for index in indexes[1:]:
            message = message.nested_type[index]
            name += f".{message.name}"
    except IndexError:
        raise DataException(f"Message indexes {indexes} are not in the registered schema") from None
    return f"{proto.package}.{name}" if proto.package else name

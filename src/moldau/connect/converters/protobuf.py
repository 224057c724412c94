"""io.confluent.connect.protobuf.ProtobufConverter: Connect data as protobuf in Confluent's wire format, magic
byte 0, the 4-byte schema id, the message-index array (zigzag varints: the count, then the index path of the
message in the file; `[0]` is written as the single byte 0), then the protobuf payload.

The schema mapping (protobuf_schema.py) is Confluent's ProtobufData's: int8/int16 through `confluent/meta.proto`
field metadata, Decimal as `confluent.type.Decimal`, Date / Time / Timestamp as `google.type.Date` /
`google.type.TimeOfDay` / `google.protobuf.Timestamp`, nullables as proto3 `optional` (`optional.for.nullables`,
on by default here) or as wrappers (`wrapper.for.nullables`). Values: Decimal's `value` is the unscaled
big-endian two's-complement integer, `precision` its digit count and `scale` the schema's (Confluent's
DecimalUtils); Time keeps microseconds in `nanos`.

The .proto is built as a `FileDescriptorProto`, printed with the registry's own `to_proto_text` (field options
included), and parsed back with the registry's protobuf format when reading, so both sides share one protobuf
implementation. Confluent's known imports (`confluent/...`, `google/type/...`) need no schema references.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from google.protobuf import descriptor_pool  # type: ignore[import-untyped]
from google.protobuf.message_factory import GetMessageClass  # type: ignore[import-untyped]

from moldau.connect.api.data import DATE, DECIMAL, TIME, TIMESTAMP, Schema, SchemaAndValue, Struct
from moldau.connect.api.errors import DataException
from moldau.connect.converters.protobuf_schema import (
    Options,
    default_connect_value,
    to_connect_schema,
    to_file_descriptor,
)
from moldau.connect.converters.registry import _HEADER, MAGIC, RegistryConverter

__all__ = ["ProtobufConverter", "decode_indexes", "encode_indexes", "message_class", "to_connect_schema",
           "to_file_descriptor"]


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


def message_class(proto: Any, full_name: str) -> Any:
    """A message class for `full_name` in a pool of its own (no generated code: nothing is compiled)."""
    from moldau.registry.formats.protobuf import well_known_files

    pool = descriptor_pool.DescriptorPool()
    added: set[bytes] = set()
    for dependency in proto.dependency:
        files = well_known_files(dependency)
        if files is None:
            raise DataException(f"Protobuf import {dependency!r} is not supported by ProtobufConverter")
        for serialized in files:
            if serialized not in added:
                added.add(serialized)
                pool.AddSerializedFile(serialized)
    pool.AddSerializedFile(proto.SerializeToString())
    return GetMessageClass(pool.FindMessageTypeByName(full_name.lstrip(".")))


# -- Connect values -> messages -----------------------------------------------------------------------


def fill(message: Any, schema: Schema, value: Struct) -> None:
    """Set `message`'s fields from a Struct, by field name (so a registered schema with other numbers works)."""
    descriptor = message.DESCRIPTOR
    for fld in schema.fields:
        item = value.get(fld.name)
        if item is None:
            continue  # absent: null for an optional field
        target = descriptor.fields_by_name.get(fld.name)
        if target is None:
            raise DataException(f"Field {fld.name!r} is not in protobuf message {descriptor.full_name}")
        kind = fld.schema
        if kind.type == "map":
            assert kind.key_schema is not None and kind.value_schema is not None
            entry = target.message_type
            container = getattr(message, fld.name)
            for k, v in item.items():
                if k is None or v is None:
                    raise DataException(f"Field {fld.name!r}: protobuf maps cannot hold null keys or values")
                if entry.GetOptions().map_entry:
                    if entry.fields_by_name["value"].message_type is not None:
                        _fill_single(container[k], kind.value_schema, v)
                    else:
                        container[k] = _scalar(kind.value_schema, v)
                else:  # Confluent's generic map entry: a repeated message with key and value
                    pair = container.add()
                    _set(pair, "key", kind.key_schema, k)
                    _set(pair, "value", kind.value_schema, v)
        elif kind.type == "array":
            assert kind.value_schema is not None
            container = getattr(message, fld.name)
            for v in item:
                if v is None:
                    raise DataException(f"Field {fld.name!r}: protobuf repeated fields cannot hold nulls")
                if target.message_type is not None:
                    _fill_single(container.add(), kind.value_schema, v)
                else:
                    container.append(_scalar(kind.value_schema, v))
        else:
            _set(message, fld.name, kind, item)


def _set(message: Any, name: str, schema: Schema, value: Any) -> None:
    if message.DESCRIPTOR.fields_by_name[name].message_type is not None:
        _fill_single(getattr(message, name), schema, value)
    else:
        setattr(message, name, _scalar(schema, value))


def _scalar(schema: Schema, value: Any) -> Any:
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def _fill_single(message: Any, schema: Schema, value: Any) -> None:
    message.SetInParent()
    if schema.name == TIMESTAMP:
        if isinstance(value, int):  # milliseconds, as Connect stores a Timestamp
            message.FromMilliseconds(value)
        else:
            message.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    elif schema.name == DATE:
        day = value if isinstance(value, dt.date) else dt.date(1970, 1, 1) + dt.timedelta(days=int(value))
        message.year, message.month, message.day = day.year, day.month, day.day
    elif schema.name == TIME:
        if isinstance(value, int):
            value = (dt.datetime.min + dt.timedelta(milliseconds=value)).time()
        message.hours, message.minutes, message.seconds = value.hour, value.minute, value.second
        message.nanos = value.microsecond * 1000
    elif schema.name == DECIMAL:
        scale = int((schema.parameters or {}).get("scale", "0"))
        if isinstance(value, bytes | bytearray):
            unscaled = int.from_bytes(value, "big", signed=True)
        else:
            unscaled = int(decimal.Decimal(value).scaleb(scale).to_integral_value(decimal.ROUND_HALF_EVEN))
        message.value = unscaled.to_bytes(max(1, (unscaled.bit_length() + 8) // 8), "big", signed=True)
        message.precision = len(str(abs(unscaled)))  # BigDecimal.precision(): the unscaled value's digits
        message.scale = scale
    elif schema.type == "struct":
        fill(message, schema, value)
    else:  # a google.protobuf.*Value wrapper (wrapper.for.nullables)
        message.value = _scalar(schema, value)


# -- messages -> Connect values -----------------------------------------------------------------------


def read(message: Any, schema: Schema) -> Struct:
    values: dict[str, Any] = {}
    descriptor = message.DESCRIPTOR
    for fld in schema.fields:
        current = getattr(message, fld.name)
        kind = fld.schema
        if kind.type == "map":
            assert kind.key_schema is not None and kind.value_schema is not None
            if descriptor.fields_by_name[fld.name].message_type.GetOptions().map_entry:
                values[fld.name] = {k: _read_single(kind.value_schema, v) for k, v in current.items()}
            else:
                values[fld.name] = {_value(pair, "key", kind.key_schema): _value(pair, "value", kind.value_schema)
                                    for pair in current}
        elif kind.type == "array":
            assert kind.value_schema is not None
            enum = descriptor.fields_by_name[fld.name].enum_type
            values[fld.name] = [_enum_name(enum, v) if enum else _read_single(kind.value_schema, v) for v in current]
        else:
            values[fld.name] = _value(message, fld.name, kind)
    return Struct.trusted(schema, values)


def _enum_name(enum: Any, number: int) -> str:
    """An enum value as its symbol, as ProtobufData reads enums into strings."""
    value = enum.values_by_number.get(number)
    return value.name if value is not None else str(number)


def _value(message: Any, name: str, schema: Schema) -> Any:
    fld = message.DESCRIPTOR.fields_by_name[name]
    if fld.has_presence and not message.HasField(name):
        if schema.optional:
            return None
        if fld.message_type is not None:  # absent and required: the default message, as proto3 reads scalars
            default = default_connect_value(schema)
            if default is not None or schema.type != "struct":
                return default
    if fld.enum_type is not None:
        return _enum_name(fld.enum_type, getattr(message, name))
    return _read_single(schema, getattr(message, name))


def _read_single(schema: Schema, value: Any) -> Any:
    if schema.name == TIMESTAMP:
        return value.ToDatetime(tzinfo=dt.UTC)
    if schema.name == DATE:
        if not (value.year or value.month or value.day):
            return dt.date(1970, 1, 1)
        return dt.date(value.year, value.month, value.day)
    if schema.name == TIME:
        return dt.time(value.hours, value.minutes, value.seconds, value.nanos // 1000)
    if schema.name == DECIMAL:
        scale = int((schema.parameters or {}).get("scale", "0"))
        unscaled = int.from_bytes(value.value, "big", signed=True)
        exact = decimal.Decimal(unscaled).scaleb(-value.scale, decimal.Context(prec=1000))
        return exact.quantize(decimal.Decimal(1).scaleb(-scale), context=decimal.Context(prec=1000))
    if schema.type == "struct":
        return read(value, schema)
    if hasattr(value, "DESCRIPTOR"):  # a wrapper read as its primitive
        return value.value
    return value


# -- the converter ------------------------------------------------------------------------------------


class ProtobufConverter(RegistryConverter):
    SCHEMA_TYPE = "PROTOBUF"

    def configure(self, configs: dict[str, Any], is_key: bool = False) -> None:
        super().configure(configs, is_key)
        # ProtobufDataConfig's names; optional.for.nullables defaults to true here (Confluent: false), see
        # protobuf_schema.py
        self.options = Options(
            optional_for_nullables=str(configs.get("optional.for.nullables", "true")).lower() == "true",
            wrapper_for_nullables=str(configs.get("wrapper.for.nullables", "false")).lower() == "true")
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
            proto, full_name = to_file_descriptor(schema, self.options)
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
            self._readers[key] = (cls, to_connect_schema(cls.DESCRIPTOR, self.options))
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

"""Connect schemas <-> protobuf descriptors, as Confluent's ProtobufData (io.confluent.connect.protobuf) maps them.

Connect -> .proto (proto3): a struct is a message (its name gives package and message name), fields are numbered
1..n in order, nested structs are nested messages, arrays are `repeated`, maps are `map<K, V>` when protobuf's
map rules allow (scalar key and a value needing no field metadata), else a repeated `<Name>Entry` message with
`key` and `value` fields (Confluent's generic map entries). Logical types use Confluent's messages:
Timestamp `google.protobuf.Timestamp`, Date `google.type.Date`, Time `google.type.TimeOfDay`, Decimal
`confluent.type.Decimal` with `precision`/`scale` in `(confluent.field_meta).params`; int8/int16 are int32 with
`connect.type` = int8/int16 in the same params (ProtobufData's CONNECT_TYPE_PROP).

Optional vs required (`Options`):
- `optional.for.nullables` (Moldau's default true; Confluent's false): an optional field gets proto3's `optional`
  keyword, whatever its type, as ProtobufData writes it; reading, a field is optional iff it has the keyword.
  Beyond Confluent's reader (which makes every message-typed field optional), a message-typed field without the
  keyword reads as required, so required structs / Timestamps / Dates / Decimals keep their schema; absent,
  such a field reads as its default (proto3's rule for absent scalars).
- `wrapper.for.nullables` (default false): optional primitives become `google.protobuf.*Value` wrappers, and
  wrappers read back as optional primitives.
- both false: everything reads as optional (Confluent's default reader).
Repeated fields have no presence: arrays and maps read back optional, their elements required (null elements
cannot be written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]

from moldau.connect.api.data import DATE, DECIMAL, TIME, TIMESTAMP, Schema
from moldau.connect.api.errors import DataException

FD = descriptor_pb2.FieldDescriptorProto
META_FILE = "confluent/meta.proto"
CONNECT_TYPE = "connect.type"  # ProtobufData.CONNECT_TYPE_PROP
CONNECT_PRECISION = "connect.decimal.precision"  # ProtobufData.CONNECT_PRECISION_PROP
# Connect logical name -> (protobuf message, its file)
LOGICAL = {TIMESTAMP: ("google.protobuf.Timestamp", "google/protobuf/timestamp.proto"),
           DATE: ("google.type.Date", "google/type/date.proto"),
           TIME: ("google.type.TimeOfDay", "google/type/timeofday.proto"),
           DECIMAL: ("confluent.type.Decimal", "confluent/type/decimal.proto")}
_LOGICAL_BY_MESSAGE = {message: (name, "bytes" if name == DECIMAL else "int64" if name == TIMESTAMP else "int32")
                       for name, (message, _) in LOGICAL.items()}
WRAPPERS_FILE = "google/protobuf/wrappers.proto"
_WRAPPER = {"int8": "Int32Value", "int16": "Int32Value", "int32": "Int32Value", "int64": "Int64Value",
            "float32": "FloatValue", "float64": "DoubleValue", "boolean": "BoolValue", "string": "StringValue",
            "bytes": "BytesValue"}
# ProtobufData.toUnwrappedSchema: unsigned 32-bit widens to int64
_UNWRAPPED = {"google.protobuf.DoubleValue": "float64", "google.protobuf.FloatValue": "float32",
              "google.protobuf.Int64Value": "int64", "google.protobuf.UInt64Value": "int64",
              "google.protobuf.Int32Value": "int32", "google.protobuf.UInt32Value": "int64",
              "google.protobuf.BoolValue": "boolean", "google.protobuf.StringValue": "string",
              "google.protobuf.BytesValue": "bytes"}
_SCALAR = {"int8": FD.TYPE_INT32, "int16": FD.TYPE_INT32, "int32": FD.TYPE_INT32, "int64": FD.TYPE_INT64,
           "float32": FD.TYPE_FLOAT, "float64": FD.TYPE_DOUBLE, "boolean": FD.TYPE_BOOL, "string": FD.TYPE_STRING,
           "bytes": FD.TYPE_BYTES}
_MAP_KEYS = ("string", "int32", "int64", "boolean")
_TO_CONNECT = {FD.TYPE_INT32: "int32", FD.TYPE_SINT32: "int32", FD.TYPE_SFIXED32: "int32", FD.TYPE_UINT32: "int64",
               FD.TYPE_FIXED32: "int64", FD.TYPE_INT64: "int64", FD.TYPE_SINT64: "int64", FD.TYPE_SFIXED64: "int64",
               FD.TYPE_UINT64: "int64", FD.TYPE_FIXED64: "int64", FD.TYPE_FLOAT: "float32",
               FD.TYPE_DOUBLE: "float64", FD.TYPE_BOOL: "boolean", FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes",
               FD.TYPE_ENUM: "string"}


@dataclass(frozen=True, slots=True)
class Options:
    optional_for_nullables: bool = True
    wrapper_for_nullables: bool = False


def _meta_extension() -> Any:
    from confluent_kafka.schema_registry.confluent import meta_pb2  # registers confluent/meta.proto

    return meta_pb2.field_meta  # type: ignore[attr-defined]


def field_params(options: Any) -> dict[str, str]:
    """`(confluent.field_meta).params` of a FieldOptions message (empty when absent)."""
    extension = _meta_extension()
    return dict(options.Extensions[extension].params) if options.HasExtension(extension) else {}


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


def _message_name(name: str | None, fallback: str) -> str:
    simple = (name or fallback).rsplit(".", 1)[-1]
    return "".join(c if c.isalnum() or c == "_" else "_" for c in simple) or fallback


# -- Connect schema -> FileDescriptorProto ------------------------------------------------------------


def to_file_descriptor(schema: Schema, options: Options = Options()) -> tuple[Any, str]:
    """The proto3 file for a struct schema, and the full name of its message."""
    if schema.type != "struct":
        raise DataException(f"ProtobufConverter needs a struct schema, not {schema.type}")
    package = schema.name.rpartition(".")[0] if schema.name else ""
    proto = descriptor_pb2.FileDescriptorProto(name="schema.proto", syntax="proto3", package=package)
    top = proto.message_type.add()
    _Writer(proto, options).message(top, schema, "ConnectDefault1")
    return proto, f"{package}.{top.name}" if package else top.name


class _Writer:
    def __init__(self, file: Any, options: Options) -> None:
        self.file, self.options = file, options

    def _depend(self, name: str) -> None:
        if name not in self.file.dependency:
            self.file.dependency.append(name)

    def message(self, out: Any, schema: Schema, fallback: str) -> None:
        out.name = _message_name(schema.name, fallback)
        nested: dict[str, Schema] = {}  # message name -> the struct schema it stands for (equal ones share it)
        for number, fld in enumerate(schema.fields, 1):
            self.field(out, fld.name, number, fld.schema, nested)
        for target in out.field:  # synthetic oneofs come after real ones, as protoc orders them
            if target.proto3_optional:
                target.oneof_index = len(out.oneof_decl)
                out.oneof_decl.add(name=f"_{target.name}")

    def field(self, out: Any, name: str, number: int, schema: Schema, nested: dict[str, Schema],
              scope: Any = None) -> Any:
        """Add field `name` to message `out`; nested messages it needs go into `scope` (default: `out`)."""
        scope = out if scope is None else scope
        target = out.field.add(name=name, number=number, label=FD.LABEL_OPTIONAL)
        element = schema
        if schema.type == "array":
            assert schema.value_schema is not None
            target.label, element = FD.LABEL_REPEATED, schema.value_schema
            if element.type in ("array", "map"):
                raise DataException(f"Field {name!r}: protobuf has no nested repeated fields")
        if element.type == "map":
            self._map(out, target, element, nested)
            return target
        self._type(scope, target, element, nested, wrap=element.optional)
        if (target.label != FD.LABEL_REPEATED and schema.optional and self.options.optional_for_nullables):
            target.proto3_optional = True
        return target

    def _map(self, out: Any, target: Any, schema: Schema, nested: dict[str, Schema]) -> None:
        key, value = schema.key_schema, schema.value_schema
        assert key is not None and value is not None
        entry = out.nested_type.add(name=_camel(target.name) + "Entry")
        # A protobuf map when its rules allow; else Confluent's generic repeated entry message
        plain = (key.type in _MAP_KEYS and key.name is None and not key.optional and not value.optional
                 and value.type not in ("int8", "int16") and value.name != DECIMAL)
        if plain:
            entry.options.map_entry = True
        for index, (field_name, field_schema) in enumerate((("key", key), ("value", value)), 1):
            if field_schema.type in ("array", "map"):
                raise DataException(f"Field {target.name!r}: protobuf map keys and values cannot be repeated")
            # a struct key or value is defined next to the entry: a map entry may not nest types
            self.field(entry, field_name, index, field_schema, nested, scope=out)
        for inner in entry.field:
            if inner.proto3_optional:
                inner.oneof_index = len(entry.oneof_decl)
                entry.oneof_decl.add(name=f"_{inner.name}")
        target.label, target.type, target.type_name = FD.LABEL_REPEATED, FD.TYPE_MESSAGE, entry.name

    def _type(self, out: Any, target: Any, schema: Schema, nested: dict[str, Schema], wrap: bool) -> None:
        params: dict[str, str] = {}
        if schema.name in LOGICAL:
            message, file = LOGICAL[schema.name]
            target.type, target.type_name = FD.TYPE_MESSAGE, f".{message}"
            self._depend(file)
            if schema.name == DECIMAL:
                parameters = schema.parameters or {}
                if CONNECT_PRECISION in parameters:
                    params["precision"] = parameters[CONNECT_PRECISION]
                params["scale"] = parameters.get("scale", "0")
        elif schema.type == "struct":
            name = _message_name(schema.name, _camel(target.name))
            if name == target.name:
                name += "Message"  # a message and a field may not share a name (ProtobufData does the same)
            shape = _with_optional(schema, False)  # an optional and a required use of a struct share its message
            base, suffix = name, 1
            while name in nested and nested[name] != shape:
                suffix += 1
                name = f"{base}{suffix}"
            if name not in nested:
                nested[name] = shape
                self.message(out.nested_type.add(), schema, name)
                out.nested_type[-1].name = name
            target.type, target.type_name = FD.TYPE_MESSAGE, name
        elif wrap and self.options.wrapper_for_nullables and target.label != FD.LABEL_REPEATED:
            target.type, target.type_name = FD.TYPE_MESSAGE, f".google.protobuf.{_WRAPPER[schema.type]}"
            self._depend(WRAPPERS_FILE)
        else:
            target.type = _SCALAR[schema.type]
        if schema.type in ("int8", "int16") and schema.name is None:
            params[CONNECT_TYPE] = schema.type
        if params:
            self._depend(META_FILE)
            target.options.Extensions[_meta_extension()].params.update(params)


# -- descriptor -> Connect schema ---------------------------------------------------------------------


def to_connect_schema(descriptor: Any, options: Options = Options(), optional: bool = False) -> Schema:
    """The Connect struct schema of a message descriptor (field keywords and options read from its proto)."""
    _meta_extension()  # registered before the options are parsed below
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    by_name = {f.name: f for f in proto.field}
    fields = [(f.name, _field_schema(f, by_name[f.name], options)) for f in descriptor.fields]
    return Schema.struct(fields, name=descriptor.full_name, optional=optional)


def is_map(fld: Any) -> bool:
    """A protobuf map, or Confluent's generic map entry (ProtobufData.isMapDescriptor)."""
    message = fld.message_type
    if not fld.is_repeated or message is None:
        return False
    if message.GetOptions().map_entry:
        return True
    names = [f.name for f in message.fields]
    return message.name.endswith("Entry") and names == ["key", "value"] and not any(
        f.is_repeated for f in message.fields)


def _field_schema(fld: Any, proto: Any, options: Options) -> Schema:
    if is_map(fld):
        entry = fld.message_type
        entry_proto = descriptor_pb2.DescriptorProto()
        entry.CopyToProto(entry_proto)
        key, value = (_field_schema(entry.fields_by_name[n], entry_proto.field[i], options)
                      for i, n in enumerate(("key", "value")))
        return Schema.map(key, value, optional=True)
    element = _single(fld, proto, options)
    if fld.is_repeated:
        return Schema.array(element, optional=True)
    if fld.containing_oneof is not None:  # a oneof member: at most one is set (Confluent: a union's field)
        optional = True
    elif options.optional_for_nullables:
        optional = keyword_optional(fld, proto)
    else:
        optional = fld.message_type is not None if options.wrapper_for_nullables else True
    return element if element.optional == optional else _with_optional(element, optional)


def keyword_optional(fld: Any, proto: Any) -> bool:
    """proto3's `optional` keyword, or a proto2 optional field (ProtobufData.hasOptionalKeyword)."""
    file = descriptor_pb2.FileDescriptorProto()
    fld.file.CopyToProto(file)
    proto2 = file.syntax in ("", "proto2")
    return bool(proto.proto3_optional) or (proto2 and proto.label == FD.LABEL_OPTIONAL
                                           and fld.containing_oneof is None)


def _with_optional(schema: Schema, optional: bool) -> Schema:
    from moldau.connect.api.data import replace_schema

    return replace_schema(schema, optional=optional)


def _single(fld: Any, proto: Any, options: Options) -> Schema:
    """The schema of one value of the field (required: the caller decides the field's optionality)."""
    params = field_params(proto.options)
    message = fld.message_type
    if message is not None:
        if message.full_name in _LOGICAL_BY_MESSAGE:
            name, kind = _LOGICAL_BY_MESSAGE[message.full_name]
            parameters = None
            if name == DECIMAL:  # ProtobufData.toConnectSchema: scale defaults to 0
                parameters = {"scale": params.get("scale", "0")}
                if "precision" in params:
                    parameters[CONNECT_PRECISION] = params["precision"]
            return Schema(kind, name=name, version=1, parameters=parameters)
        if options.wrapper_for_nullables and message.full_name in _UNWRAPPED:
            return Schema(params.get(CONNECT_TYPE) or _UNWRAPPED[message.full_name])
        return to_connect_schema(message, options)
    kind = _TO_CONNECT[fld.type]
    if kind == "int32" and params.get(CONNECT_TYPE) in ("int8", "int16"):
        kind = params[CONNECT_TYPE]
    return Schema(kind)


def default_connect_value(schema: Schema) -> Any:
    """What an absent required message-typed field reads as: protobuf's default message, in Connect terms."""
    import datetime as dt
    import decimal

    if schema.name == TIMESTAMP:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if schema.name == DATE:
        return dt.date(1970, 1, 1)
    if schema.name == TIME:
        return dt.time(0)
    if schema.name == DECIMAL:
        return decimal.Decimal(0).scaleb(-int((schema.parameters or {}).get("scale", "0")))
    return None

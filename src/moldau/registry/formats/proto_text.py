"""`.proto` text to a `FileDescriptorProto`: proto-schema-parser gives the syntax tree, this module maps it onto
descriptor.proto's messages the way protoc does (map fields become `*Entry` messages, proto3 `optional` a
synthetic oneof). Type names stay as written; `DescriptorPool` resolves them. Field options are kept when
descriptor.proto or an imported known extension defines them (Confluent's `(confluent.field_meta)`, which
carries ProtobufConverter's Connect types); other options are dropped."""

from __future__ import annotations

import importlib
from typing import Any

from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2, text_encoding, text_format  # type: ignore[import-untyped]
from proto_schema_parser import ast
from proto_schema_parser.generator import Generator
from proto_schema_parser.parser import Parser

from moldau.registry.errors import InvalidSchema

FD = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": FD.TYPE_DOUBLE, "float": FD.TYPE_FLOAT, "int64": FD.TYPE_INT64, "uint64": FD.TYPE_UINT64,
    "int32": FD.TYPE_INT32, "fixed64": FD.TYPE_FIXED64, "fixed32": FD.TYPE_FIXED32, "bool": FD.TYPE_BOOL,
    "string": FD.TYPE_STRING, "bytes": FD.TYPE_BYTES, "uint32": FD.TYPE_UINT32, "sfixed32": FD.TYPE_SFIXED32,
    "sfixed64": FD.TYPE_SFIXED64, "sint32": FD.TYPE_SINT32, "sint64": FD.TYPE_SINT64,
}


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any) -> None:
        raise InvalidSchema(f"Invalid schema: .proto syntax error at line {line}:{column}: {msg}")


def _strict(recognizer: Any) -> None:
    recognizer.removeErrorListeners()
    recognizer.addErrorListener(_Raise())


def to_file_descriptor(text: str) -> Any:
    tree = Parser(setup_lexer=_strict, setup_parser=_strict).parse(text)
    proto = descriptor_pb2.FileDescriptorProto(syntax=tree.syntax or "proto2")
    proto3 = proto.syntax == "proto3"
    for element in tree.file_elements:
        if isinstance(element, ast.Package):
            proto.package = element.name
        elif isinstance(element, ast.Import):
            if element.public:
                proto.public_dependency.append(len(proto.dependency))
            proto.dependency.append(element.name)
        elif isinstance(element, ast.Message):
            _message(proto.message_type.add(), element, proto3)
        elif isinstance(element, ast.Enum):
            _enum(proto.enum_type.add(), element)
        elif isinstance(element, ast.Service):
            _service(proto.service.add(), element)
    return proto


def _message(out: Any, message: ast.Message, proto3: bool) -> None:
    out.name = message.name
    for element in message.elements:
        if isinstance(element, ast.Field):
            _field(out, out.field.add(), element, proto3)
        elif isinstance(element, ast.MapField):
            _map(out, element)
        elif isinstance(element, ast.OneOf):
            index = len(out.oneof_decl)
            out.oneof_decl.add(name=element.name)
            for inner in element.elements:
                if isinstance(inner, ast.Field):
                    field = out.field.add()
                    _field(out, field, inner, proto3)
                    field.oneof_index = index
        elif isinstance(element, ast.Message):
            _message(out.nested_type.add(), element, proto3)
        elif isinstance(element, ast.Enum):
            _enum(out.enum_type.add(), element)
        elif isinstance(element, ast.Reserved):
            out.reserved_name.extend(element.names)
    # proto3 optional fields' synthetic oneofs come after the real ones (descriptor.proto requires it)
    for field in out.field:
        if field.proto3_optional:
            field.oneof_index = len(out.oneof_decl)
            out.oneof_decl.add(name=f"_{field.name}")


def _field(message: Any, out: Any, field: ast.Field, proto3: bool) -> None:
    out.name, out.number = field.name, field.number
    cardinality = field.cardinality
    if cardinality == ast.FieldCardinality.REPEATED:
        out.label = FD.LABEL_REPEATED
    elif cardinality == ast.FieldCardinality.REQUIRED:
        out.label = FD.LABEL_REQUIRED
    else:
        out.label = FD.LABEL_OPTIONAL
        if cardinality == ast.FieldCardinality.OPTIONAL and proto3:
            out.proto3_optional = True
    if field.type in SCALARS:
        out.type = SCALARS[field.type]
    else:
        out.type_name = field.type  # message or enum: the pool resolves which, and the full name
    _field_options(out, field.options)


# Extensions whose options survive: the module that registers each in the default pool (for text_format)
_EXTENSION_MODULES = {"confluent.": "confluent_kafka.schema_registry.confluent.meta_pb2"}


def _field_options(out: Any, options: list[Any]) -> None:
    """`[name = value, ...]` onto FieldOptions, through protobuf's text format (which knows descriptor.proto's
    fields and registered extensions); an option it cannot place is dropped, as before options were kept."""
    for option in options:
        parts = option.name.replace(")", "(").split("(")  # "(a.b).c" -> ["", "a.b", ".c"]
        names: list[str] = []
        for index, part in enumerate(parts):
            if index % 2:
                names.append(f"[{part}]")
                module = next((m for prefix, m in _EXTENSION_MODULES.items() if part.startswith(prefix)), None)
                if module is not None:
                    importlib.import_module(module)
            else:
                names += [n for n in part.split(".") if n]
        if not names:
            continue
        text = f"{names[-1]}: {_literal_text(option.value)}"
        for name in reversed(names[:-1]):
            text = f"{name} {{ {text} }}"
        try:
            text_format.Merge(text, out.options)
        except (text_format.ParseError, KeyError, TypeError, ValueError):
            continue


def _literal_text(value: Any) -> str:
    if isinstance(value, ast.MessageLiteral):
        return "{ " + " ".join(f"{f.name}: {_literal_text(f.value)}" for f in value.elements
                               if isinstance(f, ast.MessageLiteralField)) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_literal_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + text_encoding.CEscape(value, as_utf8=True) + '"'
    if isinstance(value, ast.Identifier):
        return str(value.name)
    return str(value)


def _map(message: Any, field: ast.MapField) -> None:
    entry_name = "".join(part[:1].upper() + part[1:] for part in field.name.split("_")) + "Entry"
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    for number, (name, type_name) in enumerate((("key", field.key_type), ("value", field.value_type)), 1):
        _field(entry, entry.field.add(), ast.Field(name=name, number=number, type=type_name), False)
    message.field.add(name=field.name, number=field.number, label=FD.LABEL_REPEATED, type_name=entry_name)


def _enum(out: Any, enum: ast.Enum) -> None:
    out.name = enum.name
    for element in enum.elements:
        if isinstance(element, ast.EnumValue):
            out.value.add(name=element.name, number=element.number)


def _service(out: Any, service: ast.Service) -> None:
    out.name = service.name
    for element in service.elements:
        if isinstance(element, ast.Method):
            out.method.add(name=element.name, input_type=_type_name(element.input_type),
                           output_type=_type_name(element.output_type))


def _type_name(message_type: Any) -> str:
    return str(getattr(message_type, "type", message_type))


# -- FileDescriptorProto to .proto text (for schemas that arrive as base64 descriptors) ----------------------

_SCALAR_NAMES = {number: name for name, number in SCALARS.items()}


def to_proto_text(proto: Any) -> str:
    """The .proto text of a resolved `FileDescriptorProto` (full type names), as Confluent stores a schema
    that confluent-kafka's ProtobufSerializer sent as a base64 descriptor."""
    elements: list[Any] = []
    if proto.package:
        elements.append(ast.Package(name=proto.package))
    public = set(proto.public_dependency)
    elements += [ast.Import(name=name, public=index in public) for index, name in enumerate(proto.dependency)]
    proto3 = proto.syntax == "proto3"
    elements += [_message_ast(m, proto3) for m in proto.message_type]
    elements += [_enum_ast(e) for e in proto.enum_type]
    for service in proto.service:
        elements.append(ast.Service(name=service.name, elements=[
            ast.Method(name=m.name, input_type=ast.MessageType(type=m.input_type, stream=m.client_streaming),
                       output_type=ast.MessageType(type=m.output_type, stream=m.server_streaming))
            for m in service.method]))
    return str(Generator().generate(ast.File(syntax=proto.syntax or "proto2", file_elements=elements)))


def _message_ast(message: Any, proto3: bool) -> Any:
    entries = {nested.name: nested for nested in message.nested_type if nested.options.map_entry}
    elements: list[Any] = []
    oneofs: dict[int, Any] = {}
    for field in message.field:
        entry_name = field.type_name.rsplit(".", 1)[-1]
        if field.label == FD.LABEL_REPEATED and field.type_name and entry_name in entries:
            key, value = entries[entry_name].field
            elements.append(ast.MapField(name=field.name, number=field.number, key_type=_type_of(key),
                                         value_type=_type_of(value)))
            continue
        node = ast.Field(name=field.name, number=field.number, type=_type_of(field),
                         cardinality=_cardinality(field, proto3), options=_options_ast(field.options))
        if field.HasField("oneof_index") and not field.proto3_optional:
            if field.oneof_index not in oneofs:
                oneofs[field.oneof_index] = ast.OneOf(name=message.oneof_decl[field.oneof_index].name, elements=[])
                elements.append(oneofs[field.oneof_index])
            node.cardinality = None
            oneofs[field.oneof_index].elements.append(node)
        else:
            elements.append(node)
    elements += [_message_ast(m, proto3) for m in message.nested_type if not m.options.map_entry]
    elements += [_enum_ast(e) for e in message.enum_type]
    if message.reserved_name:
        elements.append(ast.Reserved(names=list(message.reserved_name)))
    return ast.Message(name=message.name, elements=elements)


def _options_ast(options: Any) -> list[Any]:
    out = []
    for descriptor, value in options.ListFields():
        name = f"({descriptor.full_name})" if descriptor.is_extension else descriptor.name
        out.append(ast.Option(name=name, value=_literal_ast(descriptor, value)))
    return out


def _literal_ast(descriptor: Any, value: Any) -> Any:
    if descriptor.is_repeated:
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            key, item = descriptor.message_type.fields_by_name["key"], descriptor.message_type.fields_by_name["value"]
            return [ast.MessageLiteral(elements=[ast.MessageLiteralField(name="key", value=_single_ast(key, k)),
                                                 ast.MessageLiteralField(name="value", value=_single_ast(item, v))])
                    for k, v in sorted(value.items())]
        return [_single_ast(descriptor, v) for v in value]
    return _single_ast(descriptor, value)


def _single_ast(descriptor: Any, value: Any) -> Any:
    if descriptor.message_type is not None:
        return ast.MessageLiteral(elements=[ast.MessageLiteralField(name=d.name, value=_literal_ast(d, v))
                                            for d, v in value.ListFields()])
    if descriptor.enum_type is not None:
        return ast.Identifier(name=descriptor.enum_type.values_by_number[value].name)
    return value


def _type_of(field: Any) -> str:
    return str(field.type_name) if field.type_name else _SCALAR_NAMES[field.type]


def _cardinality(field: Any, proto3: bool) -> Any:
    if field.label == FD.LABEL_REPEATED:
        return ast.FieldCardinality.REPEATED
    if field.label == FD.LABEL_REQUIRED:
        return ast.FieldCardinality.REQUIRED
    if not proto3 or field.proto3_optional:
        return ast.FieldCardinality.OPTIONAL
    return None


def _enum_ast(enum: Any) -> Any:
    return ast.Enum(name=enum.name, elements=[ast.EnumValue(name=v.name, number=v.number) for v in enum.value])

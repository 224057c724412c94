"""Protobuf: schemas arrive as .proto text (Java clients) or as a base64 `FileDescriptorProto` (confluent-kafka's
ProtobufSerializer). Text is parsed by proto-schema-parser and turned into a `FileDescriptorProto`; protobuf's own
`DescriptorPool` then resolves names and validates, so the compatibility rules below work on resolved
descriptors. The rules are Confluent's protobuf `SchemaDiff` (which changes it calls compatible), checked
against the cases of Confluent's `diff-schema-examples.json`.
"""

from __future__ import annotations

import base64
import binascii
import importlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from moldau.registry.errors import InvalidSchema
from moldau.registry.formats import PROTOBUF, ParsedSchema
from moldau.registry.formats.proto_text import to_file_descriptor, to_proto_text

FDP = descriptor_pb2.FileDescriptorProto
FD = descriptor_pb2.FieldDescriptorProto
T = FD.Type


_WELL_KNOWN_MODULES = ("any_pb2", "api_pb2", "descriptor_pb2", "duration_pb2", "empty_pb2", "field_mask_pb2",
                       "source_context_pb2", "struct_pb2", "timestamp_pb2", "type_pb2", "wrappers_pb2")
# Confluent's ProtobufSchema.KNOWN_DEPENDENCIES beyond google/protobuf/: imports a schema may use without
# references (ProtobufConverter writes them: int8/int16 and Decimal metadata, Decimal, Date, TimeOfDay).
# confluent-kafka bundles confluent/*.proto, googleapis-common-protos google/type/*.proto.
_KNOWN_MODULES = {"confluent/meta.proto": "confluent_kafka.schema_registry.confluent.meta_pb2",
                  "confluent/type/decimal.proto": "confluent_kafka.schema_registry.confluent.type.decimal_pb2",
                  "confluent/type/variant.proto": "confluent_kafka.schema_registry.confluent.type.variant_pb2"}


def _well_known(name: str) -> bytes | None:
    """google/protobuf/*.proto as bundled with the protobuf package, and Confluent's other known imports."""
    if name.startswith("google/protobuf/"):
        modules = [f"google.protobuf.{module}" for module in _WELL_KNOWN_MODULES]
    elif name.startswith("google/type/") and name.endswith(".proto") and name[12:-6].isidentifier():
        modules = [f"google.type.{name[12:-6]}_pb2"]
    elif name in _KNOWN_MODULES:
        modules = [_KNOWN_MODULES[name]]
    else:
        return None
    for module in modules:  # importing a generated module registers its file in the default pool
        try:
            importlib.import_module(module)
        except ImportError:
            return None
    try:
        return bytes(descriptor_pool.Default().FindFileByName(name).serialized_pb)
    except KeyError:
        return None


def well_known_files(name: str) -> list[bytes] | None:
    """A known import and, first, the known imports it needs itself (confluent/meta.proto needs
    google/protobuf/descriptor.proto): a pool takes a file only after its dependencies."""
    serialized = _well_known(name)
    if serialized is None:
        return None
    out: list[bytes] = []
    for dependency in FDP.FromString(serialized).dependency:
        out += well_known_files(dependency) or []
    return [*out, serialized]


@dataclass(slots=True)
class Resolved:
    file: Any  # FileDescriptorProto, resolved (full type names, types set)
    # full name -> (DescriptorProto, package, defined in the schema itself rather than a reference)
    messages: dict[str, tuple[Any, str, bool]] = field(default_factory=dict)


def _decode(text: str) -> tuple[Any, bool]:
    """The schema's FileDescriptorProto, and whether it came as a base64 descriptor rather than .proto text."""
    stripped = text.strip()
    if "{" not in stripped and ";" not in stripped:
        try:
            proto = FDP()
            proto.ParseFromString(base64.b64decode(stripped, validate=True))
            return proto, True
        except (binascii.Error, DecodeError, ValueError):
            pass
    return to_file_descriptor(text), False


def parse(text: str, dependencies: dict[str, ParsedSchema], normalize: bool) -> ParsedSchema:
    proto, from_descriptor = _decode(text)
    if not proto.name:
        proto.name = "schema.proto"
    pool = descriptor_pool.DescriptorPool()
    resolved = Resolved(FDP())
    for name, dependency in dependencies.items():
        _add(pool, name, dependency, resolved)
    for name in proto.dependency:
        if name not in dependencies:
            files = well_known_files(name)
            if files is None:
                raise InvalidSchema(f"Invalid schema: import {name!r} has no reference")
            for serialized in files:
                _add_serialized(pool, serialized)
                _index(resolved, FDP.FromString(serialized), main=False)
    try:
        descriptor = pool.AddSerializedFile(proto.SerializeToString())
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidSchema(f"Invalid schema: {exc}") from None
    descriptor.CopyToProto(resolved.file)
    _index(resolved, resolved.file)
    # Like Confluent, a descriptor is stored as .proto text; `?format=serialized` gives the descriptor back.
    stored = to_proto_text(resolved.file) if from_descriptor else text.strip() if normalize else text
    return ParsedSchema(PROTOBUF, stored, resolved, dict(dependencies))


def _add_serialized(pool: Any, serialized: bytes) -> None:
    try:
        pool.AddSerializedFile(serialized)
    except (TypeError, ValueError):
        pass  # already in this pool


def _add(pool: Any, name: str, dependency: ParsedSchema, resolved: Resolved) -> None:
    for inner_name, inner in dependency.dependencies.items():
        _add(pool, inner_name, inner, resolved)
    proto = FDP()
    proto.CopyFrom(dependency.parsed.file)
    proto.name = name
    for wanted in proto.dependency:
        for serialized in well_known_files(wanted) or []:
            _add_serialized(pool, serialized)
            _index(resolved, FDP.FromString(serialized), main=False)
    _add_serialized(pool, proto.SerializeToString())
    _index(resolved, proto, main=False)


def _index(resolved: Resolved, proto: Any, main: bool = True) -> None:
    def walk(message: Any, prefix: str) -> None:
        full = f"{prefix}.{message.name}"
        resolved.messages[full] = (message, proto.package, main)
        for nested in message.nested_type:
            walk(nested, full)

    for message in proto.message_type:
        walk(message, f".{proto.package}" if proto.package else "")


def formatted(schema: ParsedSchema, fmt: str) -> str:
    """`?format=serialized`: the base64 FileDescriptorProto confluent-kafka's deserializer asks for."""
    if fmt == "serialized":
        return base64.b64encode(schema.parsed.file.SerializeToString()).decode()
    return schema.text


# -- compatibility ------------------------------------------------------------------------------------

# Scalar types that read each other's encoding (protobuf's "Updating A Message Type" rules, as Confluent groups them).
_GROUPS = [
    {T.TYPE_INT32, T.TYPE_UINT32, T.TYPE_INT64, T.TYPE_UINT64, T.TYPE_BOOL, T.TYPE_ENUM},
    {T.TYPE_SINT32, T.TYPE_SINT64},
    {T.TYPE_FIXED32, T.TYPE_SFIXED32},
    {T.TYPE_FIXED64, T.TYPE_SFIXED64},
    {T.TYPE_STRING, T.TYPE_BYTES},
]
_MESSAGE_TYPES = {T.TYPE_MESSAGE, T.TYPE_GROUP}


def _relative(full_name: str, package: str) -> str:
    prefix = f".{package}." if package else "."
    return full_name[len(prefix):] if full_name.startswith(prefix) else full_name.lstrip(".")


def incompatibilities(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    """Confluent's SchemaDiff.compare(original=writer, update=reader), keeping only incompatible changes."""
    return _Diff(writer.parsed, reader.parsed).run()


class _Diff:
    def __init__(self, original: Resolved, update: Resolved) -> None:
        self.original, self.update = original, update
        self.problems: list[str] = []
        self._seen: set[tuple[str, str]] = set()

    def _by_relative(self, resolved: Resolved, main_only: bool) -> dict[str, tuple[str, Any]]:
        return {_relative(full, entry[1]): (full, entry[0]) for full, entry in resolved.messages.items()
                if (not main_only or entry[2]) and not entry[0].options.map_entry}

    def run(self) -> list[str]:
        originals = self._by_relative(self.original, main_only=True)
        updates = self._by_relative(self.update, main_only=True)
        for name, (full, message) in originals.items():
            if name not in updates:
                self.problems.append(f"MESSAGE_REMOVED #/{name.replace('.', '/')}")
                continue
            self._message(full, message, updates[name][0], updates[name][1], name)
        return self.problems

    def _message(self, original_name: str, original: Any, update_name: str, update: Any, path: str) -> None:
        if (original_name, update_name) in self._seen:
            return
        self._seen.add((original_name, update_name))
        where = f"#/{path.replace('.', '/')}"
        before = {f.number: f for f in original.field}
        after = {f.number: f for f in update.field}
        for number, old in before.items():
            if number not in after:
                if old.label == FD.LABEL_REQUIRED:
                    self.problems.append(f"REQUIRED_FIELD_REMOVED {where}/{number}")
                elif self._real_oneof(original, old) is not None:
                    self.problems.append(f"ONEOF_FIELD_REMOVED {where}/{number}")
        for number, new in after.items():
            if number not in before and new.label == FD.LABEL_REQUIRED:
                self.problems.append(f"REQUIRED_FIELD_ADDED {where}/{number}")
        moved: dict[str, int] = {}
        for number in before.keys() & after.keys():
            old, new = before[number], after[number]
            self._field(old, new, f"{where}/{number}")
            old_oneof, new_oneof = self._real_oneof(original, old), self._real_oneof(update, new)
            if old_oneof is None and new_oneof is not None:
                if new_oneof in {o.name for o in original.oneof_decl}:
                    self.problems.append(f"FIELD_MOVED_TO_EXISTING_ONEOF {where}/{number}")
                moved[new_oneof] = moved.get(new_oneof, 0) + 1
        for oneof, count in moved.items():
            if count > 1:
                self.problems.append(f"MULTIPLE_FIELDS_MOVED_TO_ONEOF {where}/{oneof}")

    @staticmethod
    def _real_oneof(message: Any, fld: Any) -> str | None:
        if not fld.HasField("oneof_index") or fld.proto3_optional:
            return None
        return str(message.oneof_decl[fld.oneof_index].name)

    def _lookup(self, resolved: Resolved, type_name: str) -> tuple[Any, str]:
        found = resolved.messages.get(type_name)
        if found is None:  # not indexed (cannot happen for a pool-validated schema): compare by name alone
            return descriptor_pb2.DescriptorProto(name=type_name.rsplit(".", 1)[-1]), ""
        return found[0], found[1]

    def _field(self, old: Any, new: Any, where: str) -> None:
        old_message, new_message = old.type in _MESSAGE_TYPES, new.type in _MESSAGE_TYPES
        if old_message != new_message:
            self.problems.append(f"FIELD_KIND_CHANGED {where}")
            return
        if old_message:
            old_type, old_package = self._lookup(self.original, old.type_name)
            new_type, new_package = self._lookup(self.update, new.type_name)
            if old_type.options.map_entry and new_type.options.map_entry:
                for key in (1, 2):  # a map is its entry's key and value fields
                    self._field(old_type.field[key - 1], new_type.field[key - 1], where)
                return
            old_relative, new_relative = _relative(old.type_name, old_package), _relative(new.type_name, new_package)
            if old_relative != new_relative:
                self.problems.append(f"FIELD_NAMED_TYPE_CHANGED {where}")
                return
            before = len(self.problems)
            self._message(old.type_name, old_type, new.type_name, new_type, old_relative)
            if len(self.problems) > before:
                self.problems.append(f"FIELD_NAMED_TYPE_CHANGED {where}")
            return  # a message may become repeated and back: Confluent allows it
        if old.type != new.type and not any(old.type in g and new.type in g for g in _GROUPS):
            self.problems.append(f"FIELD_SCALAR_KIND_CHANGED {where}")
            return
        if (old.label == FD.LABEL_REPEATED) != (new.label == FD.LABEL_REPEATED) \
                and new.type not in (T.TYPE_STRING, T.TYPE_BYTES):
            self.problems.append(f"FIELD_NUMERIC_LABEL_CHANGED {where}")

"""Avro: fastavro parses and resolves names; the compatibility rules are the Avro specification's schema
resolution (the same rules as Avro Java's `SchemaCompatibility`, which Confluent's checker calls)."""

from __future__ import annotations

import json
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from moldau.registry.errors import InvalidSchema
from moldau.registry.formats import AVRO, ParsedSchema

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# Avro spec, "Schema Resolution": the writer's type may be promoted to the reader's.
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_FASTAVRO_KEYS = ("__fastavro_parsed", "__named_schemas")


def parse(text: str, dependencies: dict[str, ParsedSchema], normalize: bool) -> ParsedSchema:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidSchema(f"Invalid schema {text[:200]!r}: not JSON ({exc})") from None
    named: dict[str, Any] = {}
    for dependency in dependencies.values():
        named.update(dependency.parsed[1])
    try:
        parsed = fastavro.parse_schema(raw, named_schemas=named, _write_hint=False)
    except (SchemaParseException, UnknownType, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSchema(f"Invalid schema {text[:200]!r}: {type(exc).__name__}: {exc}") from None
    stored = _strip(parsed) if normalize else raw
    return ParsedSchema(AVRO, json.dumps(stored, separators=(",", ":")), (parsed, named), dict(dependencies))


def _strip(schema: Any) -> Any:
    """fastavro's resolved form (full names, no namespaces) without its private keys: the normalized schema."""
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if k not in _FASTAVRO_KEYS}
    if isinstance(schema, list):
        return [_strip(s) for s in schema]
    return schema


def canonical_form(schema: ParsedSchema) -> str:
    """The Avro spec's Parsing Canonical Form (what fingerprints are computed over)."""
    return str(fastavro.schema.to_parsing_canonical_form(schema.parsed[0]))


def fingerprint(schema: ParsedSchema) -> str:
    """CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form, as the spec defines it."""
    return str(fastavro.schema.fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def incompatibilities(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    checker = _Checker(reader.parsed[1], writer.parsed[1])
    checker.check(reader.parsed[0], writer.parsed[0], "/")
    return checker.problems


class _Checker:
    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names
        self.problems: list[str] = []
        self._in_progress: set[tuple[str, str]] = set()  # recursive named types: assume compatible once

    def _resolve(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names[schema]
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"]  # {"type": "int", "logicalType": ...}: logical types do not affect resolution
        return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, str):
            return schema
        if isinstance(schema, list):
            return "union"
        return str(schema["type"])

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader = self._resolve(reader, self.reader_names)
        writer = self._resolve(writer, self.writer_names)
        reader_kind, writer_kind = self._kind(reader), self._kind(writer)
        if writer_kind == "union":
            # Every branch the writer may have written must be readable.
            for index, branch in enumerate(writer):
                self.check(reader, branch, f"{path}{index}/")
            return
        if reader_kind == "union":
            if not any(self._quietly_compatible(branch, writer) for branch in reader):
                self.problems.append(f"{path}: reader union lacks writer type {writer_kind!r}")
            return
        if reader_kind != writer_kind:
            if writer_kind in PROMOTIONS and reader_kind in PROMOTIONS[writer_kind]:
                return
            self.problems.append(f"{path}: type mismatch, reader {reader_kind!r} cannot read writer {writer_kind!r}")
            return
        if reader_kind in PRIMITIVES:
            return
        if reader_kind in ("record", "enum", "fixed") and not self._names_match(reader, writer, path):
            return
        if reader_kind == "record":
            key = (reader["name"], writer["name"])
            if key in self._in_progress:
                return
            self._in_progress.add(key)
            try:
                self._check_record(reader, writer, path)
            finally:
                self._in_progress.discard(key)
        elif reader_kind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                self.problems.append(f"{path}: reader enum {reader['name']} lacks writer symbols {missing}")
        elif reader_kind == "fixed":
            if reader["size"] != writer["size"]:
                self.problems.append(f"{path}: fixed size changed from {writer['size']} to {reader['size']}")
        elif reader_kind == "array":
            self.check(reader["items"], writer["items"], f"{path}items/")
        elif reader_kind == "map":
            self.check(reader["values"], writer["values"], f"{path}values/")

    def _names_match(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> bool:
        # Avro Java's SchemaCompatibility.schemaNameEquals: unqualified names, or a reader alias naming the writer.
        reader_name, writer_name = reader["name"], writer["name"]
        if reader_name.rsplit(".", 1)[-1] == writer_name.rsplit(".", 1)[-1]:
            return True
        aliases = reader.get("aliases") or []
        if writer_name in aliases or writer_name.rsplit(".", 1)[-1] in aliases:
            return True
        self.problems.append(f"{path}: name mismatch, reader {reader_name!r} writer {writer_name!r}")
        return False

    def _check_record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            match = writer_fields.get(field["name"])
            if match is None:
                match = next((writer_fields[a] for a in field.get("aliases") or [] if a in writer_fields), None)
            if match is None:
                if "default" not in field:
                    self.problems.append(f"{path}{field['name']}: reader field has no default and is "
                                         "missing from the writer (READER_FIELD_MISSING_DEFAULT_VALUE)")
                continue
            self.check(field["type"], match["type"], f"{path}{field['name']}/")

    def _quietly_compatible(self, reader: Any, writer: Any) -> bool:
        probe = _Checker(self.reader_names, self.writer_names)
        probe._in_progress = set(self._in_progress)
        probe.check(reader, writer, "/")
        return not probe.problems

"""Schema formats: parse a schema string, give its stored form, and find incompatibilities between two schemas.

Each format module offers `parse(text, references, normalize) -> ParsedSchema` and
`incompatibilities(reader, writer) -> list[str]` ("can `reader` read what `writer` wrote?", empty when yes).
Parsing is left to the format's maintained library (fastavro, jsonschema, protobuf descriptors); only the
compatibility rules, which no library provides, are written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moldau.registry.errors import InvalidSchema

AVRO, JSON, PROTOBUF = "AVRO", "JSON", "PROTOBUF"
SCHEMA_TYPES = (AVRO, JSON, PROTOBUF)


@dataclass(slots=True)
class ParsedSchema:
    schema_type: str
    text: str  # the string stored in `_schemas` and answered to clients
    parsed: Any  # the format library's object
    dependencies: dict[str, ParsedSchema] = field(default_factory=dict)  # reference name -> parsed reference
    references: tuple[Any, ...] = ()  # the store's `Reference`s, as registered


def _format(schema_type: str) -> Any:
    if schema_type == AVRO:
        from moldau.registry.formats import avro as module
    elif schema_type == JSON:
        from moldau.registry.formats import jsonschema as module  # type: ignore[no-redef]
    elif schema_type == PROTOBUF:
        from moldau.registry.formats import protobuf as module  # type: ignore[no-redef]
    else:
        raise InvalidSchema(f"Invalid schema type {schema_type!r}: expected one of {', '.join(SCHEMA_TYPES)}")
    return module


def parse(schema_type: str, text: str, dependencies: dict[str, ParsedSchema] | None = None,
          normalize: bool = False) -> ParsedSchema:
    """Parse `text` as `schema_type`; raise InvalidSchema (42201) naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchema("Invalid schema: the schema is empty")
    parsed: ParsedSchema = _format(schema_type).parse(text, dependencies or {}, normalize)
    return parsed


def incompatibilities(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    """Why `reader` cannot read data written with `writer` (empty when it can)."""
    if reader.schema_type != writer.schema_type:
        return [f"Incompatible schema type: {writer.schema_type} changed to {reader.schema_type}"]
    check: Callable[[ParsedSchema, ParsedSchema], list[str]] = _format(reader.schema_type).incompatibilities
    return check(reader, writer)

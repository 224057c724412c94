"""JSON Schema: the `jsonschema` package validates a schema against its draft's meta-schema; compatibility is
checked here, as "every document the writer's schema accepts, the reader's schema accepts" over the keywords
Confluent's JSON Schema checker compares (types, properties and content model, required, enum/const, numeric
and length bounds, items, combined schemas). A property added to an open content model is therefore not
backward compatible, exactly as Confluent documents (PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from moldau.registry.errors import InvalidSchema
from moldau.registry.formats import JSON, ParsedSchema

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_OBJECT_KEYWORDS = ("properties", "required", "additionalProperties", "patternProperties")


def parse(text: str, dependencies: dict[str, ParsedSchema], normalize: bool) -> ParsedSchema:
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise InvalidSchema(f"Invalid schema {text[:200]!r}: not JSON ({exc})") from None
    if not isinstance(schema, (dict, bool)):
        raise InvalidSchema(f"Invalid schema {text[:200]!r}: a JSON Schema is an object or a boolean")
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator).check_schema(schema)
    except SchemaError as exc:
        raise InvalidSchema(f"Invalid schema: {exc.message} at {'/'.join(map(str, exc.path)) or 'the root'}") \
            from None
    stored = json.dumps(schema, separators=(",", ":"), sort_keys=normalize)
    return ParsedSchema(JSON, stored, schema, dict(dependencies))


def incompatibilities(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    checker = _Checker(reader, writer)
    checker.check(reader.parsed, writer.parsed, "#")
    return checker.problems


def _types(schema: Any) -> set[str] | None:
    declared = schema.get("type") if isinstance(schema, dict) else None
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _covering(schema: dict[str, Any], name: str) -> Any:
    """The schema an undeclared property `name` must match: a matching patternProperties entry, else
    additionalProperties (true when absent)."""
    for pattern, sub in (schema.get("patternProperties") or {}).items():
        try:
            if re.search(pattern, name):
                return sub
        except re.error:
            continue
    return schema.get("additionalProperties", True)


class _Checker:
    def __init__(self, reader: ParsedSchema, writer: ParsedSchema) -> None:
        self.reader, self.writer = reader, writer
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def _resolve(self, schema: Any, root: ParsedSchema) -> Any:
        for _ in range(32):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                return schema
            base, _, pointer = schema["$ref"].partition("#")
            document = root.parsed if not base else root.dependencies[base].parsed if base in \
                root.dependencies else None
            if document is None:
                return True  # an unresolvable external reference constrains nothing we can check
            for part in [p for p in pointer.split("/") if p]:
                document = document[part.replace("~1", "/").replace("~0", "~")]
            schema = document
        return schema

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader, writer = self._resolve(reader, self.reader), self._resolve(writer, self.writer)
        key = (id(reader), id(writer))
        if key in self._seen:
            return
        self._seen.add(key)
        if reader is True or reader == {} or writer is False:
            return
        if reader is False:
            self.problems.append(f"{path}: the reader accepts nothing (false schema)")
            return
        if writer is True:
            writer = {}
        if self._combined(reader, writer, path):
            return
        self._type(reader, writer, path)
        self._values(reader, writer, path)
        self._bounds(reader, writer, path)
        if any(k in reader or k in writer for k in _OBJECT_KEYWORDS):
            self._object(reader, writer, path)
        if "items" in reader or "items" in writer:
            self._items(reader, writer, path)
        # What the reader rejects, the writer must have rejected too: the check runs the other way round.
        if "not" in reader and ("not" not in writer or not self._quietly(writer["not"], reader["not"])):
            self.problems.append(f"{path}/not: NOT_TYPE_EXTENDED")

    def _combined(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> bool:
        reader_branches = reader.get("anyOf") or reader.get("oneOf")
        writer_branches = writer.get("anyOf") or writer.get("oneOf")
        if reader_branches is None and writer_branches is None:
            for index, branch in enumerate(reader.get("allOf") or []):
                self.check(branch, writer, f"{path}/allOf/{index}")
            return False
        for index, branch in enumerate(writer_branches or [writer]):
            candidates = reader_branches or [reader]
            if not any(self._quietly(candidate, branch) for candidate in candidates):
                self.problems.append(f"{path}: COMBINED_TYPE_SUBSCHEMAS_CHANGED, writer branch {index} is not "
                                     "accepted by any reader branch")
        return True

    def _quietly(self, reader: Any, writer: Any) -> bool:
        probe = _Checker(self.reader, self.writer)
        probe._seen = set(self._seen)
        probe.check(reader, writer, "#")
        return not probe.problems

    def _type(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        reader_types, writer_types = _types(reader), _types(writer)
        if reader_types is None:
            return
        if writer_types is None:
            self.problems.append(f"{path}: TYPE_NARROWED, the reader allows only {sorted(reader_types)}")
            return
        for kind in writer_types:
            if kind not in reader_types and not (kind == "integer" and "number" in reader_types):
                self.problems.append(f"{path}: TYPE_CHANGED, reader types {sorted(reader_types)} lack {kind!r}")

    def _values(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        allowed = reader.get("enum") if "enum" in reader else [reader["const"]] if "const" in reader else None
        if allowed is None:
            return
        written = writer.get("enum") if "enum" in writer else [writer["const"]] if "const" in writer else None
        if written is None:
            self.problems.append(f"{path}: ENUM_ARRAY_NARROWED, the reader restricts values the writer did not")
        elif any(value not in allowed for value in written):
            self.problems.append(f"{path}: ENUM_ARRAY_NARROWED, reader values lack some of {written}")

    def _bounds(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        for name in _LOWER_BOUNDS + _UPPER_BOUNDS:
            if name not in reader or isinstance(reader[name], bool):
                continue
            if name not in writer or isinstance(writer[name], bool):
                self.problems.append(f"{path}: {name.upper()}_ADDED ({reader[name]})")
            elif (reader[name] > writer[name]) if name in _LOWER_BOUNDS else (reader[name] < writer[name]):
                self.problems.append(f"{path}: {name.upper()}_NARROWED from {writer[name]} to {reader[name]}")
        if "multipleOf" in reader and (writer.get("multipleOf") or 0) % reader["multipleOf"] != 0:
            self.problems.append(f"{path}: MULTIPLE_OF_CHANGED to {reader['multipleOf']}")
        if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
            self.problems.append(f"{path}: PATTERN_CHANGED to {reader['pattern']!r}")

    def _object(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        reader_props, writer_props = reader.get("properties") or {}, writer.get("properties") or {}
        reader_extra = reader.get("additionalProperties", True)
        writer_extra = writer.get("additionalProperties", True)
        for name in sorted(set(reader.get("required") or []) - set(writer.get("required") or [])):
            self.problems.append(f"{path}: REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL {name!r}")
        for name, schema in reader_props.items():
            if name in writer_props:
                self.check(schema, writer_props[name], f"{path}/properties/{name}")
                continue
            covering = _covering(writer, name)
            if covering is not False and not self._quietly(schema, covering):
                self.problems.append(f"{path}: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL {name!r}")
        for name, schema in writer_props.items():
            if name not in reader_props and not self._quietly(_covering(reader, name), schema):
                self.problems.append(f"{path}: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL {name!r}")
        if not self._quietly(reader_extra, writer_extra):
            self.problems.append(f"{path}: ADDITIONAL_PROPERTIES_NARROWED")

    def _items(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        reader_items, writer_items = reader.get("items", True), writer.get("items", True)
        if isinstance(reader_items, list) or isinstance(writer_items, list):
            readers = reader_items if isinstance(reader_items, list) else []
            writers = writer_items if isinstance(writer_items, list) else []
            for index, (r, w) in enumerate(zip(readers, writers, strict=False)):
                self.check(r, w, f"{path}/items/{index}")
            if len(readers) > len(writers):
                self.problems.append(f"{path}: ITEMS_ADDED to the tuple")
            return
        self.check(reader_items, writer_items, f"{path}/items")

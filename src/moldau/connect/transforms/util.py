"""Helpers shared by the SMTs: the Key/Value split and schema rebuilding (Kafka's Requirements, SchemaUtil)."""

from __future__ import annotations

from typing import Any

from moldau.connect.api.data import Field, Schema, Struct, replace_schema
from moldau.connect.api.errors import DataException
from moldau.connect.api.records import ConnectRecord
from moldau.connect.transforms.base import Transformation


class KeyOrValue(Transformation):
    """A transform with `$Key` and `$Value` variants: subclasses set `ON_KEY` and implement `transform`."""

    ON_KEY = False

    def operating(self, record: ConnectRecord) -> tuple[Schema | None, Any]:
        return (record.key_schema, record.key) if self.ON_KEY else (record.value_schema, record.value)

    def updated(self, record: ConnectRecord, schema: Schema | None, value: Any) -> ConnectRecord:
        if self.ON_KEY:
            return record.new_record(key_schema=schema, key=value)
        return record.new_record(value_schema=schema, value=value)

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        schema, value = self.operating(record)
        if value is None and not self.handles_null():
            return record
        new_schema, new_value = self.transform(record, schema, value)
        return self.updated(record, new_schema, new_value)

    def handles_null(self) -> bool:
        return False

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        raise NotImplementedError

    @property
    def purpose(self) -> str:
        return f"{type(self).__name__}"


def require_map(value: Any, purpose: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataException(f"Only Map objects supported in absence of schema for [{purpose}], found: "
                            f"{type(value).__name__}")
    return value


def require_struct(value: Any, purpose: str) -> Struct:
    if not isinstance(value, Struct):
        raise DataException(f"Only Struct objects supported for [{purpose}], found: {type(value).__name__}")
    return value


def struct_schema(fields: list[tuple[str, Schema]], like: Schema) -> Schema:
    """A struct schema with `like`'s name/version/doc/optionality and new fields."""
    return replace_schema(like, fields=tuple(Field(n, i, s) for i, (n, s) in enumerate(fields)))


def parse_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]

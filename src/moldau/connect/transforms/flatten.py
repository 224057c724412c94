"""Flatten$Key / Flatten$Value: nested structs/maps become top-level fields joined by `delimiter` ("." default)."""

from __future__ import annotations

from typing import Any

from moldau.connect.api.config import ConfigDef, Importance, Type
from moldau.connect.api.data import Schema, Struct
from moldau.connect.api.records import ConnectRecord
from moldau.connect.transforms.util import KeyOrValue, require_map, require_struct, struct_schema


class Flatten(KeyOrValue):
    CONFIG_DEF = ConfigDef().define("delimiter", Type.STRING, ".", importance=Importance.MEDIUM,
                                    documentation="Delimiter to insert between field names from the input record "
                                                  "when generating field names for the output record")

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        delimiter = self.settings["delimiter"]
        if schema is None:
            out: dict[str, Any] = {}
            self._flatten_map(require_map(value, "flattening"), "", delimiter, out)
            return None, out
        fields: list[tuple[str, Schema]] = []
        values: dict[str, Any] = {}
        self._flatten_struct(schema, require_struct(value, "flattening"), "", delimiter, False, fields, values)
        new_schema = struct_schema(fields, schema)
        return new_schema, Struct(new_schema, values)

    def _flatten_map(self, data: dict[str, Any], prefix: str, delimiter: str, out: dict[str, Any]) -> None:
        for key, value in data.items():
            name = f"{prefix}{delimiter}{key}" if prefix else str(key)
            if isinstance(value, dict):
                self._flatten_map(value, name, delimiter, out)
            else:
                out[name] = value

    def _flatten_struct(self, schema: Schema, value: Struct | None, prefix: str, delimiter: str, optional: bool,
                        fields: list[tuple[str, Schema]], values: dict[str, Any]) -> None:
        for field in schema.fields:
            name = f"{prefix}{delimiter}{field.name}" if prefix else field.name
            child = None if value is None else value.get(field.name)
            if field.schema.type == "struct":
                self._flatten_struct(field.schema, child, name, delimiter, optional or field.schema.optional,
                                     fields, values)
            else:
                fields.append((name, field.schema.as_optional() if optional else field.schema))
                values[name] = child


class FlattenKey(Flatten):
    """Flatten$Key"""

    ON_KEY = True


class FlattenValue(Flatten):
    """Flatten$Value"""

"""Field-level SMTs: InsertField, ReplaceField, MaskField, ExtractField, HoistField, ValueToKey,
SetSchemaMetadata (org.apache.kafka.connect.transforms.*)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from moldau.connect.api.config import ConfigDef, ConfigException, Importance, Type, non_empty_string
from moldau.connect.api.data import (
    INT32,
    INT64,
    STRING,
    Schema,
    Struct,
    replace_schema,
    timestamp_schema,
)
from moldau.connect.api.errors import DataException
from moldau.connect.api.records import ConnectRecord, SinkRecord
from moldau.connect.transforms.base import Transformation
from moldau.connect.transforms.util import KeyOrValue, parse_list, require_map, require_struct, struct_schema


def non_empty_list(name: str, value: Any) -> None:
    if not value:
        raise ConfigException(name, value, "Empty list")


def _field_spec(spec: str | None) -> tuple[str, bool] | None:
    """InsertField's `name!` (required) / `name?` (optional, the default) syntax."""
    if not spec:
        return None
    if spec.endswith("!"):
        return spec[:-1], False
    return (spec.removesuffix("?")), True


class InsertField(KeyOrValue):
    CONFIG_DEF = (ConfigDef()
                  .define("topic.field", Type.STRING, None, importance=Importance.MEDIUM)
                  .define("partition.field", Type.STRING, None, importance=Importance.MEDIUM)
                  .define("offset.field", Type.STRING, None, importance=Importance.MEDIUM,
                          documentation="Field name for Kafka offset - only applicable to sink connectors.")
                  .define("timestamp.field", Type.STRING, None, importance=Importance.MEDIUM)
                  .define("static.field", Type.STRING, None, importance=Importance.MEDIUM)
                  .define("static.value", Type.STRING, None, importance=Importance.MEDIUM)
                  .define("replace.null.with.default", Type.BOOLEAN, True, importance=Importance.MEDIUM))

    def _additions(self, record: ConnectRecord) -> list[tuple[str, bool, Schema, Any]]:
        s = self.settings
        out = []
        for key, schema, value in (
            ("topic.field", STRING, record.topic),
            ("partition.field", INT32, record.kafka_partition),
            ("offset.field", INT64, record.kafka_offset if isinstance(record, SinkRecord) else None),
            ("timestamp.field", timestamp_schema(),
             None if record.timestamp is None else dt.datetime.fromtimestamp(record.timestamp / 1000, dt.UTC)),
            ("static.field", STRING, s["static.value"]),
        ):
            spec = _field_spec(s[key])
            if spec is None:
                continue
            if key == "offset.field" and not isinstance(record, SinkRecord):
                raise DataException("Offset field can only be inserted for sink records")
            name, optional = spec
            out.append((name, optional, schema.as_optional() if optional else schema, value))
        return out

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        additions = self._additions(record)
        if schema is None:
            updated = dict(require_map(value, "field insertion"))
            for name, _, _, v in additions:
                updated[name] = v.isoformat() if isinstance(v, dt.datetime) else v
            return None, updated
        struct = require_struct(value, "field insertion")
        new_schema = struct_schema([(f.name, f.schema) for f in schema.fields] +
                                   [(n, s) for n, _, s, _ in additions], schema)
        out = Struct(new_schema, {f.name: struct.get(f.name) for f in schema.fields})
        for name, _, _, v in additions:
            out.put(name, v)
        return new_schema, out


class ReplaceField(KeyOrValue):
    CONFIG_DEF = (ConfigDef()
                  .define("exclude", Type.LIST, "", importance=Importance.MEDIUM,
                          documentation="Fields to exclude. This takes precedence over the fields to include.")
                  .define("include", Type.LIST, "", importance=Importance.MEDIUM)
                  .define("renames", Type.LIST, "", importance=Importance.MEDIUM,
                          documentation="Field rename mappings, e.g. foo:bar,abc:xyz")
                  .define("blacklist", Type.LIST, "", importance=Importance.LOW)
                  .define("whitelist", Type.LIST, "", importance=Importance.LOW))

    def configure(self, configs: dict[str, Any]) -> None:
        super().configure(configs)
        s = self.settings
        self.exclude = set(parse_list(s["exclude"]) + parse_list(s["blacklist"]))
        self.include = set(parse_list(s["include"]) + parse_list(s["whitelist"]))
        self.renames: dict[str, str] = {}
        for pair in parse_list(s["renames"]):
            old, sep, new = pair.partition(":")
            if not sep or not old or not new:
                raise DataException(f"Invalid rename mapping: {pair}")
            self.renames[old] = new

    def _keep(self, name: str) -> bool:
        return name not in self.exclude and (not self.include or name in self.include)

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        if schema is None:
            return None, {self.renames.get(k, k): v for k, v in require_map(value, "field replacement").items()
                          if self._keep(k)}
        struct = require_struct(value, "field replacement")
        kept = [f for f in schema.fields if self._keep(f.name)]
        new_schema = struct_schema([(self.renames.get(f.name, f.name), f.schema) for f in kept], schema)
        return new_schema, Struct(new_schema, {self.renames.get(f.name, f.name): struct.get(f.name) for f in kept})


_MASKS = {"int8": 0, "int16": 0, "int32": 0, "int64": 0, "float32": 0.0, "float64": 0.0, "boolean": False,
          "string": "", "bytes": b""}


def _mask_for(value: Any, schema: Schema | None) -> Any:
    if schema is not None:
        if schema.type in ("array",):
            return []
        if schema.type == "map":
            return {}
        return _MASKS.get(schema.type)
    for type_, mask in ((bool, False), (int, 0), (float, 0.0), (str, ""), (bytes, b""), (list, []), (dict, {}),
                        (decimal.Decimal, decimal.Decimal(0))):
        if isinstance(value, type_):
            return mask
    raise DataException(f"Cannot mask value of type {type(value).__name__}")


class MaskField(KeyOrValue):
    CONFIG_DEF = (ConfigDef()
                  .define("fields", Type.LIST, validator=non_empty_list, importance=Importance.HIGH)
                  .define("replacement", Type.STRING, None, importance=Importance.LOW,
                          documentation="Custom value replacement, applied to all 'fields' values."))

    def _masked(self, value: Any, schema: Schema | None) -> Any:
        if value is None:
            return None
        replacement = self.settings["replacement"]
        if replacement is None:
            return _mask_for(value, schema)
        kind = schema.type if schema is not None else type(value).__name__
        try:
            if kind in ("int8", "int16", "int32", "int64", "int"):
                return int(replacement)
            if kind in ("float32", "float64", "float"):
                return float(replacement)
        except ValueError:
            raise DataException(f"Invalid value {replacement} passed for masking field of type {kind}") from None
        return replacement

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        fields = set(parse_list(self.settings["fields"]))
        if schema is None:
            data = dict(require_map(value, "mask fields"))
            for name in fields & set(data):
                data[name] = self._masked(data[name], None)
            return None, data
        struct = require_struct(value, "mask fields")
        out = Struct(schema, {f.name: (self._masked(struct.get(f.name), f.schema) if f.name in fields
                                       else struct.get(f.name)) for f in schema.fields})
        return schema, out


class ExtractField(KeyOrValue):
    CONFIG_DEF = ConfigDef().define("field", Type.STRING, validator=non_empty_string, importance=Importance.MEDIUM,
                                    documentation="Field name to extract.")

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        name = self.settings["field"]
        if schema is None:
            return None, require_map(value, "field extraction").get(name)
        field = schema.field(name)
        if field is None:
            raise DataException(f"Unknown field: {name}")
        return field.schema, require_struct(value, "field extraction").get(name)


class HoistField(KeyOrValue):
    CONFIG_DEF = ConfigDef().define("field", Type.STRING, importance=Importance.MEDIUM,
                                    documentation="Field name for the single field that will be created.")

    def handles_null(self) -> bool:
        return True

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        name = self.settings["field"]
        if schema is None:
            return None, {name: value}
        new_schema = Schema.struct([(name, schema)])
        return new_schema, Struct(new_schema, {name: value})


class SetSchemaMetadata(KeyOrValue):
    CONFIG_DEF = (ConfigDef().define("schema.name", Type.STRING, None, importance=Importance.HIGH)
                  .define("schema.version", Type.INT, None, importance=Importance.HIGH))

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        if schema is None:
            raise DataException("Schema required for [updating schema metadata]")
        new = replace_schema(schema, name=self.settings["schema.name"] or schema.name,
                             version=self.settings["schema.version"] or schema.version)
        if isinstance(value, Struct):
            value = Struct(new, {f.name: value.get(f.name) for f in schema.fields})
        return new, value


class ValueToKey(Transformation):
    """The record key becomes a struct (or map) of the named value fields."""

    CONFIG_DEF = (ConfigDef().define("fields", Type.LIST, importance=Importance.HIGH,
                                     documentation="Field names on the record value to extract as the record key.")
                  .define("replace.null.with.default", Type.BOOLEAN, True, importance=Importance.MEDIUM))

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        fields = parse_list(self.settings["fields"])
        if record.value_schema is None:
            data = require_map(record.value, "copying fields from value to key")
            return record.new_record(key_schema=None, key={f: data.get(f) for f in fields})
        struct = require_struct(record.value, "copying fields from value to key")
        picked = []
        for name in fields:
            field = record.value_schema.field(name)
            if field is None:
                raise DataException(f"Field does not exist: {name}")
            picked.append((name, field.schema))
        key_schema = Schema.struct(picked)
        return record.new_record(key_schema=key_schema, key=Struct(key_schema, {n: struct.get(n) for n, _ in picked}))


class InsertFieldKey(InsertField):
    """InsertField$Key"""

    ON_KEY = True


class InsertFieldValue(InsertField):
    """InsertField$Value"""

    ON_KEY = False


class ReplaceFieldKey(ReplaceField):
    """ReplaceField$Key"""

    ON_KEY = True


class ReplaceFieldValue(ReplaceField):
    """ReplaceField$Value"""

    ON_KEY = False


class MaskFieldKey(MaskField):
    """MaskField$Key"""

    ON_KEY = True


class MaskFieldValue(MaskField):
    """MaskField$Value"""

    ON_KEY = False


class ExtractFieldKey(ExtractField):
    """ExtractField$Key"""

    ON_KEY = True


class ExtractFieldValue(ExtractField):
    """ExtractField$Value"""

    ON_KEY = False


class HoistFieldKey(HoistField):
    """HoistField$Key"""

    ON_KEY = True


class HoistFieldValue(HoistField):
    """HoistField$Value"""

    ON_KEY = False


class SetSchemaMetadataKey(SetSchemaMetadata):
    """SetSchemaMetadata$Key"""

    ON_KEY = True


class SetSchemaMetadataValue(SetSchemaMetadata):
    """SetSchemaMetadata$Value"""

    ON_KEY = False

"""Cast$Key / Cast$Value: cast the whole key/value, or some of its fields, to another primitive type.

    transforms.cast.spec=id:int64,price:float64,active:boolean   (or a single type for the whole value)
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from typing import Any

from moldau.connect.api.config import ConfigDef, ConfigException, Importance, Type
from moldau.connect.api.data import Schema, Struct
from moldau.connect.api.errors import DataException
from moldau.connect.api.records import ConnectRecord
from moldau.connect.transforms.util import KeyOrValue, parse_list, require_map, require_struct, struct_schema

CASTABLE = ("int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string")
WHOLE = "__whole__"
_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def parse_spec(name: str, value: Any) -> dict[str, str]:
    spec: dict[str, str] = {}
    for item in parse_list(value):
        field, sep, type_ = item.rpartition(":")
        type_ = type_.strip().lower()
        if type_ not in CASTABLE:
            raise ConfigException(name, value, f"Invalid type found in casting spec: {type_}")
        spec[field.strip() if sep else WHOLE] = type_
    if not spec:
        raise ConfigException(name, value, "Must specify at least one field to cast.")
    if WHOLE in spec and len(spec) > 1:
        raise ConfigException(name, value, "Cast transformations that specify a type to cast the entire value to "
                                           "may only specify a single cast in their spec")
    return spec


def cast_value(value: Any, target: str) -> Any:
    if value is None:
        return None
    try:
        if target in _BITS:
            if isinstance(value, str):
                result = int(value.strip())
            elif isinstance(value, (dt.datetime,)):
                result = int(value.timestamp() * 1000)
            else:
                result = int(value)
            bits = _BITS[target]
            if not -(2 ** (bits - 1)) <= result < 2 ** (bits - 1):
                raise DataException(f"Value {value} out of range for {target}")
            return result
        if target in ("float32", "float64"):
            return float(value)
        if target == "boolean":
            if isinstance(value, str):
                return value.strip().lower() == "true"
            return bool(value)
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(bytes(value)).decode()
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return str(value)
        return str(value)
    except (ValueError, TypeError) as exc:
        raise DataException(f"Cannot cast {value!r} to {target}: {exc}") from None


def _validate_spec(name: str, value: Any) -> None:
    parse_spec(name, value)


class Cast(KeyOrValue):
    CONFIG_DEF = (ConfigDef().define("spec", Type.LIST, validator=_validate_spec,
                                     importance=Importance.HIGH,
                                     documentation="List of fields and the type to cast them to of the form "
                                                   "field1:type,field2:type; or a single type for the whole value.")
                  .define("replace.null.with.default", Type.BOOLEAN, True, importance=Importance.MEDIUM))

    def configure(self, configs: dict[str, Any]) -> None:
        super().configure(configs)
        self.spec = parse_spec("spec", self.settings["spec"])

    def transform(self, record: ConnectRecord, schema: Schema | None, value: Any) -> tuple[Schema | None, Any]:
        if WHOLE in self.spec:
            target = self.spec[WHOLE]
            new_schema = None if schema is None else Schema(target, optional=schema.optional)
            return new_schema, cast_value(value, target)
        if schema is None:
            data = dict(require_map(value, "cast"))
            for name, target in self.spec.items():
                if name in data:
                    data[name] = cast_value(data[name], target)
            return None, data
        struct = require_struct(value, "cast")
        fields = [(f.name, Schema(self.spec[f.name], optional=f.schema.optional) if f.name in self.spec else f.schema)
                  for f in schema.fields]
        new_schema = struct_schema(fields, schema)
        return new_schema, Struct(new_schema, {f.name: cast_value(struct.get(f.name), self.spec[f.name])
                                               if f.name in self.spec else struct.get(f.name) for f in schema.fields})


class CastKey(Cast):
    """Cast$Key"""

    ON_KEY = True


class CastValue(Cast):
    """Cast$Value"""

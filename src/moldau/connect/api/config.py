"""Config definitions that parse and validate, after Kafka's `ConfigDef`.

    CONFIG_DEF = (ConfigDef()
        .define("file", Type.STRING, None, importance=Importance.HIGH, documentation="Source filename.")
        .define("batch.size", Type.INT, 2000, validator=Range.at_least(1), importance=Importance.LOW))
    parsed = CONFIG_DEF.parse({"file": "/tmp/x"})   # {"file": "/tmp/x", "batch.size": 2000}

`validate()` returns one `ConfigValue` per definition with its errors, which is what the REST API's
`/connector-plugins/{plugin}/config/validate` returns to the user.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from moldau.connect.api.errors import ConnectException


class ConfigException(ConnectException):
    """A config value is missing or invalid; the message names the key and what was expected."""

    def __init__(self, name: str, value: Any = None, message: str | None = None) -> None:
        if value is None:
            text = message or name
        else:
            text = f"Invalid value {value} for configuration {name}" + (f": {message}" if message else "")
        super().__init__(text)
        self.name = name
        self.message = text


class Type(enum.Enum):
    BOOLEAN = "BOOLEAN"
    STRING = "STRING"
    INT = "INT"
    SHORT = "SHORT"
    LONG = "LONG"
    DOUBLE = "DOUBLE"
    LIST = "LIST"
    CLASS = "CLASS"
    PASSWORD = "PASSWORD"


class Importance(enum.Enum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Width(enum.Enum):
    NONE = "NONE"
    SHORT = "SHORT"
    MEDIUM = "MEDIUM"
    LONG = "LONG"


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT_VALUE"


NO_DEFAULT_VALUE: Any = _NoDefault()

Validator = Callable[[str, Any], None]  # raises ConfigException


class Range:
    @staticmethod
    def at_least(low: float) -> Validator:
        def check(name: str, value: Any) -> None:
            if value is not None and value < low:
                raise ConfigException(name, value, f"Value must be at least {low}")
        return check

    @staticmethod
    def between(low: float, high: float) -> Validator:
        def check(name: str, value: Any) -> None:
            if value is not None and not low <= value <= high:
                raise ConfigException(name, value, f"Value must be no less than {low} and no more than {high}")
        return check


class ValidString:
    @staticmethod
    def in_(*allowed: str, case_insensitive: bool = False) -> Validator:
        def check(name: str, value: Any) -> None:
            if value is None:
                return
            ok = value.lower() in {a.lower() for a in allowed} if case_insensitive else value in allowed
            if not ok:
                raise ConfigException(name, value, f"String must be one of: {', '.join(allowed)}")
        return check


def non_empty_string(name: str, value: Any) -> None:
    if value is not None and not str(value).strip():
        raise ConfigException(name, value, "String must be non-empty")


def valid_regex(name: str, value: Any) -> None:
    if value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ConfigException(name, value, f"not a valid regular expression: {exc}") from None


_TRUE, _FALSE = {"true"}, {"false"}


def parse_type(name: str, value: Any, type_: Type) -> Any:
    """Parse a string (or already-typed) value the way ConfigDef.parseType does."""
    if value is None:
        return None
    try:
        if type_ is Type.BOOLEAN:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ConfigException(name, value, "Expected value to be either true or false")
        if type_ in (Type.STRING, Type.CLASS, Type.PASSWORD):
            return value.strip() if isinstance(value, str) else str(value)
        if type_ in (Type.INT, Type.SHORT, Type.LONG):
            if isinstance(value, bool):
                raise ValueError
            number = int(str(value).strip()) if not isinstance(value, int) else value
            limit = {Type.SHORT: 2**15, Type.INT: 2**31, Type.LONG: 2**63}[type_]
            if not -limit <= number < limit:
                raise ValueError
            return number
        if type_ is Type.DOUBLE:
            return float(str(value).strip()) if not isinstance(value, float) else value
        if type_ is Type.LIST:
            if isinstance(value, list):
                return value
            text = str(value).strip()
            return [item.strip() for item in text.split(",")] if text else []
    except ValueError:
        raise ConfigException(name, value, f"Not a number of type {type_.value}") from None
    raise ConfigException(name, value, f"Unknown type {type_}")


@dataclass(slots=True)
class ConfigKey:
    name: str
    type: Type
    default: Any = NO_DEFAULT_VALUE
    validator: Validator | None = None
    importance: Importance = Importance.MEDIUM
    documentation: str = ""
    group: str | None = None
    order: int = -1
    width: Width = Width.NONE
    display_name: str | None = None
    dependents: list[str] = field(default_factory=list)
    recommended: list[Any] = field(default_factory=list)

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT_VALUE

    def to_json(self) -> dict[str, Any]:
        """The `definition` object of Kafka's ConfigKeyInfo in REST responses."""
        default = None if self.required else _to_string(self.default, self.type)
        return {
            "name": self.name, "type": self.type.value, "required": self.required,
            "default_value": default, "importance": self.importance.value,
            "documentation": self.documentation, "group": self.group, "width": self.width.value,
            "display_name": self.display_name or self.name, "dependents": list(self.dependents),
            "order": self.order,
        }


def _to_string(value: Any, type_: Type) -> str | None:
    if value is None:
        return None
    if type_ is Type.LIST and isinstance(value, list):
        return ",".join(str(v) for v in value)
    if type_ is Type.BOOLEAN:
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class ConfigValue:
    """One key's validation result (org.apache.kafka.common.config.ConfigValue)."""

    name: str
    value: Any = None
    recommended_values: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    visible: bool = True

    def to_json(self, type_: Type) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _to_string(self.value, type_) if type_ is not Type.PASSWORD or self.value is None
            else "[hidden]",
            "recommended_values": [str(v) for v in self.recommended_values],
            "errors": list(self.errors), "visible": self.visible,
        }


class ConfigDef:
    def __init__(self, keys: Iterable[ConfigKey] = ()) -> None:
        self.keys: dict[str, ConfigKey] = {k.name: k for k in keys}

    def define(self, name: str, type_: Type, default: Any = NO_DEFAULT_VALUE, *,
               validator: Validator | None = None, importance: Importance = Importance.MEDIUM,
               documentation: str = "", group: str | None = None, order: int = -1,
               width: Width = Width.NONE, display_name: str | None = None,
               recommended: list[Any] | None = None) -> ConfigDef:
        if name in self.keys:
            raise ConnectException(f"Configuration {name} is defined twice.")
        if default is not NO_DEFAULT_VALUE and default is not None:
            default = parse_type(name, default, type_)
        self.keys[name] = ConfigKey(name, type_, default, validator, importance, documentation, group, order,
                                    width, display_name, [], list(recommended or []))
        return self

    def merge(self, other: ConfigDef) -> ConfigDef:
        merged = ConfigDef(self.keys.values())
        for key in other.keys.values():
            merged.keys.setdefault(key.name, key)
        return merged

    def groups(self) -> list[str]:
        seen: list[str] = []
        for key in self.keys.values():
            if key.group and key.group not in seen:
                seen.append(key.group)
        return seen

    def parse(self, props: dict[str, Any]) -> dict[str, Any]:
        """Typed values for every defined key (defaults filled in); raises ConfigException on the first error."""
        parsed: dict[str, Any] = {}
        for key in self.keys.values():
            if key.name in props:
                value = parse_type(key.name, props[key.name], key.type)
            elif key.required:
                raise ConfigException(key.name, None,
                                      f'Missing required configuration "{key.name}" which has no default value.')
            else:
                value = key.default
            if key.validator is not None:
                key.validator(key.name, value)
            parsed[key.name] = value
        return parsed

    def validate(self, props: dict[str, Any]) -> dict[str, ConfigValue]:
        """Every key's value and errors, without stopping at the first (ConfigDef.validateAll)."""
        results: dict[str, ConfigValue] = {}
        for key in self.keys.values():
            result = ConfigValue(key.name, recommended_values=list(key.recommended))
            results[key.name] = result
            if key.name not in props:
                if key.required:
                    result.errors.append(f'Missing required configuration "{key.name}" which has no default value.')
                    continue
                result.value = key.default
            else:
                try:
                    result.value = parse_type(key.name, props[key.name], key.type)
                except ConfigException as exc:
                    result.value = props[key.name]
                    result.errors.append(exc.message)
                    continue
            if key.validator is not None:
                try:
                    key.validator(key.name, result.value)
                except ConfigException as exc:
                    result.errors.append(exc.message)
        return results


class AbstractConfig:
    """Parsed values of a ConfigDef, with typed getters and Kafka's `originalsWithPrefix`."""

    def __init__(self, definition: ConfigDef, originals: dict[str, Any]) -> None:
        self.originals = {str(k): v for k, v in originals.items()}
        self.values = definition.parse(self.originals)

    def get(self, name: str) -> Any:
        return self.values[name] if name in self.values else self.originals.get(name)

    def originals_with_prefix(self, prefix: str, strip: bool = True) -> dict[str, Any]:
        return {(k[len(prefix):] if strip else k): v for k, v in self.originals.items() if k.startswith(prefix)}

"""StringConverter, ByteArrayConverter and SimpleHeaderConverter."""

from __future__ import annotations

import json
from typing import Any

from moldau.connect.api.data import (
    OPTIONAL_BYTES,
    OPTIONAL_STRING,
    Schema,
    SchemaAndValue,
    infer_schema,
    plain,
)
from moldau.connect.api.errors import DataException
from moldau.connect.converters.base import Converter, HeaderConverter


class StringConverter(Converter, HeaderConverter):
    """Any value as its string form; bytes read back as an optional string (converter.encoding, UTF-8)."""

    encoding = "utf-8"

    def configure(self, configs: dict[str, Any], is_key: bool = False) -> None:
        self.is_key = is_key
        self.encoding = str(configs.get("converter.encoding", configs.get("encoding", "UTF-8")))

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        return str(plain(value)).encode(self.encoding)

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        try:
            return SchemaAndValue(OPTIONAL_STRING, None if data is None else data.decode(self.encoding))
        except UnicodeDecodeError as exc:
            raise DataException(f"Failed to deserialize string from topic {topic}: {exc}") from exc

    def from_connect_header(self, topic: str, key: str, schema: Schema | None, value: Any) -> bytes | None:
        return self.from_connect_data(topic, schema, value)

    def to_connect_header(self, topic: str, key: str, data: bytes | None) -> SchemaAndValue:
        return self.to_connect_data(topic, data)


class ByteArrayConverter(Converter, HeaderConverter):
    """Bytes pass through unchanged; anything else is a DataException (as in Kafka)."""

    def configure(self, configs: dict[str, Any], is_key: bool = False) -> None:
        self.is_key = is_key

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        if schema is not None and schema.type != "bytes":
            raise DataException(f"Invalid schema type for ByteArrayConverter: {schema.type}")
        if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
            raise DataException(f"ByteArrayConverter is not compatible with objects of type {type(value).__name__}")
        return None if value is None else bytes(value)

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        return SchemaAndValue(OPTIONAL_BYTES, data)

    def from_connect_header(self, topic: str, key: str, schema: Schema | None, value: Any) -> bytes | None:
        return self.from_connect_data(topic, schema, value)

    def to_connect_header(self, topic: str, key: str, data: bytes | None) -> SchemaAndValue:
        return self.to_connect_data(topic, data)


class SimpleHeaderConverter(HeaderConverter):
    """Kafka's default header converter: values as strings; reads back numbers, booleans, JSON lists/maps."""

    def from_connect_header(self, topic: str, key: str, schema: Schema | None, value: Any) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, bool):
            return b"true" if value else b"false"
        if isinstance(value, (list, dict)):
            return json.dumps(plain(value), separators=(",", ":")).encode()
        return str(value).encode()

    def to_connect_header(self, topic: str, key: str, data: bytes | None) -> SchemaAndValue:
        if data is None:
            return SchemaAndValue(None, None)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return SchemaAndValue(OPTIONAL_BYTES, data)
        value: Any = text
        if text in ("true", "false"):
            value = text == "true"
        else:
            try:
                value = json.loads(text) if text[:1] in "-0123456789[{" else text
            except ValueError:
                value = text
        return SchemaAndValue(infer_schema(value) or OPTIONAL_STRING, value)

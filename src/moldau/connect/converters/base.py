"""The converter interfaces."""

from __future__ import annotations

from typing import Any

from moldau.connect.api.data import Schema, SchemaAndValue


class Converter:
    """Connect data <-> bytes. `configure` gets the converter's own configs (prefix already stripped)."""

    def configure(self, configs: dict[str, Any], is_key: bool) -> None:
        self.is_key = is_key

    def from_connect_data(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        raise NotImplementedError

    def to_connect_data(self, topic: str, data: bytes | None) -> SchemaAndValue:
        raise NotImplementedError


class HeaderConverter:
    def configure(self, configs: dict[str, Any]) -> None:
        pass

    def from_connect_header(self, topic: str, key: str, schema: Schema | None, value: Any) -> bytes | None:
        raise NotImplementedError

    def to_connect_header(self, topic: str, key: str, data: bytes | None) -> SchemaAndValue:
        raise NotImplementedError

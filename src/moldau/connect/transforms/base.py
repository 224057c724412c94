"""The Transformation and Predicate interfaces."""

from __future__ import annotations

from typing import Any

from moldau.connect.api.config import ConfigDef
from moldau.connect.api.records import ConnectRecord


class Transformation:
    """Returns a new record, the same one, or None to drop it. Configured with its own keys
    (`transforms.<alias>.` stripped)."""

    CONFIG_DEF = ConfigDef()

    def configure(self, configs: dict[str, Any]) -> None:
        self.settings = self.config().parse(configs)

    def config(self) -> ConfigDef:
        return self.CONFIG_DEF

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Predicate:
    CONFIG_DEF = ConfigDef()

    def configure(self, configs: dict[str, Any]) -> None:
        self.settings = self.config().parse(configs)

    def config(self) -> ConfigDef:
        return self.CONFIG_DEF

    def test(self, record: ConnectRecord) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass

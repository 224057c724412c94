"""Predicates for conditional transforms (KIP-585)."""

from __future__ import annotations

import re
from typing import Any

from moldau.connect.api.config import ConfigDef, Importance, Type, valid_regex
from moldau.connect.api.records import ConnectRecord
from moldau.connect.transforms.base import Predicate


class TopicNameMatches(Predicate):
    CONFIG_DEF = ConfigDef().define("pattern", Type.STRING, validator=valid_regex, importance=Importance.MEDIUM,
                                    documentation="A Java regular expression for matching against the topic name.")

    def configure(self, configs: dict[str, Any]) -> None:
        super().configure(configs)
        self.pattern = re.compile(self.settings["pattern"])

    def test(self, record: ConnectRecord) -> bool:
        return record.topic is not None and bool(self.pattern.fullmatch(record.topic))


class HasHeaderKey(Predicate):
    CONFIG_DEF = ConfigDef().define("name", Type.STRING, importance=Importance.MEDIUM,
                                    documentation="The header name.")

    def test(self, record: ConnectRecord) -> bool:
        return any(h.key == self.settings["name"] for h in record.headers)


class RecordIsTombstone(Predicate):
    def test(self, record: ConnectRecord) -> bool:
        return record.value is None

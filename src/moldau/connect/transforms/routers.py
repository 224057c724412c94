"""Routing and filtering SMTs: TimestampRouter, RegexRouter, Filter, InsertHeader, DropHeaders."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from moldau.connect.api.config import ConfigDef, Importance, Type, valid_regex
from moldau.connect.api.data import OPTIONAL_STRING
from moldau.connect.api.errors import DataException
from moldau.connect.api.records import ConnectRecord, Header
from moldau.connect.transforms.base import Transformation
from moldau.connect.transforms.util import parse_list

# Java SimpleDateFormat letters -> strftime, longest first (TimestampRouter's timestamp.format).
_JAVA_DATE = [("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
              ("ss", "%S"), ("SSS", "{millis}")]


def java_date_format(pattern: str, when: dt.datetime) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern[i] == "'":  # quoted literal text
            end = pattern.find("'", i + 1)
            out += pattern[i + 1:end if end > 0 else len(pattern)]
            i = end + 1 if end > 0 else len(pattern)
            continue
        for java, python in _JAVA_DATE:
            if pattern.startswith(java, i):
                out += when.strftime(python) if python.startswith("%") else f"{when.microsecond // 1000:03d}"
                i += len(java)
                break
        else:
            out += pattern[i]
            i += 1
    return out


class TimestampRouter(Transformation):
    CONFIG_DEF = (ConfigDef()
                  .define("topic.format", Type.STRING, "${topic}-${timestamp}", importance=Importance.HIGH,
                          documentation="Format string which can contain ${topic} and ${timestamp}")
                  .define("timestamp.format", Type.STRING, "yyyyMMdd", importance=Importance.HIGH,
                          documentation="Format string for the timestamp, java.text.SimpleDateFormat syntax"))

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        if record.timestamp is None:
            raise DataException(f"Timestamp missing on record: {record}")
        when = dt.datetime.fromtimestamp(record.timestamp / 1000, dt.UTC)
        stamp = java_date_format(self.settings["timestamp.format"], when)
        topic = self.settings["topic.format"].replace("${topic}", record.topic).replace("${timestamp}", stamp)
        return record.new_record(topic=topic)


def java_replacement(replacement: str) -> str:
    """Java's `$1` group references -> Python's `\\g<1>`."""
    return re.sub(r"\$(\d+)", r"\\g<\1>", replacement.replace("\\", "\\\\"))


class RegexRouter(Transformation):
    CONFIG_DEF = (ConfigDef()
                  .define("regex", Type.STRING, validator=valid_regex, importance=Importance.HIGH,
                          documentation="Regular expression to use for matching.")
                  .define("replacement", Type.STRING, importance=Importance.HIGH,
                          documentation="Replacement string."))

    def configure(self, configs: dict[str, Any]) -> None:
        super().configure(configs)
        self.regex = re.compile(self.settings["regex"])
        self.replacement = java_replacement(self.settings["replacement"])

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        if self.regex.fullmatch(record.topic):  # Java's Matcher.matches(): the whole topic name
            return record.new_record(topic=self.regex.sub(self.replacement, record.topic, count=1))
        return record


class Filter(Transformation):
    """Drops every record; use it with a predicate (KIP-585)."""

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        return None


class InsertHeader(Transformation):
    CONFIG_DEF = (ConfigDef().define("header", Type.STRING, importance=Importance.HIGH)
                  .define("value.literal", Type.STRING, importance=Importance.HIGH))

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        header = Header(self.settings["header"], self.settings["value.literal"], OPTIONAL_STRING)
        return record.new_record(headers=[*record.headers, header])


class DropHeaders(Transformation):
    CONFIG_DEF = ConfigDef().define("headers", Type.LIST, importance=Importance.HIGH)

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        dropped = set(parse_list(self.settings["headers"]))
        return record.new_record(headers=[h for h in record.headers if h.key not in dropped])

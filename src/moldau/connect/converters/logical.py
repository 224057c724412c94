"""Kafka's logical types as Python values: Timestamp=datetime (UTC), Date=date, Time=time, Decimal=Decimal."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from moldau.connect.api.data import DATE, DECIMAL, TIME, TIMESTAMP, Schema

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_wire(schema: Schema, value: Any) -> Any:
    """The primitive value Kafka stores for a logical value (ms, days, unscaled bytes)."""
    if value is None:
        return None
    if schema.name == TIMESTAMP and isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (aware - EPOCH) // dt.timedelta(milliseconds=1)
    if schema.name == DATE and isinstance(value, dt.date):
        return (value - EPOCH.date()).days
    if schema.name == TIME and isinstance(value, dt.time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000
    if schema.name == DECIMAL and isinstance(value, (decimal.Decimal, int, float)):
        scale = int((schema.parameters or {}).get("scale", "0"))
        unscaled = int(decimal.Decimal(value).scaleb(scale).to_integral_value())
        length = max(1, (unscaled.bit_length() + 8) // 8)
        return unscaled.to_bytes(length, "big", signed=True)
    return value


def from_wire(schema: Schema, value: Any) -> Any:
    if value is None:
        return None
    if schema.name == TIMESTAMP and isinstance(value, int):
        return EPOCH + dt.timedelta(milliseconds=value)
    if schema.name == DATE and isinstance(value, int):
        return EPOCH.date() + dt.timedelta(days=value)
    if schema.name == TIME and isinstance(value, int):
        return (dt.datetime.min + dt.timedelta(milliseconds=value)).time()
    if schema.name == DECIMAL and isinstance(value, (bytes, bytearray)):
        scale = int((schema.parameters or {}).get("scale", "0"))
        return decimal.Decimal(int.from_bytes(value, "big", signed=True)).scaleb(-scale)
    return value

"""What the Postgres source and sink share: connection settings, identifier quoting, and the mapping between
Postgres types and Connect schemas."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

from moldau.connect.api.config import ConfigDef, Importance, Type
from moldau.connect.api.data import (
    DATE,
    DECIMAL,
    TIME,
    TIMESTAMP,
    Schema,
    decimal_schema,
    timestamp_schema,
)
from moldau.connect.api.errors import ConnectException

CONNECTION_GROUP = "Database"


def connection_config(definition: ConfigDef) -> ConfigDef:
    return (definition
            .define("connection.url", Type.STRING, importance=Importance.HIGH, group=CONNECTION_GROUP, order=1,
                    documentation="postgresql://host:port/db, jdbc:postgresql://host:port/db or a libpq DSN")
            .define("connection.user", Type.STRING, None, importance=Importance.HIGH, group=CONNECTION_GROUP,
                    order=2)
            .define("connection.password", Type.PASSWORD, None, importance=Importance.HIGH, group=CONNECTION_GROUP,
                    order=3)
            .define("connection.attempts", Type.INT, 3, importance=Importance.LOW, group=CONNECTION_GROUP, order=4)
            .define("connection.backoff.ms", Type.LONG, 10000, importance=Importance.LOW, group=CONNECTION_GROUP,
                    order=5))


def connect_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """psycopg.connect() arguments; Kafka JDBC users write jdbc:postgresql://..., which we accept too."""
    url = str(settings["connection.url"]).strip()
    url = url.removeprefix("jdbc:")
    kwargs: dict[str, Any] = {"conninfo": url}
    if settings.get("connection.user"):
        kwargs["user"] = settings["connection.user"]
    if settings.get("connection.password"):
        kwargs["password"] = settings["connection.password"]
    return kwargs


def connect(settings: dict[str, Any], autocommit: bool = False) -> Any:
    import psycopg  # imported here: the connectors load only where psycopg is installed

    try:
        return psycopg.connect(**connect_kwargs(settings), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise ConnectException(f"Could not connect to Postgres at {settings['connection.url']}: {exc}") from exc


def quote(identifier: str) -> str:
    """Quote a Postgres identifier (a."b" for schema-qualified names)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in identifier.split("."))


def split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return (schema or "public"), table


# Postgres type OIDs (pg_type.dat) -> Connect schema.
BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8, BPCHAR, VARCHAR = 16, 17, 20, 21, 23, 25, 114, 700, 701, \
    1042, 1043
DATE_OID, TIME_OID, TIMESTAMP_OID, TIMESTAMPTZ_OID, NUMERIC, UUID, JSONB = 1082, 1083, 1114, 1184, 1700, 2950, 3802


def schema_for_oid(oid: int, typmod: int = -1, optional: bool = True) -> Schema:
    if oid == NUMERIC:
        if typmod >= 4:
            return decimal_schema((typmod - 4) & 0xFFFF, optional)
        return Schema("string", optional=optional)  # unconstrained numeric: exact text, no fixed scale
    simple = {BOOL: "boolean", BYTEA: "bytes", INT8: "int64", INT2: "int16", INT4: "int32", FLOAT4: "float32",
              FLOAT8: "float64"}
    if oid in simple:
        return Schema(simple[oid], optional=optional)
    if oid in (TIMESTAMP_OID, TIMESTAMPTZ_OID):
        return timestamp_schema(optional)
    if oid == DATE_OID:
        return Schema("int32", optional=optional, name=DATE, version=1)
    if oid == TIME_OID:
        return Schema("int32", optional=optional, name=TIME, version=1)
    return Schema("string", optional=optional)


def connect_value(value: Any, schema: Schema) -> Any:
    """A value psycopg returned, as the Connect value its schema expects."""
    if value is None:
        return None
    if schema.name == TIMESTAMP and isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if schema.type == "string" and not isinstance(value, str):
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return str(value)
    if schema.name == DECIMAL and not isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(value))
    return value


def text_value(text: str, oid: int) -> Any:
    """A column value from pgoutput's text format (logical replication), as psycopg would return it."""
    if oid in (INT2, INT4, INT8):
        return int(text)
    if oid in (FLOAT4, FLOAT8):
        return float(text)
    if oid == NUMERIC:
        return decimal.Decimal(text)
    if oid == BOOL:
        return text == "t"
    if oid == BYTEA:
        return bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()
    if oid == DATE_OID:
        return dt.date.fromisoformat(text)
    if oid == TIME_OID:
        return dt.time.fromisoformat(text)
    if oid in (TIMESTAMP_OID, TIMESTAMPTZ_OID):
        parsed = dt.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return text


def sql_type(schema: Schema) -> str:
    """The column type auto.create / auto.evolve use for a Connect schema (GenericDatabaseDialect's choices)."""
    if schema.name == TIMESTAMP:
        return "TIMESTAMPTZ"
    if schema.name == DATE:
        return "DATE"
    if schema.name == TIME:
        return "TIME"
    if schema.name == DECIMAL:
        return "NUMERIC"
    mapping = {"int8": "SMALLINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT", "float32": "REAL",
               "float64": "DOUBLE PRECISION", "boolean": "BOOLEAN", "string": "TEXT", "bytes": "BYTEA",
               "struct": "JSONB", "map": "JSONB", "array": "JSONB"}
    return mapping[schema.type]

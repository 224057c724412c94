"""Table metadata and DDL for the sink: auto.create and auto.evolve from record schemas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moldau.connect.api.data import Schema
from moldau.connect.api.errors import ConnectException
from moldau.connect.connectors.postgres.common import quote, split_table, sql_type


@dataclass(slots=True)
class TableDefinition:
    name: str
    columns: dict[str, str]  # column -> data type
    primary_key: list[str]


def describe(conn: Any, name: str) -> TableDefinition | None:
    schema, table = split_table(name)
    with conn.cursor() as cur:
        cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (schema, table))
        columns = {row[0]: row[1] for row in cur.fetchall()}
        if not columns:
            return None
        cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                    "ORDER BY array_position(i.indkey, a.attnum)", (quote(name),))
        return TableDefinition(name, columns, [row[0] for row in cur.fetchall()])


def create(conn: Any, name: str, fields: list[tuple[str, Schema]], primary_key: list[str]) -> TableDefinition:
    columns = []
    for column, schema in fields:
        not_null = " NOT NULL" if (column in primary_key or not schema.optional) else ""
        columns.append(f"{quote(column)} {sql_type(schema)}{not_null}")
    if primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(quote(c) for c in primary_key)})")
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {quote(name)} ({', '.join(columns)})")
    definition = describe(conn, name)
    assert definition is not None
    return definition


def evolve(conn: Any, table: TableDefinition, fields: list[tuple[str, Schema]], auto_evolve: bool) -> None:
    """Add the columns the records have and the table lacks (DbStructure.amendIfNecessary)."""
    missing = [(c, s) for c, s in fields if c not in table.columns]
    if not missing:
        return
    if not auto_evolve:
        raise ConnectException(f"Table {table.name} is missing fields ({', '.join(c for c, _ in missing)}) and "
                               "auto-evolution is disabled")
    with conn.cursor() as cur:
        for column, schema in missing:
            if not schema.optional and schema.default is None:
                raise ConnectException(f"Cannot ALTER TABLE {table.name} to add missing field {column}, as the "
                                       "field is not optional and does not have a default value")
            cur.execute(f"ALTER TABLE {quote(table.name)} ADD COLUMN IF NOT EXISTS {quote(column)} "
                        f"{sql_type(schema)}")
            table.columns[column] = sql_type(schema)

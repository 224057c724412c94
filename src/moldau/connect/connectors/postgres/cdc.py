"""Change data capture from a logical replication slot with the built-in `pgoutput` plugin.

psycopg 3 has no replication-protocol client, so the task reads the slot through SQL:
`pg_logical_slot_peek_binary_changes()` returns pgoutput's binary messages without consuming them, and
`pg_replication_slot_advance()` releases them once the worker has committed the records' offsets
(`SourceTask.commit`). A crash in between re-reads from the slot, and transactions at or below the stored
offset (`{"lsn": <commit end LSN>}`) are skipped, so each committed transaction reaches Kafka once, in
commit order, as whole transactions (which is what makes KIP-618 exactly-once possible on top).

Inserts and updates become records whose key is a struct of the replica identity (primary key) columns and
whose value is the new row; deletes become tombstones (null value) with the old key. Requires
`wal_level=logical`. Limitations: no initial snapshot (rows present before the slot existed are not
copied), and unchanged TOASTed values in updates arrive as null unless the table has REPLICA IDENTITY FULL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from moldau.connect.api import SourceRecord, Struct
from moldau.connect.api.data import Schema
from moldau.connect.api.errors import ConnectException
from moldau.connect.connectors.postgres.common import (
    connect_value,
    quote,
    schema_for_oid,
    split_table,
    text_value,
)

PEEK_LIMIT = 10000  # changes decoded per poll (whole transactions are always returned)


@dataclass(slots=True)
class Relation:
    namespace: str
    name: str
    columns: list[tuple[str, int, int, bool]]  # name, type oid, typmod, is key
    key_schema: Schema | None
    value_schema: Schema


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos:end].decode()
        self.pos = end + 1
        return text

    def tuple_data(self) -> list[tuple[str, bytes | None]]:
        columns: list[tuple[str, bytes | None]] = []
        for _ in range(self.unpack(">h")):
            kind = chr(self.unpack(">B"))
            if kind in "tb":
                length = self.unpack(">i")
                columns.append((kind, self.data[self.pos:self.pos + length]))
                self.pos += length
            else:
                columns.append((kind, None))  # 'n' null, 'u' unchanged TOAST value
        return columns


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class ChangeCapture:
    PARTITION: ClassVar[dict[str, str]] = {"protocol": "1", "source": "pgoutput"}

    def __init__(self, conn: Any, tables: list[str], topic_prefix: str, slot: str, publication: str,
                 autocreate: bool, batch_rows: int, offset: dict[str, Any] | None) -> None:
        self.conn = conn
        self.conn.autocommit = True  # slot functions may not run inside a transaction that wrote
        self.tables = tables
        self.prefix = topic_prefix
        self.slot = slot
        self.publication = publication
        self.batch_rows = max(batch_rows, PEEK_LIMIT)
        self.relations: dict[int, Relation] = {}
        self.emitted_lsn = int((offset or {}).get("lsn", 0))
        self.acknowledged_lsn = 0
        self._setup(autocreate)

    def _setup(self, autocreate: bool) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            if cur.fetchone()[0] != "logical":
                raise ConnectException("mode=cdc needs the Postgres server setting wal_level=logical")
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
            if cur.fetchone() is None:
                if not autocreate:
                    raise ConnectException(f"Publication {self.publication} does not exist")
                cur.execute(f"CREATE PUBLICATION {quote(self.publication)} FOR TABLE "
                            + ", ".join(quote(t) for t in self.tables))
            cur.execute("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))
                row = cur.fetchone()
            self.acknowledged_lsn = parse_lsn(str(row[0])) if row[0] is not None else 0
        if self.emitted_lsn > self.acknowledged_lsn:
            self.acknowledge()  # offsets were committed but the slot was not advanced before a crash

    def acknowledge(self) -> None:
        if self.emitted_lsn <= self.acknowledged_lsn or self.conn.closed:
            return
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn_text(self.emitted_lsn)))
        self.acknowledged_lsn = self.emitted_lsn

    def poll(self) -> list[SourceRecord]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, 'proto_version', '1', "
                        "'publication_names', %s)", (self.slot, self.batch_rows, self.publication))
            messages = [bytes(row[0]) for row in cur.fetchall()]
        records: list[SourceRecord] = []
        pending: list[tuple[str, Relation, Any, Any]] = []  # (operation, relation, key row, value row)
        for message in messages:
            kind, reader = chr(message[0]), _Reader(message[1:])
            if kind == "B":
                pending = []
            elif kind == "R":
                self._relation(reader)
            elif kind in "IUD":
                pending += self._change(kind, reader)
            elif kind == "C":
                _flags, _commit_lsn, end_lsn = reader.unpack(">BQQ")
                if end_lsn > self.emitted_lsn:
                    records += self._records(pending, end_lsn)
                    self.emitted_lsn = end_lsn
                pending = []
        return records

    def _relation(self, reader: _Reader) -> None:
        relid = reader.unpack(">I")
        namespace, name = reader.string(), reader.string()
        reader.unpack(">B")  # replica identity setting
        columns = []
        for _ in range(reader.unpack(">h")):
            flags = reader.unpack(">B")
            column = reader.string()
            oid, typmod = reader.unpack(">Ii")
            columns.append((column, oid, typmod, bool(flags & 1)))
        keys = [(c, schema_for_oid(o, t, optional=False)) for c, o, t, k in columns if k]
        value_schema = Schema.struct([(c, schema_for_oid(o, t, optional=not k)) for c, o, t, k in columns],
                                     name=f"{namespace}.{name}", optional=True)
        key_schema = Schema.struct(keys, name=f"{namespace}.{name}.Key") if keys else None
        self.relations[relid] = Relation(namespace, name, columns, key_schema, value_schema)

    def _row(self, relation: Relation, data: list[tuple[str, bytes | None]]) -> dict[str, Any]:
        row = {}
        for (name, oid, _, _), (kind, raw) in zip(relation.columns, data, strict=True):
            row[name] = None if raw is None else text_value(raw.decode(), oid) if kind == "t" else raw
        return row

    def _change(self, kind: str, reader: _Reader) -> list[tuple[str, Relation, Any, Any]]:
        relation = self.relations[reader.unpack(">I")]
        marker = chr(reader.unpack(">B"))
        old = None
        if kind in "UD" and marker in "KO":
            old = self._row(relation, reader.tuple_data())
            if kind == "D":
                return [("delete", relation, old, None)]
            marker = chr(reader.unpack(">B"))
        new = self._row(relation, reader.tuple_data())
        changes: list[tuple[str, Relation, Any, Any]] = []
        if old is not None and relation.key_schema is not None and self._key(relation, old) != self._key(relation, new):
            changes.append(("delete", relation, old, None))  # the primary key changed: the old row is gone
        changes.append(("upsert", relation, new, new))
        return changes

    @staticmethod
    def _key(relation: Relation, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(f.name) for f in relation.key_schema.fields) if relation.key_schema else ()

    def _records(self, changes: list[tuple[str, Relation, Any, Any]], end_lsn: int) -> list[SourceRecord]:
        records = []
        for _op, relation, key_row, value_row in changes:
            key = None
            if relation.key_schema is not None:
                key = Struct(relation.key_schema, {f.name: connect_value(key_row.get(f.name), f.schema)
                                                   for f in relation.key_schema.fields})
            value = None
            if value_row is not None:
                value = Struct(relation.value_schema, {f.name: connect_value(value_row.get(f.name), f.schema)
                                                       for f in relation.value_schema.fields})
            schema_name = "" if relation.namespace == "public" else f"{relation.namespace}."
            topic = self.prefix + schema_name + split_table(relation.name)[1]
            # A delete is a true tombstone (no value schema either), so compaction can drop the key.
            value_schema = relation.value_schema if value is not None else None
            records.append(SourceRecord(topic, None, relation.key_schema, key, value_schema, value,
                                        source_partition=self.PARTITION, source_offset={"lsn": end_lsn}))
        return records

"""Change data capture from a logical replication slot with the built-in `pgoutput` plugin.

psycopg 3 has no replication-protocol client, so the task reads the slot through SQL:
`pg_logical_slot_peek_binary_changes()` returns pgoutput's binary messages without consuming them, and
`pg_replication_slot_advance()` releases them once the worker has committed the records' offsets
(`SourceTask.commit`). A crash in between re-reads from the slot, and transactions at or below the stored
offset (`{"lsn": <commit end LSN>}`) are skipped, so each committed transaction reaches Kafka once, in
commit order, as whole transactions (which is what makes KIP-618 exactly-once possible on top).

Inserts and updates become records whose key is a struct of the replica identity (primary key) columns and
whose value is the new row; deletes become tombstones (null value) with the old key. Requires
`wal_level=logical`. With `snapshot.mode=initial` (the default, as in Debezium) the rows present when the slot
is created come first, read in the slot's exported snapshot (snapshot.py); their offsets are
`{"lsn": <L>, "snapshot": true, "last_snapshot_record": <bool>}` (L: see below, 0 for a new slot).

A task with no committed offset at all, or whose snapshot's last record was not committed, snapshots (again),
even if the slot already exists: a crash between creating the slot and committing the first snapshot record
left a slot but no offset, and streaming only from it would lose the snapshot rows (see `_catch_up`).
`snapshot.mode=no_data` (or `never`) streams only. Limitation: unchanged TOASTed values in updates arrive as
null unless the table has REPLICA IDENTITY FULL.
"""

from __future__ import annotations

import logging
import os
import secrets
import struct
import time
from collections.abc import Iterator
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
from moldau.connect.connectors.postgres.snapshot import Snapshot, create_slot_with_snapshot, relation_schemas

log = logging.getLogger(__name__)

PEEK_LIMIT = 10000  # changes decoded per poll (whole transactions are always returned)
# Test-only: a file path; once the slot exists and its snapshot is imported, the task creates the file and waits
# there forever, so a test can kill the worker between the slot's creation and the first committed offset.
HOLD_AFTER_SLOT_ENV = "MOLDAU_TEST_CDC_HOLD_AFTER_SLOT"

Change = tuple[str, "Relation", Any, Any]  # (operation, relation, key row, value row)


@dataclass(slots=True)
class Relation:
    namespace: str
    name: str
    columns: list[tuple[str, int, int, bool]]  # name, type oid, typmod, is key
    key_schema: Schema | None
    value_schema: Schema


_FORMATS: dict[str, struct.Struct] = {}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> Any:
        compiled = _FORMATS.get(fmt)
        if compiled is None:
            compiled = _FORMATS[fmt] = struct.Struct(fmt)
        values = compiled.unpack_from(self.data, self.pos)
        self.pos += compiled.size
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos:end].decode()
        self.pos = end + 1
        return text

    def tuple_data(self) -> list[tuple[str, bytes | None]]:
        """pgoutput's TupleData: Int16 column count, then per column a kind byte and, for 't'/'b', an Int32
        length and the bytes. Decoded by hand: this runs once per column of every change."""
        data, pos = self.data, self.pos
        columns: list[tuple[str, bytes | None]] = []
        count = int.from_bytes(data[pos:pos + 2], "big", signed=True)
        pos += 2
        for _ in range(count):
            kind = data[pos]
            pos += 1
            if kind == 0x74 or kind == 0x62:  # 't' text, 'b' binary
                length = int.from_bytes(data[pos:pos + 4], "big", signed=True)
                pos += 4
                columns.append(("t" if kind == 0x74 else "b", data[pos:pos + length]))
                pos += length
            else:
                columns.append((chr(kind), None))  # 'n' null, 'u' unchanged TOAST value
        self.pos = pos
        return columns


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class ChangeCapture:
    PARTITION: ClassVar[dict[str, str]] = {"protocol": "1", "source": "pgoutput"}

    def __init__(self, conn: Any, tables: list[str], topic_prefix: str, slot: str, publication: str,
                 autocreate: bool, batch_rows: int, offset: dict[str, Any] | None,
                 settings: dict[str, Any] | None = None, snapshot_mode: str = "no_data") -> None:
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
        self.snapshot: Snapshot | None = None
        self._held: SourceRecord | None = None  # the newest snapshot record, until we know whether it is the last
        self._snapshot_relations: dict[str, Relation] = {}
        self.snapshot_batch = max(batch_rows, 1000)
        self._tombstones: list[SourceRecord] = []  # deletes the slot holds from before the snapshot (_catch_up)
        self._snapshot_emitted = 0
        # No committed offset (a new connector, or one that died before its first commit) or an unfinished
        # snapshot: snapshot. Nothing of this connector can be relied on in Kafka without a committed offset.
        unfinished = offset is not None and bool(offset.get("snapshot")) and not offset.get("last_snapshot_record")
        snapshot = snapshot_mode == "initial" and (offset is None or unfinished)
        self._setup(autocreate, settings if snapshot else None)

    def _setup(self, autocreate: bool, snapshot_settings: dict[str, Any] | None = None) -> None:
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
            if snapshot_settings is not None:
                if row is None:
                    self._start_snapshot(snapshot_settings)
                else:
                    self.acknowledged_lsn = parse_lsn(str(row[0])) if row[0] is not None else 0
                    self._catch_up(snapshot_settings)
                _hold_for_tests()
                return
            if row is None:
                cur.execute("SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))
                row = cur.fetchone()
            self.acknowledged_lsn = parse_lsn(str(row[0])) if row[0] is not None else 0
        if self.emitted_lsn > self.acknowledged_lsn:
            self.acknowledge()  # offsets were committed but the slot was not advanced before a crash

    def _start_snapshot(self, settings: dict[str, Any]) -> None:
        repl, consistent_point, snapshot_name = create_slot_with_snapshot(settings, self.slot)
        try:
            self.snapshot = Snapshot(settings, snapshot_name, self.tables, self.snapshot_batch)
        finally:
            repl.close()  # the snapshot is imported: the exporting connection may go
        self.acknowledged_lsn = parse_lsn(consistent_point)
        self.emitted_lsn = 0  # every transaction the slot decodes committed after the snapshot
        log.info("Initial snapshot of %s at LSN %s (slot %s)", ", ".join(self.tables), consistent_point, self.slot)

    def _catch_up(self, settings: dict[str, Any]) -> None:
        """Snapshot with a slot that already exists but whose snapshot was never (completely) committed.

        Why not stream only (the old behaviour): the slot was created by an earlier attempt that died before its
        first snapshot record was committed, so the rows that predate the slot would never arrive. Why not drop
        and re-create the slot: records of the earlier attempt may be in Kafka (at-least-once mode writes before
        the offsets commit; an unfinished snapshot committed part of its rows), and a row deleted since then
        would never get its tombstone. Instead the slot is kept (it was never advanced: a snapshot's offsets do
        not advance it, see `acknowledge`) and a *temporary* slot only exports a fresh snapshot at LSN P, its
        consistent point. Every transaction of our slot that committed before P is in that snapshot, so:
        - its deletes are emitted first, as tombstones (a key deleted and re-inserted before P is then
          re-emitted by the snapshot, which comes after: the last record per key is still right);
        - its inserts and updates are skipped, the snapshot carries their result;
        - streaming goes on after the last of them (offset `lsn`), so nothing is emitted twice (exactly once
          with KIP-618) and nothing is lost. The temporary slot vanishes with its connection, even on a crash.
        Unless the tables were empty when our slot was created (`_empty_at_slot_start`): then the slot holds
        every row's whole history and streams it from its start, change by change, as it always did; a snapshot
        would fold those changes into rows (an empty first snapshot leaves no offset to say it was taken).
        """
        # unique: a task being stopped elsewhere may still hold its own for a moment
        temporary = f"{self.slot[:40]}_snap_{os.getpid()}_{secrets.token_hex(4)}"
        repl, point, snapshot_name = create_slot_with_snapshot(settings, temporary, True)
        try:
            self.snapshot = Snapshot(settings, snapshot_name, self.tables, self.snapshot_batch)
        finally:
            repl.close()  # drops the temporary slot
        with self.conn.cursor() as cur:  # the transactions committed before P: all decoded at once
            cur.execute("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
                        "'proto_version', '1', 'publication_names', %s)", (self.slot, point, self.publication))
            messages = [bytes(row[0]) for row in cur.fetchall()]
        window: list[Change] = []
        self.emitted_lsn = self.acknowledged_lsn
        for _commit_lsn, end_lsn, changes in self._transactions(messages):
            window += changes
            self.emitted_lsn = max(self.emitted_lsn, end_lsn)
        if self._empty_at_slot_start(window, self.snapshot):
            self.snapshot.close()
            self.snapshot, self.emitted_lsn = None, self.acknowledged_lsn
            log.info("Slot %s exists without a committed offset and %s had no rows when it was created: "
                     "streaming it from its start", self.slot, ", ".join(self.tables))
            return
        deletes = [c for c in window if c[0] == "delete"]
        self._tombstones = self._records(deletes, self._snapshot_offset(False))
        log.info("Snapshot of %s again at LSN %s: slot %s exists without a finished snapshot (%d deletes before it)",
                 ", ".join(self.tables), point, self.slot, len(deletes))

    def _empty_at_slot_start(self, window: list[Change], snapshot: Snapshot) -> bool:
        """Whether the tables were empty at our slot's start, from the changes it holds up to the new snapshot
        and that snapshot: every key's first change is an insert, and the snapshot holds no row but those
        inserted (and not deleted) since. Tables without a replica identity key cannot tell: False."""
        first: dict[tuple[Any, ...], str] = {}
        alive: dict[tuple[Any, ...], bool] = {}
        for operation, relation, key_row, _ in window:
            if relation.key_schema is None:
                return False
            key = (relation.namespace, relation.name, self._key(relation, key_row))
            first.setdefault(key, operation)
            alive[key] = operation != "delete"
        if any(operation != "insert" for operation in first.values()):
            return False
        for table in self.tables:
            columns = snapshot.columns(table)
            if not columns:
                return False
            namespace, name = columns[0][4], columns[0][5]
            inserted = sum(1 for (n, t, _), live in alive.items() if live and (n, t) == (namespace, name))
            if snapshot.count(table) != inserted:
                return False
        return True

    def _snapshot_offset(self, last: bool) -> dict[str, Any]:
        return {"lsn": self.emitted_lsn, "snapshot": True, "last_snapshot_record": last}

    def _poll_snapshot(self, snapshot: Snapshot) -> list[SourceRecord]:
        tombstones, self._tombstones = self._tombstones, []
        records: list[SourceRecord] = []
        offset = self._snapshot_offset(False)
        while not records and not snapshot.done:  # empty tables give nothing: go on to the next
            table, rows, _ = snapshot.next_rows()
            if table not in self._snapshot_relations:
                self._snapshot_relations[table] = self._relation_from_catalog(snapshot, table)
            relation = self._snapshot_relations[table]
            changes = []
            for values in rows:
                row = {name: None if text is None else text_value(text, oid)
                       for (name, oid, _, _), text in zip(relation.columns, values, strict=True)}
                changes.append(("upsert", relation, row, row))
            records += self._records(changes, offset)
        records = tombstones + records
        out = ([self._held] if self._held is not None else []) + records
        self._held = None
        self._snapshot_emitted += len(records)
        if snapshot.done:
            self.snapshot = None
            if out:
                last = out[-1]
                out[-1] = SourceRecord(last.topic, None, last.key_schema, last.key, last.value_schema, last.value,
                                       source_partition=self.PARTITION, source_offset=self._snapshot_offset(True))
            elif not self._snapshot_emitted:
                self.acknowledge()  # nothing to commit, so nothing that a commit() would release the slot after
            log.info("Initial snapshot of %s done: streaming from slot %s", ", ".join(self.tables), self.slot)
        elif out:
            self._held = out.pop()
        return out

    @staticmethod
    def _relation_from_catalog(snapshot: Snapshot, table: str) -> Relation:
        columns = snapshot.table_columns[table]
        if not columns:
            raise ConnectException(f"Table {table} has no columns to copy")
        key_schema, value_schema = relation_schemas(columns)
        return Relation(columns[0][4], columns[0][5], [(c, o, t, k) for c, o, t, k, _, _ in columns], key_schema,
                        value_schema)

    def acknowledge(self) -> None:
        # Not while snapshotting: a restart before the snapshot's last record is committed snapshots again and
        # needs the slot where it was (`_catch_up`); the last snapshot record's offset then carries emitted_lsn.
        if self.snapshot is not None or self._held is not None:
            return
        if self.emitted_lsn <= self.acknowledged_lsn or self.conn.closed:
            return
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn_text(self.emitted_lsn)))
        self.acknowledged_lsn = self.emitted_lsn

    def poll(self) -> list[SourceRecord]:
        if self.snapshot is not None:
            return self._poll_snapshot(self.snapshot)
        with self.conn.cursor() as cur:
            cur.execute("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, 'proto_version', '1', "
                        "'publication_names', %s)", (self.slot, self.batch_rows, self.publication))
            messages = [bytes(row[0]) for row in cur.fetchall()]
        records: list[SourceRecord] = []
        for _commit_lsn, end_lsn, changes in self._transactions(messages):
            if end_lsn > self.emitted_lsn:
                records += self._records(changes, {"lsn": end_lsn})
                self.emitted_lsn = end_lsn
        return records

    def _transactions(self, messages: list[bytes]) -> Iterator[tuple[int, int, list[Change]]]:
        """pgoutput messages -> (commit LSN, commit end LSN, changes) per transaction, in commit order."""
        pending: list[Change] = []
        for message in messages:
            kind, reader = chr(message[0]), _Reader(message[1:])
            if kind == "B":
                pending = []
            elif kind == "R":
                self._relation(reader)
            elif kind in "IUD":
                pending += self._change(kind, reader)
            elif kind == "C":
                _flags, commit_lsn, end_lsn = reader.unpack(">BQQ")
                yield commit_lsn, end_lsn, pending
                pending = []

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
        changes.append(("insert" if kind == "I" else "upsert", relation, new, new))
        return changes

    @staticmethod
    def _key(relation: Relation, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(f.name) for f in relation.key_schema.fields) if relation.key_schema else ()

    def _records(self, changes: list[tuple[str, Relation, Any, Any]], offset: dict[str, Any]) -> list[SourceRecord]:
        records = []
        trusted = Struct.trusted  # the values are built from the schema's own fields
        for _op, relation, key_row, value_row in changes:
            key = None
            if relation.key_schema is not None:
                key = trusted(relation.key_schema, {f.name: connect_value(key_row.get(f.name), f.schema)
                                                    for f in relation.key_schema.fields})
            value = None
            if value_row is not None:
                value = trusted(relation.value_schema, {f.name: connect_value(value_row.get(f.name), f.schema)
                                                        for f in relation.value_schema.fields})
            schema_name = "" if relation.namespace == "public" else f"{relation.namespace}."
            topic = self.prefix + schema_name + split_table(relation.name)[1]
            # A delete is a true tombstone (no value schema either), so compaction can drop the key.
            value_schema = relation.value_schema if value is not None else None
            records.append(SourceRecord(topic, None, relation.key_schema, key, value_schema, value,
                                        source_partition=self.PARTITION, source_offset=offset))
        return records


def _hold_for_tests() -> None:
    path = os.environ.get(HOLD_AFTER_SLOT_ENV)
    if not path:
        return
    log.warning("%s is set: holding the task after creating the slot (tests only)", HOLD_AFTER_SLOT_ENV)
    with open(path, "w") as marker:
        marker.write(str(os.getpid()))
    while True:  # until the test kills the worker
        time.sleep(1)

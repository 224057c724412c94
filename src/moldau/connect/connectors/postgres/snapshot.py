"""The CDC initial snapshot (`snapshot.mode=initial`, Debezium's name and default): the rows present when the
replication slot is created are read first, then the slot streams every change committed after them.

No gap and no duplicate: the slot is created over a replication connection with `CREATE_REPLICATION_SLOT ...
(SNAPSHOT 'export')`, which returns the name of a snapshot taken at exactly the slot's consistent point. A second
connection imports it (`SET TRANSACTION SNAPSHOT`, in a REPEATABLE READ READ ONLY transaction) and reads the
tables through server-side cursors, batch by batch across polls: it sees every transaction committed before the
slot's start, and the slot decodes every transaction committed after. (psycopg 3 has no replication-protocol
client, but a `replication=database` connection accepts the command over the simple query protocol.)

Columns are read as text (`::text`, the same output functions pgoutput uses) and the schemas come from the
catalog with pgoutput's rules (replica identity columns are the key), so snapshot and streamed records share
one conversion path and one schema.
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.connect.api.data import Schema
from moldau.connect.api.errors import ConnectException
from moldau.connect.connectors.postgres.common import connect_kwargs, quote, schema_for_oid

log = logging.getLogger(__name__)

# pgoutput's key columns: the replica identity (default: the primary key; FULL: every column; INDEX: that index)
_COLUMNS = """
SELECT a.attname, a.atttypid, a.atttypmod,
       CASE c.relreplident
         WHEN 'f' THEN true
         WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident
                               AND a.attnum = ANY(i.indkey))
         WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary
                               AND a.attnum = ANY(i.indkey))
         ELSE false END,
       n.nspname, c.relname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""


def create_slot_with_snapshot(settings: dict[str, Any], slot: str, temporary: bool = False) -> tuple[Any, str, str]:
    """Create the logical slot and export its snapshot: (the replication connection, which must stay open until
    the snapshot is imported, the slot's consistent point LSN, the snapshot name). A `temporary` slot is dropped
    by the server when that connection closes, even if this process dies (it only serves the export)."""
    import psycopg

    try:
        repl = psycopg.connect(**connect_kwargs(settings), autocommit=True, replication="database")
    except psycopg.OperationalError as exc:
        raise ConnectException(f"Could not open a replication connection (the user needs the REPLICATION "
                               f"attribute): {exc}") from exc
    command = f"CREATE_REPLICATION_SLOT {quote(slot)}{' TEMPORARY' if temporary else ''} LOGICAL pgoutput"
    command += " (SNAPSHOT 'export')" if repl.info.server_version >= 150000 else " EXPORT_SNAPSHOT"
    result = repl.pgconn.exec_(command.encode())
    if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
        message = (result.error_message or b"").decode(errors="replace").strip()
        repl.close()
        raise ConnectException(f"Could not create replication slot {slot}: {message}")
    names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
    row = {name: (result.get_value(0, i) or b"").decode() for i, name in enumerate(names)}
    return repl, row["consistent_point"], row["snapshot_name"]


class Snapshot:
    """Reads the tables in the exported snapshot, `batch` rows per call, one table after another."""

    def __init__(self, settings: dict[str, Any], snapshot_name: str | None, tables: list[str], batch: int) -> None:
        import psycopg
        from psycopg import sql

        self.conn = psycopg.connect(**connect_kwargs(settings))
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.conn.read_only = True
        if snapshot_name is not None:  # None: the current state (a repeated snapshot, see cdc.py)
            # The first statement of the transaction: afterwards the exporting connection may close.
            self.conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
        self.tables, self.batch = list(tables), batch
        self.index = 0
        self.cursor: Any = None
        self.done = not self.tables
        self.table_columns: dict[str, list[tuple[str, int, int, bool, str, str]]] = {}  # read in the snapshot

    def columns(self, table: str) -> list[tuple[str, int, int, bool, str, str]]:
        with self.conn.cursor() as cur:
            cur.execute(_COLUMNS, (quote(table),))
            return [tuple(row) for row in cur.fetchall()]  # type: ignore[misc]

    def count(self, table: str) -> int:
        """The table's rows in the snapshot."""
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {quote(table)}")
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def next_rows(self) -> tuple[str, list[tuple[Any, ...]], bool]:
        """(table, up to `batch` rows as text, whether that was the table's last batch)."""
        table = self.tables[self.index]
        if self.cursor is None:
            self.table_columns[table] = self.columns(table)
            names = [c[0] for c in self.table_columns[table]]
            self.cursor = self.conn.cursor(name=f"moldau_snapshot_{self.index}")
            select = ", ".join(f"{quote(n)}::text" for n in names) or "NULL"
            self.cursor.execute(f"SELECT {select} FROM {quote(table)}")
        rows = self.cursor.fetchmany(self.batch)
        finished = len(rows) < self.batch
        if finished:
            self.cursor.close()
            self.cursor = None
            self.index += 1
            self.done = self.index >= len(self.tables)
            if self.done:
                self.close()
        return table, rows, finished

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def relation_schemas(columns: list[tuple[str, int, int, bool, str, str]]) -> tuple[Schema | None, Schema]:
    """Key and value schemas as ChangeCapture builds them from a pgoutput Relation message."""
    namespace, name = columns[0][4], columns[0][5]
    keys = [(c, schema_for_oid(o, t, optional=False)) for c, o, t, k, _, _ in columns if k]
    value = Schema.struct([(c, schema_for_oid(o, t, optional=not k)) for c, o, t, k, _, _ in columns],
                          name=f"{namespace}.{name}", optional=True)
    return (Schema.struct(keys, name=f"{namespace}.{name}.Key") if keys else None), value

"""PostgresSinkConnector: writes records into tables, like Confluent's JDBC sink.

    insert.mode=insert|upsert|update, pk.mode=none|kafka|record_key|record_value, pk.fields=...,
    auto.create, auto.evolve, delete.enabled (tombstones delete by key), table.name.format=${topic}

Each `put` is one transaction. A run of at least COPY_THRESHOLD inserts is COPYed straight into the table;
a run of upserts is COPYed into a temporary staging table and merged with one INSERT ... ON CONFLICT,
keeping only the last record per key within the run (what the database would end up with anyway); shorter
runs and updates use `executemany`. A run of deletes is one `= ANY(array)` statement (single-column keys) or
an `executemany`. The order of runs is preserved, so a key inserted, deleted and re-inserted in one batch
ends up present. With `offsets.table.name` set, the task stores Kafka offsets in the same
transaction and seeks to them on open: exactly-once delivery into Postgres.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

from moldau.connect.api import (
    ConfigDef,
    Importance,
    SinkConnector,
    SinkRecord,
    SinkTask,
    TopicPartition,
    Type,
)
from moldau.connect.api.config import Range, ValidString
from moldau.connect.api.data import Schema, Struct, infer_schema, plain
from moldau.connect.api.errors import ConnectException, DataException, RetriableException
from moldau.connect.connectors.postgres import tables
from moldau.connect.connectors.postgres.common import connect, connection_config, quote

WRITES = "Writes"
COPY_THRESHOLD = 64  # runs at least this long go through COPY
# information_schema data types of a single-column key that a run of deletes may pass as one array.
_ARRAY_KEY_TYPES = {"smallint", "integer", "bigint", "text", "character varying", "uuid"}
KAFKA_PK = ["__connect_topic", "__connect_partition", "__connect_offset"]

CONFIG_DEF = (connection_config(ConfigDef())
              .define("insert.mode", Type.STRING, "insert", validator=ValidString.in_("insert", "upsert", "update"),
                      importance=Importance.HIGH, group=WRITES)
              .define("batch.size", Type.INT, 3000, validator=Range.at_least(1), importance=Importance.MEDIUM,
                      group=WRITES)
              .define("delete.enabled", Type.BOOLEAN, False, importance=Importance.MEDIUM, group=WRITES,
                      documentation="Whether to treat null record values as deletes. Requires pk.mode=record_key.")
              .define("table.name.format", Type.STRING, "${topic}", importance=Importance.MEDIUM, group=WRITES)
              .define("pk.mode", Type.STRING, "none",
                      validator=ValidString.in_("none", "kafka", "record_key", "record_value"),
                      importance=Importance.HIGH, group=WRITES)
              .define("pk.fields", Type.LIST, "", importance=Importance.MEDIUM, group=WRITES)
              .define("fields.whitelist", Type.LIST, "", importance=Importance.MEDIUM, group=WRITES)
              .define("auto.create", Type.BOOLEAN, False, importance=Importance.MEDIUM, group="DDL Support")
              .define("auto.evolve", Type.BOOLEAN, False, importance=Importance.MEDIUM, group="DDL Support")
              .define("offsets.table.name", Type.STRING, "", importance=Importance.LOW, group=WRITES,
                      documentation="If set, Kafka offsets are stored in this table in the same transaction as "
                                    "the rows, and read back on start: exactly-once delivery."))


class PostgresSinkConnector(SinkConnector):
    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)
        settings = CONFIG_DEF.parse(props)
        if settings["delete.enabled"] and settings["pk.mode"] != "record_key":
            raise ConnectException("Deletes are only supported for pk.mode record_key")

    def task_class(self) -> type[SinkTask]:
        return PostgresSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self.props) for _ in range(max_tasks)]

    def config(self) -> ConfigDef:
        return CONFIG_DEF


def _fields_of(schema: Schema | None, value: Any) -> list[tuple[str, Schema]]:
    if schema is not None and schema.type == "struct":
        return [(f.name, f.schema) for f in schema.fields]
    if isinstance(value, dict):
        out = []
        for name, v in value.items():
            inferred = infer_schema(v)
            if inferred is None:
                inferred = Schema("string") if v is None else Schema("struct" if isinstance(v, dict) else "string")
            out.append((str(name), inferred.as_optional()))
        return out
    raise DataException(f"Sink records need a struct or map value, got {type(value).__name__}")


_FLAT_TYPES = frozenset(("int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string", "bytes"))
_flat_schemas: dict[int, tuple[Schema, bool]] = {}  # id -> (schema, has only primitive fields)


def _is_flat(schema: Schema) -> bool:
    cached = _flat_schemas.get(id(schema))
    if cached is None or cached[0] is not schema:
        if len(_flat_schemas) > 1000:
            _flat_schemas.clear()
        cached = (schema, all(f.schema.type in _FLAT_TYPES for f in schema.fields))
        _flat_schemas[id(schema)] = cached
    return cached[1]


def _row(value: Any) -> dict[str, Any]:
    if isinstance(value, Struct):
        values = value._values
        if len(values) == len(value.schema.fields) and _is_flat(value.schema):
            return dict(values)  # every field set, none nested: what to_dict() would return
        data = value.to_dict()
    else:
        data = dict(value)
    for key, v in data.items():
        if isinstance(v, (dict, list)):
            data[key] = json.dumps(plain(v), default=str)
    return data


def _db_value(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return v


class PostgresSinkTask(SinkTask):
    def start(self, props: dict[str, str]) -> None:
        self.settings = CONFIG_DEF.parse(props)
        self.conn = connect(self.settings)
        self.tables: dict[str, tables.TableDefinition] = {}
        self._staging: dict[str, tuple[str, set[str]]] = {}  # table -> (temp staging table, its columns)
        self.offsets_table = self.settings["offsets.table.name"]
        self.connector = props.get("name", "")
        if self.offsets_table:
            with self.conn.cursor() as cur:
                cur.execute(f"CREATE TABLE IF NOT EXISTS {quote(self.offsets_table)} (connector TEXT NOT NULL, "
                            "topic TEXT NOT NULL, kafka_partition INT NOT NULL, next_offset BIGINT NOT NULL, "
                            "PRIMARY KEY (connector, topic, kafka_partition))")
            self.conn.commit()

    # -- exactly-once: offsets stored with the rows ------------------------------------------------

    def open(self, partitions: list[TopicPartition]) -> None:
        if not self.offsets_table or not partitions:
            return
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT topic, kafka_partition, next_offset FROM {quote(self.offsets_table)} "
                        "WHERE connector = %s", (self.connector,))
            stored = {TopicPartition(t, p): o for t, p, o in cur.fetchall()}
        self.conn.commit()
        self.context.offset({tp: stored[tp] for tp in partitions if tp in stored})

    # -- writes ------------------------------------------------------------------------------------

    def table_for(self, record: SinkRecord) -> str:
        return str(self.settings["table.name.format"]).replace("${topic}", record.topic)

    def key_fields(self, record: SinkRecord) -> tuple[list[str], dict[str, Any]]:
        mode, names = self.settings["pk.mode"], list(self.settings["pk.fields"])
        if mode == "kafka":
            return KAFKA_PK, dict(zip(KAFKA_PK, (record.topic, record.kafka_partition, record.kafka_offset),
                                      strict=True))
        if mode == "record_key":
            if isinstance(record.key, (Struct, dict)):
                data = _row(record.key)
                names = names or list(data)
                return names, {n: data.get(n) for n in names}
            if record.key is None:
                raise DataException(f"pk.mode=record_key but the record at {record.topic}-"
                                    f"{record.kafka_partition}@{record.kafka_offset} has no key")
            if len(names) != 1:
                raise ConnectException("pk.mode=record_key with a primitive key needs exactly one pk.fields name")
            return names, {names[0]: _db_value(record.key)}
        if mode == "record_value":
            data = _row(record.value)
            names = names or list(data)
            return names, {n: data.get(n) for n in names}
        return [], {}

    def ensure_table(self, name: str, fields: list[tuple[str, Schema]], pk: list[str]) -> tables.TableDefinition:
        table = self.tables.get(name)
        if table is not None and all(c in table.columns for c, _ in fields):
            return table
        # DDL runs in the put's own transaction (a second connection would wait on this one's row locks),
        # serialized by an advisory lock, since several tasks or workers may create the same table at once.
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        table = tables.describe(self.conn, name)
        if table is None:
            if not self.settings["auto.create"]:
                raise ConnectException(f"Table {name} is missing and auto-creation is disabled")
            table = tables.create(self.conn, name, fields, pk)
        tables.evolve(self.conn, table, fields, self.settings["auto.evolve"])
        self.tables[name] = table
        return table

    def put(self, records: list[SinkRecord]) -> None:
        if not records:
            return
        try:
            for (table, is_delete), run in groupby(records, key=lambda r: (self.table_for(r), r.value is None)):
                batch = list(run)
                if is_delete:
                    if self.settings["delete.enabled"]:
                        self._delete(table, batch)
                else:
                    self._write(table, batch)
            if self.offsets_table:
                self._store_offsets(records)
            self.conn.commit()
        except Exception as exc:
            self.conn.rollback()
            self.tables.clear()  # DDL of this transaction was rolled back too
            self._staging.clear()
            import psycopg

            if isinstance(exc, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)):
                raise RetriableException(f"Postgres aborted the batch, it will be retried: {exc}") from exc
            raise

    def _write(self, table: str, batch: list[SinkRecord]) -> None:
        rows: dict[Any, dict[str, Any]] = {}
        fields: dict[str, Schema] = {}
        struct_schemas: set[int] = set()  # ids of the value schemas whose fields are already in `fields`
        pk: list[str] = []
        by_key = self.settings["insert.mode"] != "insert"
        key_fields = self.key_fields
        for i, record in enumerate(batch):
            pk, key = key_fields(record)
            value, schema = record.value, record.value_schema
            row = _row(value)
            if schema is not None and schema.type == "struct":
                if id(schema) not in struct_schemas:  # the records of a batch share a few Schema objects
                    struct_schemas.add(id(schema))
                    for f in schema.fields:
                        fields.setdefault(f.name, f.schema)
            else:
                for name, field_schema in _fields_of(schema, value):
                    fields.setdefault(name, field_schema)
            if key:
                for name, v in key.items():
                    if name not in fields:
                        fields[name] = infer_schema(v) or Schema("string")
                row.update(key)
            rows[tuple(key.values()) if pk and by_key else i] = row  # the last write to a key in a run wins
        whitelist = set(self.settings["fields.whitelist"])
        columns = [c for c in fields if not whitelist or c in whitelist or c in pk]
        definition = self.ensure_table(table, [(c, fields[c]) for c in columns], pk)
        pk = pk or definition.primary_key
        values = [tuple(map(r.get, columns)) for r in rows.values()]
        if self.settings["insert.mode"] == "update" or len(values) < COPY_THRESHOLD:
            with self.conn.cursor() as cur:
                cur.executemany(self._statement(table, columns, pk), values)
        elif self.settings["insert.mode"] == "insert":
            self._copy(table, columns, values)  # straight into the table: a duplicate key fails as INSERT would
        else:
            self._copy_upsert(table, definition, columns, pk, values)

    def _copy(self, table: str, columns: list[str], values: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur, \
                cur.copy(f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in values:
                write_row(row)

    def _copy_upsert(self, table: str, definition: tables.TableDefinition, columns: list[str], pk: list[str],
                     values: list[tuple[Any, ...]]) -> None:
        """COPY the run into a session-local staging table, then one INSERT ... SELECT ... ON CONFLICT:
        COPY is Postgres's fastest way in, and one statement replaces a round trip per row."""
        if not pk:
            raise ConnectException("insert.mode=upsert needs a primary key (pk.mode)")
        staging = self._staging.get(table)
        if staging is None or staging[1] != set(definition.columns):
            name = f"moldau_staging_{len(self._staging)}_{abs(hash(table)) % 10**8}"
            with self.conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {quote(name)}")
                cur.execute(f"CREATE TEMP TABLE {quote(name)} (LIKE {quote(table)} INCLUDING DEFAULTS) "
                            "ON COMMIT DELETE ROWS")
            staging = (name, set(definition.columns))
            self._staging[table] = staging
        self._copy(staging[0], columns, values)
        cols = ", ".join(quote(c) for c in columns)
        updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in columns if c not in pk)
        with self.conn.cursor() as cur:
            cur.execute(f"INSERT INTO {quote(table)} ({cols}) SELECT {cols} FROM {quote(staging[0])} "
                        f"ON CONFLICT ({', '.join(quote(c) for c in pk)}) "
                        + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING"))
            cur.execute(f"DELETE FROM {quote(staging[0])}")  # the next run of this put starts empty

    def _statement(self, table: str, columns: list[str], pk: list[str]) -> str:
        mode = self.settings["insert.mode"]
        cols = ", ".join(quote(c) for c in columns)
        marks = ", ".join(["%s"] * len(columns))
        if mode == "insert":
            return f"INSERT INTO {quote(table)} ({cols}) VALUES ({marks})"
        if not pk:
            raise ConnectException(f"insert.mode={mode} needs a primary key (pk.mode)")
        non_key = [c for c in columns if c not in pk]
        if mode == "update":
            sets = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in non_key)
            match = " AND ".join(f"t.{quote(c)} = v.{quote(c)}" for c in pk)
            return (f"UPDATE {quote(table)} AS t SET {sets} FROM (VALUES ({marks})) AS v ({cols}) WHERE {match}")
        updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in non_key)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return (f"INSERT INTO {quote(table)} ({cols}) VALUES ({marks}) "
                f"ON CONFLICT ({', '.join(quote(c) for c in pk)}) {action}")

    def _delete(self, table: str, batch: list[SinkRecord]) -> None:
        keys = {}
        pk: list[str] = []
        for record in batch:
            pk, key = self.key_fields(record)
            keys[tuple(key.values())] = key
        definition = self.tables.get(table) or tables.describe(self.conn, table)
        if definition is None:
            return  # nothing was ever written: nothing to delete
        with self.conn.cursor() as cur:
            column_type = definition.columns.get(pk[0]) if len(pk) == 1 else None
            if column_type in _ARRAY_KEY_TYPES:  # one statement for the run: the keys as one typed array
                cur.execute(f"DELETE FROM {quote(table)} WHERE {quote(pk[0])} = ANY(%s::{column_type}[])",
                            ([k[pk[0]] for k in keys.values()],))
                return
            match = " AND ".join(f"{quote(c)} = %s" for c in pk)
            cur.executemany(f"DELETE FROM {quote(table)} WHERE {match}",
                            [tuple(k[c] for c in pk) for k in keys.values()])

    def _store_offsets(self, records: list[SinkRecord]) -> None:
        latest: dict[tuple[str, int], int] = {}
        for record in records:
            topic = record.original_topic or record.topic
            partition = record.original_kafka_partition if record.original_kafka_partition is not None \
                else record.kafka_partition
            latest[(topic, int(partition or 0))] = record.kafka_offset + 1
        with self.conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {quote(self.offsets_table)} VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (connector, topic, kafka_partition) DO UPDATE SET next_offset = "
                            "EXCLUDED.next_offset", [(self.connector, t, p, o) for (t, p), o in latest.items()])

    def flush(self, current_offsets: dict[TopicPartition, int]) -> None:
        pass  # every put() commits its transaction

    def stop(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()


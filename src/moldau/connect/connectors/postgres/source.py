"""PostgresSourceConnector: tables to topics, by incremental queries (like Confluent's JDBC source) or by
change data capture from logical replication (`mode=cdc`, see cdc.py).

    mode=bulk | incrementing | timestamp | timestamp+incrementing | cdc
    table.whitelist=public.users,orders   topic.prefix=pg-   incrementing.column.name=id
    timestamp.column.name=updated_at       poll.interval.ms=5000   batch.max.rows=100

Query modes: the source partition is `{"protocol": "1", "table": <table>}` and the offset
`{"incrementing": id}` / `{"timestamp": ms, "timestamp_nanos": ns, "incrementing": id}`, the JDBC
connector's shapes. Timestamp modes see updates (when the column is bumped) but never deletes; use
`mode=cdc` for deletes. `timestamp.delay.interval.ms` leaves time for transactions that commit late with an
earlier timestamp.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from moldau.connect.api import (
    ConfigDef,
    ExactlyOnceSupport,
    Importance,
    SourceConnector,
    SourceRecord,
    SourceTask,
    Struct,
    Type,
)
from moldau.connect.api.config import Range, ValidString
from moldau.connect.api.data import Schema
from moldau.connect.api.errors import ConnectException
from moldau.connect.connectors.postgres.common import (
    connect,
    connect_value,
    connection_config,
    quote,
    schema_for_oid,
    split_table,
)

MODES = ("bulk", "incrementing", "timestamp", "timestamp+incrementing", "cdc")
CONFIG_DEF = (connection_config(ConfigDef())
              .define("mode", Type.STRING, "incrementing", validator=ValidString.in_(*MODES),
                      importance=Importance.HIGH, group="Mode")
              .define("table.whitelist", Type.LIST, "", importance=Importance.HIGH, group="Database",
                      documentation="Tables to copy (schema.table or table); also accepted as table.include.list")
              .define("incrementing.column.name", Type.STRING, "", importance=Importance.MEDIUM, group="Mode")
              .define("timestamp.column.name", Type.STRING, "", importance=Importance.MEDIUM, group="Mode")
              .define("timestamp.delay.interval.ms", Type.LONG, 0, importance=Importance.HIGH, group="Mode")
              .define("topic.prefix", Type.STRING, importance=Importance.HIGH, group="Connector")
              .define("poll.interval.ms", Type.INT, 5000, validator=Range.at_least(1), importance=Importance.HIGH,
                      group="Connector")
              .define("batch.max.rows", Type.INT, 100, validator=Range.at_least(1), importance=Importance.LOW,
                      group="Connector")
              .define("slot.name", Type.STRING, "", importance=Importance.MEDIUM, group="Change data capture",
                      documentation="Logical replication slot (mode=cdc); default moldau_<connector>")
              .define("publication.name", Type.STRING, "", importance=Importance.MEDIUM, group="Change data capture")
              .define("publication.autocreate", Type.BOOLEAN, True, importance=Importance.LOW,
                      group="Change data capture")
              .define("snapshot.mode", Type.STRING, "initial",
                      validator=ValidString.in_("initial", "no_data", "never"), importance=Importance.MEDIUM,
                      group="Change data capture",
                      documentation="initial: copy the tables' rows in the slot's snapshot first, then stream "
                                    "(Debezium's default); no_data (or never): stream changes only"))


def _tables(props: dict[str, str]) -> list[str]:
    raw = props.get("table.whitelist") or props.get("table.include.list") or ""
    return [t.strip() for t in raw.split(",") if t.strip()]


class PostgresSourceConnector(SourceConnector):
    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)
        self.settings = CONFIG_DEF.parse(props)
        self.tables = _tables(props)
        if not self.tables:
            raise ConnectException("table.whitelist must name at least one table")
        mode = self.settings["mode"]
        if "incrementing" in mode and not self.settings["incrementing.column.name"]:
            raise ConnectException(f"mode={mode} needs incrementing.column.name")
        if "timestamp" in mode and not self.settings["timestamp.column.name"]:
            raise ConnectException(f"mode={mode} needs timestamp.column.name")

    def task_class(self) -> type[SourceTask]:
        return PostgresSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        if self.settings["mode"] == "cdc":
            return [{**self.props, "tables": ",".join(self.tables)}]  # one slot, one reader
        groups = [self.tables[i::max_tasks] for i in range(min(max_tasks, len(self.tables)))]
        return [{**self.props, "tables": ",".join(group)} for group in groups]

    def config(self) -> ConfigDef:
        return CONFIG_DEF

    def exactly_once_support(self, connector_config: dict[str, str]) -> ExactlyOnceSupport:
        return ExactlyOnceSupport.SUPPORTED

    def alter_offsets(self, connector_config: dict[str, str], offsets: dict[Any, Any]) -> bool:
        return True


def _ms_and_nanos(value: dt.datetime) -> tuple[int, int]:
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    seconds = int(aware.timestamp())
    return seconds * 1000 + aware.microsecond // 1000, aware.microsecond * 1000


class TableQuerier:
    """One table's incremental query and its position (JDBC's TimestampIncrementingTableQuerier)."""

    def __init__(self, table: str, settings: dict[str, Any], topic: str, offset: dict[str, Any] | None) -> None:
        self.table = table
        self.mode = settings["mode"]
        self.inc = settings["incrementing.column.name"]
        self.ts = settings["timestamp.column.name"]
        self.delay_ms = settings["timestamp.delay.interval.ms"]
        self.limit = settings["batch.max.rows"]
        self.topic = topic
        self.partition = {"protocol": "1", "table": table}
        offset = offset or {}
        self.last_inc: int | None = offset.get("incrementing")
        self.last_ts: dt.datetime | None = None
        if offset.get("timestamp") is not None:
            micros = int(offset.get("timestamp_nanos", 0)) // 1000
            seconds = int(offset["timestamp"]) // 1000
            self.last_ts = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=micros)
        self.schema: Schema | None = None

    def query(self) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if "timestamp" in self.mode:
            where.append(f"{quote(self.ts)} < now() - %s::interval")
            params.append(f"{self.delay_ms} milliseconds")
        if self.mode == "incrementing" and self.last_inc is not None:
            where.append(f"{quote(self.inc)} > %s")
            params.append(self.last_inc)
        elif self.mode == "timestamp" and self.last_ts is not None:
            where.append(f"{quote(self.ts)} > %s")
            params.append(self.last_ts)
        elif self.mode == "timestamp+incrementing" and self.last_ts is not None:
            where.append(f"({quote(self.ts)} > %s OR ({quote(self.ts)} = %s AND {quote(self.inc)} > %s))")
            params += [self.last_ts, self.last_ts, self.last_inc if self.last_inc is not None else -(2 ** 63)]
        order = {"incrementing": [self.inc], "timestamp": [self.ts],
                 "timestamp+incrementing": [self.ts, self.inc]}.get(self.mode, [])
        sql = f"SELECT * FROM {quote(self.table)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if order:
            sql += " ORDER BY " + ", ".join(quote(c) for c in order) + f" LIMIT {int(self.limit)}"
        return sql, params

    def poll(self, conn: Any) -> list[SourceRecord]:
        sql, params = self.query()
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
            description = cur.description
        conn.commit()
        if self.schema is None:
            _, name = split_table(self.table)
            self.schema = Schema.struct([(col.name, schema_for_oid(col.type_code, _typmod(col))) for col in
                                         description], name=name)
        records = []
        names = [f.name for f in self.schema.fields]
        for row in rows:
            values = {n: connect_value(v, f.schema) for n, v, f in zip(names, row, self.schema.fields, strict=True)}
            offset: dict[str, Any] = {}
            if "incrementing" in self.mode:
                self.last_inc = int(values[self.inc])
                offset["incrementing"] = self.last_inc
            if "timestamp" in self.mode:
                self.last_ts = values[self.ts]
                assert self.last_ts is not None
                offset["timestamp"], offset["timestamp_nanos"] = _ms_and_nanos(self.last_ts)
            records.append(SourceRecord(self.topic, None, None, None, self.schema, Struct(self.schema, values),
                                        source_partition=self.partition if offset else None,
                                        source_offset=offset or None))
        return records


def _typmod(column: Any) -> int:
    precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
    if precision is None or scale is None:
        return -1
    return ((precision << 16) | scale) + 4


class PostgresSourceTask(SourceTask):
    def start(self, props: dict[str, str]) -> None:
        self.settings = CONFIG_DEF.parse(props)
        self.tables = [t for t in props.get("tables", "").split(",") if t]
        self.stopping = threading.Event()
        self.conn = connect(self.settings)
        prefix = self.settings["topic.prefix"]
        if self.settings["mode"] == "cdc":
            from moldau.connect.connectors.postgres.cdc import ChangeCapture

            name = props.get("name", "connector")
            self.cdc: ChangeCapture | None = ChangeCapture(
                self.conn, self.tables, prefix, self.settings["slot.name"] or f"moldau_{name}".replace("-", "_"),
                self.settings["publication.name"] or f"moldau_pub_{name}".replace("-", "_"),
                self.settings["publication.autocreate"], self.settings["batch.max.rows"],
                self.context.offset_storage_reader.offset(ChangeCapture.PARTITION), self.settings,
                self.settings["snapshot.mode"])
            self.queriers: list[TableQuerier] = []
        else:
            self.cdc = None
            self.queriers = [TableQuerier(t, self.settings, prefix + split_table(t)[1],
                                          self.context.offset_storage_reader.offset({"protocol": "1", "table": t}))
                             for t in self.tables]
        self.next_poll = [0.0] * len(self.queriers)

    def poll(self) -> list[SourceRecord] | None:
        if self.cdc is not None:
            records = self.cdc.poll()
            if not records:
                self.stopping.wait(self.settings["poll.interval.ms"] / 1000)
            return records
        records = []
        for i, querier in enumerate(self.queriers):
            if time.monotonic() < self.next_poll[i]:
                continue
            batch = querier.poll(self.conn)
            records += batch
            if len(batch) < querier.limit or querier.mode == "bulk":  # caught up: wait poll.interval.ms
                self.next_poll[i] = time.monotonic() + self.settings["poll.interval.ms"] / 1000
        if not records:
            self.stopping.wait(min(0.2, self.settings["poll.interval.ms"] / 1000))
        return records

    def commit(self) -> None:
        """The worker committed the offsets of everything polled: CDC may now release WAL up to there."""
        if self.cdc is not None:
            self.cdc.acknowledge()

    def stop(self) -> None:
        stopping = getattr(self, "stopping", None)  # stop() may come before start() finished
        if stopping is not None:
            stopping.set()  # poll() returns within its wait; connections close with the task object

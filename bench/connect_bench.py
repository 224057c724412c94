"""Kafka Connect throughput: FileStream and Postgres source/sink, next to Postgres COPY on the same machine.

    python bench/connect_bench.py                 # 100k records of ~100 bytes, ~2-3 min here
    python bench/connect_bench.py --records 20000 --only file

Starts a Moldau broker process and a throwaway Postgres (tests/connect/pg_fixtures.py: Debian's
postgresql, fsync off), runs each connector alone in a standalone worker, and reports records/s and MB/s
from the moment the connector is created until the last record is visible at the other end (the topic's end
offset, the sink file's line count, the table's row count). MB counts payload bytes (line / row text),
not Kafka framing. COPY FROM STDIN of the same rows is the physical limit for the Postgres sink.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* helpers, not copied

import confluent_kafka

from moldau.connect.runtime.standalone import standalone_herder
from tests.connect.connect_fixtures import create_topic
from tests.connect.pg_fixtures import PostgresServer, sql
from tests.fixtures import BrokerProcess

PAYLOAD = "x" * 88  # with the id, ~100-byte lines and rows
WORKER = {"offset.flush.interval.ms": "1000", "producer.linger.ms": "20", "producer.batch.size": "262144"}


PASSED: dict[int, float] = {}  # percent of the records -> when the far end first had that many


def wait_for(progress, n: int, timeout: float, what: str) -> None:
    """Wait until progress() (records at the far end) reaches n, noting when it passed 10% and 90% of n.
    Polls every 0.1 s: the worker runs in this process, and a tighter loop would take the GIL from the
    tasks being measured."""
    deadline = time.monotonic() + timeout
    while True:
        done = progress()
        now = time.monotonic()
        for percent in (10, 90):
            if done * 100 >= n * percent:
                PASSED.setdefault(percent, now)
        if done >= n:
            return
        if now > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what} ({done} of {n})")
        time.sleep(0.1)


class EndOffsets:
    """One consumer reused for every look at a topic's end offsets (creating a client per look costs more
    CPU than the connector being measured)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-end"})

    def __call__(self, topic: str) -> int:
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(self.consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), 10)[1]
                   for p in partitions)

    def close(self) -> None:
        self.consumer.close()


def fill_topic(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes] | None = None) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(topic, value=value, key=keys[i] if keys else None)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def measure(name: str, records: int, payload_bytes: int, run) -> dict:
    """records/s and MB/s from the connector's creation to the last record; `steady_records_per_s` is the
    rate between 10% and 90% of the records (without task start-up, group join, table creation and the
    last offset flush), when the far end was watched often enough to tell. `worker_cpu_us_per_record` is the
    CPU time of this process (the worker's task threads and librdkafka's, plus the light watching) per
    record: unlike the rates, it barely depends on what else the machine is running."""
    PASSED.clear()
    started, cpu_started = time.monotonic(), time.process_time()
    run()
    seconds = time.monotonic() - started
    cpu_us = (time.process_time() - cpu_started) / records * 1e6
    result = {"name": name, "records": records, "seconds": round(seconds, 3),
              "records_per_s": round(records / seconds), "mb_per_s": round(payload_bytes / seconds / 1e6, 2),
              "worker_cpu_us_per_record": round(cpu_us, 1)}
    steady = ""
    if 10 in PASSED and 90 in PASSED and PASSED[90] - PASSED[10] >= 0.5:
        result["steady_records_per_s"] = round(records * 0.8 / (PASSED[90] - PASSED[10]))
        steady = f"  steady {result['steady_records_per_s']:>9,} rec/s"
    print(f"{name:<34} {result['records_per_s']:>9,} rec/s {result['mb_per_s']:>8.2f} MB/s  ({seconds:.1f} s)"
          f"  worker CPU {cpu_us:5.1f} us/rec{steady}", flush=True)
    return result


def bench_file(broker: BrokerProcess, tmp: Path, n: int) -> list[dict]:
    bootstrap = broker.bootstrap_servers
    lines = [f"{i:010d} {PAYLOAD}" for i in range(n)]
    size = sum(len(line) for line in lines)
    source_file, sink_file = tmp / "in.txt", tmp / "out.txt"
    source_file.write_text("\n".join(lines) + "\n")
    topic = create_topic(bootstrap, "bench-file", partitions=1)
    props = {"bootstrap.servers": bootstrap, "key.converter": "org.apache.kafka.connect.storage.StringConverter",
             "value.converter": "org.apache.kafka.connect.storage.StringConverter", **WORKER}
    herder = standalone_herder(props)
    end_offset = EndOffsets(bootstrap)
    results = []
    try:
        def source():
            herder.put_connector_config("file-src", {"connector.class": "FileStreamSource", "file": str(source_file),
                                                     "topic": topic, "batch.size": "5000"}, allow_replace=False)
            wait_for(lambda: end_offset(topic), n, 600, "file source done")
        results.append(measure("FileStream source (file -> topic)", n, size, source))

        def sink():
            herder.put_connector_config("file-sink", {"connector.class": "FileStreamSink", "file": str(sink_file),
                                                      "topics": topic}, allow_replace=False)
            wait_for(lambda: sink_file.exists() and sink_file.stat().st_size * n // (size + n), n, 600,
                     "file sink done")
        results.append(measure("FileStream sink (topic -> file)", n, size, sink))
    finally:
        herder.stop()
        end_offset.close()
    return results


def bench_postgres(broker: BrokerProcess, pg: PostgresServer, n: int) -> list[dict]:
    import psycopg

    bootstrap = broker.bootstrap_servers
    size = n * (10 + len(PAYLOAD))
    results = []
    sql(pg.url, "CREATE TABLE copy_target (id BIGINT PRIMARY KEY, payload TEXT)")

    def copy():
        with psycopg.connect(pg.url) as conn, conn.cursor() as cur, \
                cur.copy("COPY copy_target (id, payload) FROM STDIN") as copy_in:
            for i in range(n):
                copy_in.write_row((i, PAYLOAD))
    results.append(measure("Postgres COPY FROM STDIN (limit)", n, size, copy))

    schema = {"type": "struct", "optional": False, "fields": [
        {"type": "int64", "optional": False, "field": "id"}, {"type": "string", "optional": True, "field": "payload"}]}
    key_schema = {"type": "struct", "optional": False, "fields": [{"type": "int64", "optional": False, "field": "id"}]}
    topic = create_topic(bootstrap, "bench_pg", partitions=3)
    values = [json.dumps({"schema": schema, "payload": {"id": i, "payload": PAYLOAD}}).encode() for i in range(n)]
    keys = [json.dumps({"schema": key_schema, "payload": {"id": i}}).encode() for i in range(n)]
    fill_topic(bootstrap, topic, values, keys)
    herder = standalone_herder({"bootstrap.servers": bootstrap, **WORKER})
    end_offset = EndOffsets(bootstrap)
    db = psycopg.connect(pg.url, autocommit=True)

    def rows_in(table: str) -> int:
        with db.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                return 0
            cur.execute(f"SELECT count(*) FROM {table}")
            return cur.fetchone()[0]

    try:
        for mode, table, tasks in (("insert", "sink_insert", "1"), ("upsert", "sink_upsert", "1"),
                                   ("upsert", "sink_upsert3", "3")):
            def sink(mode=mode, table=table, tasks=tasks):
                herder.put_connector_config(f"pg-sink-{table}", {
                    "connector.class": "PostgresSinkConnector", "connection.url": pg.url, "topics": topic,
                    "table.name.format": table, "insert.mode": mode, "pk.mode": "record_key", "auto.create": "true",
                    "tasks.max": tasks, "consumer.override.max.partition.fetch.bytes": "4194304"},
                    allow_replace=False)
                wait_for(lambda: rows_in(table), n, 900, f"{table} filled")
            results.append(measure(f"Postgres sink {mode}, {tasks} task(s)", n, size, sink))
            herder.delete_connector(f"pg-sink-{table}")

        source_topic = create_topic(bootstrap, "pg-copy_target", partitions=1)

        def source():
            herder.put_connector_config("pg-src", {
                "connector.class": "PostgresSourceConnector", "connection.url": pg.url, "mode": "incrementing",
                "incrementing.column.name": "id", "table.whitelist": "copy_target", "topic.prefix": "pg-",
                "batch.max.rows": "10000", "poll.interval.ms": "100"}, allow_replace=False)
            wait_for(lambda: end_offset(source_topic), n, 900, "postgres source done")
        results.append(measure("Postgres source (incrementing)", n, size, source))
    finally:
        herder.stop()
        end_offset.close()
        db.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--only", default="file,postgres")
    args = parser.parse_args()
    phases = set(args.only.split(","))
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        # The broker in its own process: in-process it would share the worker's GIL and slow both down.
        # group.initial.rebalance.delay.ms=0 as in Kafka's quickstart server.properties: otherwise every sink
        # measurement starts with a fixed 3 s wait for more group members that never come.
        broker = BrokerProcess(Path(tmp) / "broker", num_partitions=1,
                               group_initial_rebalance_delay_ms=0).start()
        try:
            results += run_phases(broker, Path(tmp), phases, args.records)
        finally:
            broker.stop()
    out = Path(__file__).parent / "results" / f"connect-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"records": args.records, "results": results}, indent=2))
    print(f"wrote {out}")


def run_phases(broker: BrokerProcess, tmp: Path, phases: set[str], records: int) -> list[dict]:
    results: list[dict] = []
    if "file" in phases:
        results += bench_file(broker, tmp, records)
    if "postgres" in phases:
        pg = PostgresServer().start()
        try:
            results += bench_postgres(broker, pg, records)
        finally:
            pg.stop()
    return results


if __name__ == "__main__":
    main()

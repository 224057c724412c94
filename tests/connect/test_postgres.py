"""Given a real Postgres and a broker: the Postgres sink writes, upserts, deletes and evolves tables; the source
copies tables incrementally and by change data capture; and a source -> topic -> sink pipeline copies a table
with inserts, updates and deletes exactly."""

from __future__ import annotations

import pytest

from moldau.connect.runtime.standalone import standalone_herder
from tests.connect.connect_fixtures import FAST_WORKER, create_topic, produce, read_topic, wait_until
from tests.connect.pg_fixtures import postgres, sql  # noqa: F401 (fixture)
from tests.fixtures import unique_topic


def herder_for(broker, **extra):
    return standalone_herder({"bootstrap.servers": broker.bootstrap_servers, **FAST_WORKER, **extra})


def envelope(schema_fields, payload, name=None):
    import json

    schema = {"type": "struct", "optional": False, "fields": schema_fields}
    if name:
        schema["name"] = name
    return json.dumps({"schema": schema, "payload": payload}).encode()


KEY_FIELDS = [{"type": "int32", "optional": False, "field": "id"}]
VALUE_FIELDS = [{"type": "int32", "optional": False, "field": "id"}, {"type": "string", "optional": True, "field": "name"}]


def test_sink_upserts_deletes_and_evolves_the_table(broker, postgres, tmp_path):  # noqa: F811
    topic = create_topic(broker.bootstrap_servers, unique_topic("pg_sink").replace("-", "_"))
    def key(i):
        return envelope(KEY_FIELDS, {"id": i})
    produce(broker.bootstrap_servers, topic, [
        (key(1), envelope(VALUE_FIELDS, {"id": 1, "name": "a"})),
        (key(2), envelope(VALUE_FIELDS, {"id": 2, "name": "b"})),
        (key(1), envelope(VALUE_FIELDS, {"id": 1, "name": "a2"})),  # upsert
        (key(2), None),                                               # tombstone: delete
        (key(3), envelope(VALUE_FIELDS + [{"type": "int64", "optional": True, "field": "score"}],
                          {"id": 3, "name": "c", "score": 7})),       # a new optional field: ALTER TABLE
    ])
    herder = herder_for(broker)
    try:
        herder.put_connector_config("pg-sink", {
            "connector.class": "io.moldau.connect.postgres.PostgresSinkConnector", "topics": topic,
            "connection.url": postgres.url, "insert.mode": "upsert", "pk.mode": "record_key",
            "delete.enabled": "true", "auto.create": "true", "auto.evolve": "true"}, allow_replace=False)
        wait_until(lambda: sql(postgres.url, "SELECT count(*) FROM pg_tables WHERE tablename = %s", (topic,))[0][0]
                   and sql(postgres.url, f'SELECT count(*) FROM "{topic}"')[0][0] == 2, what="rows written")
        assert sql(postgres.url, f'SELECT id, name, score FROM "{topic}" ORDER BY id') == [(1, "a2", None),
                                                                                          (3, "c", 7)]
        columns = sql(postgres.url, "SELECT column_name, data_type FROM information_schema.columns WHERE "
                                    "table_name = %s ORDER BY ordinal_position", (topic,))
        assert columns == [("id", "integer"), ("name", "text"), ("score", "bigint")]
        pk = sql(postgres.url, "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                               "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                 (f'"{topic}"',))
        assert pk == [("id",)]
    finally:
        herder.stop()


def test_incremental_query_source_sees_inserts_and_updates(broker, postgres):  # noqa: F811
    table = unique_topic("users").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id SERIAL PRIMARY KEY, name TEXT, balance NUMERIC(10,2), "
                      "updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    sql(postgres.url, f"INSERT INTO {table} (name, balance) VALUES ('a', 1.50), ('b', 2.25)")
    topic = f"pg-{table}"
    create_topic(broker.bootstrap_servers, topic)
    herder = herder_for(broker, **{"value.converter.schemas.enable": "true"})
    try:
        herder.put_connector_config("pg-src", {
            "connector.class": "PostgresSource", "connection.url": f"jdbc:{postgres.url}",
            "mode": "timestamp+incrementing", "incrementing.column.name": "id",
            "timestamp.column.name": "updated_at", "table.whitelist": table, "topic.prefix": "pg-",
            "poll.interval.ms": "100"}, allow_replace=False)
        first = read_topic(broker.bootstrap_servers, topic, 2)
        import json

        payloads = [json.loads(m.value())["payload"] for m in first]
        assert [(p["id"], p["name"]) for p in payloads] == [(1, "a"), (2, "b")]
        schema = json.loads(first[0].value())["schema"]
        balance = next(f for f in schema["fields"] if f["field"] == "balance")
        assert balance["name"] == "org.apache.kafka.connect.data.Decimal" and balance["parameters"] == {"scale": "2"}
        sql(postgres.url, f"UPDATE {table} SET name = 'a2', updated_at = now() WHERE id = 1")
        sql(postgres.url, f"INSERT INTO {table} (name) VALUES ('c')")
        later = read_topic(broker.bootstrap_servers, topic, 4)
        assert [(json.loads(m.value())["payload"]["id"], json.loads(m.value())["payload"]["name"])
                for m in later[2:]] == [(1, "a2"), (3, "c")]
        def committed():
            offsets = herder.connector_offsets("pg-src")["offsets"]
            return offsets and offsets[0]["offset"]["incrementing"] == 3 and offsets
        offsets = wait_until(committed, what="committed offsets up to id 3")
        assert offsets[0]["partition"] == {"protocol": "1", "table": table}
        assert offsets[0]["offset"]["timestamp"] > 1_700_000_000_000 and "timestamp_nanos" in offsets[0]["offset"]
    finally:
        herder.stop()


@pytest.mark.timeout(600)
def test_cdc_pipeline_copies_inserts_updates_and_deletes_exactly(broker, postgres):  # noqa: F811
    source, target = unique_topic("orders").replace("-", "_"), unique_topic("orders_copy").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {source} (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, amount NUMERIC(12,2), "
                      "placed_at TIMESTAMPTZ, note TEXT)")
    topic = f"cdc.{source}"
    create_topic(broker.bootstrap_servers, topic, partitions=3)
    herder = herder_for(broker)
    try:
        herder.put_connector_config("cdc-src", {
            "connector.class": "PostgresSourceConnector", "connection.url": postgres.url, "mode": "cdc",
            "table.whitelist": source, "topic.prefix": "cdc.", "poll.interval.ms": "50"}, allow_replace=False)
        wait_until(lambda: herder.connector_status("cdc-src")["tasks"][:1] and
                   herder.connector_status("cdc-src")["tasks"][0]["state"] == "RUNNING", what="CDC source running")
        herder.put_connector_config("pg-sink", {
            "connector.class": "PostgresSinkConnector", "connection.url": postgres.url, "topics": topic,
            "table.name.format": target, "insert.mode": "upsert", "pk.mode": "record_key", "delete.enabled": "true",
            "auto.create": "true", "tasks.max": "3"}, allow_replace=False)
        rows = 100_000
        sql(postgres.url, f"INSERT INTO {source} SELECT g, 'customer-' || (g % 977), (g * 1.25)::numeric(12,2), "
                          f"'2024-01-01'::timestamptz + g * interval '1 second', NULL FROM generate_series(1, {rows}) g")
        sql(postgres.url, f"UPDATE {source} SET amount = amount + 1, note = 'updated' WHERE id % 10 = 0")
        sql(postgres.url, f"DELETE FROM {source} WHERE id % 7 = 0")
        sql(postgres.url, f"UPDATE {source} SET id = id + 1000000 WHERE id BETWEEN 50001 AND 50010")  # key change
        sql(postgres.url, f"INSERT INTO {source} VALUES (7, 'back', 1, '2024-06-01 12:00:00.123+00', 're-inserted')")
        expected = sql(postgres.url, f"SELECT count(*), sum(amount), md5(string_agg(t::text, ',' ORDER BY id)) "
                                     f"FROM {source} t")

        def copied():
            got = sql(postgres.url, "SELECT to_regclass(%s) IS NOT NULL", (target,))[0][0] and sql(
                postgres.url, f"SELECT count(*), sum(amount), md5(string_agg(t::text, ',' ORDER BY id)) FROM {target} t")
            return got == expected

        wait_until(copied, 400, "the copy to equal the source")  # Connect timestamps carry milliseconds
        assert expected[0][0] == rows - rows // 7 + 1
    finally:
        herder.stop()

"""The issue's end-to-end scenario: a real Postgres, a broker and two distributed Connect workers with
exactly-once sources. A CDC source -> topic -> Postgres sink pipeline copies 100k rows with updates and
deletes (about 124k changes); the worker running the source task is killed mid-stream; its work moves to the
other worker, which resumes from the committed offsets: the copy ends up equal to the source, and the topic
holds every change exactly once."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.connect.connect_fixtures import (
    WorkerProcess,
    create_topic,
    distributed_props,
    read_to_end,
    rest,
    wait_until,
)
from tests.connect.pg_fixtures import postgres, sql  # noqa: F401 (fixture)
from tests.fixtures import unique_topic

# The 100k rows, in 20 transactions: the stream is still flowing at the kill.
ROWS, CHUNK = 100_000, 5_000
CHECKSUM = "SELECT count(*), sum(amount), md5(string_agg(t::text, ',' ORDER BY id)) FROM {} t"


def task_owner(url, name):
    status, body = rest(url, "GET", f"/connectors/{name}/status")
    if status != 200 or not body["tasks"] or body["tasks"][0]["state"] != "RUNNING":
        return None
    return body["tasks"][0]["worker_id"]


@pytest.mark.timeout(900)
def test_cdc_pipeline_survives_a_killed_worker_exactly_once(group_broker, postgres, tmp_path):  # noqa: F811
    source, target = unique_topic("accounts").replace("-", "_"), unique_topic("accounts_copy").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {source} (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, amount NUMERIC(12,2))")
    topic = create_topic(group_broker.bootstrap_servers, f"cdc.{source}", partitions=3)
    props = {**distributed_props(group_broker.bootstrap_servers, unique_topic("pipeline")),
             "exactly.once.source.support": "enabled", "offset.flush.interval.ms": "500",
             "key.converter": "org.apache.kafka.connect.json.JsonConverter",
             "value.converter": "org.apache.kafka.connect.json.JsonConverter"}
    workers = [WorkerProcess(tmp_path, f"w{i}", props).start() for i in range(2)]
    try:
        url = workers[0].url
        assert rest(url, "POST", "/connectors", {"name": "cdc", "config": {
            "connector.class": "PostgresSourceConnector", "connection.url": postgres.url, "mode": "cdc",
            "table.whitelist": source, "topic.prefix": "cdc.", "poll.interval.ms": "50"}})[0] == 201
        wait_until(lambda: task_owner(url, "cdc"), 60, "CDC source running")
        assert rest(workers[1].url, "POST", "/connectors", {"name": "sink", "config": {
            "connector.class": "PostgresSinkConnector", "connection.url": postgres.url, "topics": topic,
            "table.name.format": target, "insert.mode": "upsert", "pk.mode": "record_key", "delete.enabled": "true",
            "auto.create": "true", "tasks.max": "2"}})[0] == 201

        changes = 0
        for start in range(1, ROWS + 1, CHUNK):  # the stream is still flowing at the kill
            sql(postgres.url, f"INSERT INTO {source} SELECT g, 'owner-' || (g % 101), g * 0.5 "
                              f"FROM generate_series({start}, {start + CHUNK - 1}) g")
            changes += CHUNK
            if start == 1 + 4 * CHUNK:
                wait_until(lambda: sql(postgres.url, "SELECT to_regclass(%s) IS NOT NULL", (target,))[0][0] and
                           sql(postgres.url, f"SELECT count(*) FROM {target}")[0][0] > 0, 120, "rows arriving")
                owner_id = wait_until(lambda: task_owner(url, "cdc"), 60, "the source task's current owner")
                victim = next(w for w in workers if w.worker_id == owner_id)
                victim.kill()
                survivor = next(w for w in workers if w is not victim)
        changes += sql(postgres.url, f"WITH u AS (UPDATE {source} SET amount = amount + 1 WHERE id % 10 = 0 "
                                     "RETURNING 1) SELECT count(*) FROM u")[0][0]
        changes += sql(postgres.url, f"WITH d AS (DELETE FROM {source} WHERE id % 7 = 0 RETURNING 1) "
                                     "SELECT count(*) FROM d")[0][0]
        expected = sql(postgres.url, CHECKSUM.format(source))
        wait_until(lambda: task_owner(survivor.url, "cdc") == survivor.worker_id, 120, "source moved")
        try:
            wait_until(lambda: sql(postgres.url, CHECKSUM.format(target)) == expected, 400, "copy equals source")
        except TimeoutError:
            states = {n: rest(survivor.url, "GET", f"/connectors/{n}/status")[1] for n in ("cdc", "sink")}
            rows = sql(postgres.url, f"SELECT count(*) FROM {target}")
            raise AssertionError(f"copy differs: {rows} rows of {expected}; statuses {states}; "
                                 f"{survivor.log_path.read_text()[-3000:]}") from None

        # Exactly once: every change is in the topic once (read_committed), none lost, none duplicated. The copy
        # is complete, so every change is in the topic already: read each partition to its end.
        messages = read_to_end(group_broker.bootstrap_servers, topic)
        assert len(messages) == changes
        # A change written twice would be the same key and value bytes twice (the converter is deterministic).
        events = Counter((m.partition(), m.key(), m.value()) for m in messages)
        assert max(events.values()) == 1
        assert {json.loads(m.key())["payload"]["id"] for m in messages if m.value() is None} == \
            {i for i in range(1, ROWS + 1) if i % 7 == 0}  # every delete is a tombstone
    finally:
        for worker in workers:
            worker.stop()

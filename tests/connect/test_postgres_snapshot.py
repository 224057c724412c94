"""The CDC source's initial snapshot (snapshot.mode=initial): rows present before the connector started are
emitted first, then the changes made while and after it ran, with no gap and no duplicate; and a restart
before the snapshot finished takes it again."""

from __future__ import annotations

import json
import threading

import pytest

from moldau.connect.runtime.standalone import standalone_herder
from tests.connect.connect_fixtures import FAST_WORKER, create_topic, read_topic, wait_until
from tests.connect.pg_fixtures import postgres, sql  # noqa: F401 (fixture)
from tests.fixtures import unique_topic

ROWS = 20_000  # 20 snapshot batches of 1000: the changes below run while the snapshot is still being read
JSON_NO_SCHEMAS = {"key.converter": "org.apache.kafka.connect.json.JsonConverter",
                   "key.converter.schemas.enable": "false",
                   "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                   "value.converter.schemas.enable": "false"}


def fold(messages) -> dict[int, dict]:
    """The table a compacted topic stands for: the last value per key (partition order is key order)."""
    state: dict[int, dict] = {}
    for m in messages:
        key = json.loads(m.key())["id"]
        if m.value() is None:
            state.pop(key, None)
        else:
            state[key] = json.loads(m.value())
    return state


@pytest.mark.timeout(300)
def test_initial_snapshot_then_streaming_without_gap_or_duplicate(broker, postgres):  # noqa: F811
    table = unique_topic("snap").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score BIGINT)")
    sql(postgres.url, f"INSERT INTO {table} SELECT g, 'before-' || g, g * 2 FROM generate_series(1, {ROWS}) g")
    topic = create_topic(broker.bootstrap_servers, f"snap.{table}", partitions=3)
    herder = standalone_herder({"bootstrap.servers": broker.bootstrap_servers, **FAST_WORKER, **JSON_NO_SCHEMAS})
    changes = 0
    try:
        herder.put_connector_config("snap-src", {
            "connector.class": "PostgresSourceConnector", "connection.url": postgres.url, "mode": "cdc",
            "table.whitelist": table, "topic.prefix": "snap.", "poll.interval.ms": "50"}, allow_replace=False)
        # The first snapshot record means the slot and its snapshot exist: every change from here on is
        # after the snapshot, so it must arrive as its own record (exactly once), not inside the snapshot.
        assert read_topic(broker.bootstrap_servers, topic, 1)

        def change() -> None:
            nonlocal changes
            for i in range(1, 301):  # one statement, one transaction, one record each
                if i % 3 == 0:
                    sql(postgres.url, f"DELETE FROM {table} WHERE id = %s", (i * 50,))
                elif i % 3 == 1:
                    sql(postgres.url, f"UPDATE {table} SET name = 'during-' || id WHERE id = %s", (i * 50,))
                else:
                    sql(postgres.url, f"INSERT INTO {table} VALUES (%s, 'new', 1)", (ROWS + i,))
                changes += 1

        writer = threading.Thread(target=change)
        writer.start()
        writer.join(120)
        assert not writer.is_alive() and changes == 300
        sql(postgres.url, f"UPDATE {table} SET score = score + 1, name = 'after' WHERE id = 1")  # after: streaming only
        expected = {r[0]: {"id": r[0], "name": r[1], "score": r[2]}
                    for r in sql(postgres.url, f"SELECT id, name, score FROM {table}")}
        messages = read_topic(broker.bootstrap_servers, topic, ROWS + 301, timeout=180)
        assert len(messages) == ROWS + 301  # each pre-existing row once, then each change once
        snapshot_keys = [json.loads(m.key())["id"] for m in messages if m.value() is not None
                         and json.loads(m.value())["name"].startswith("before-")]
        assert len(snapshot_keys) == len(set(snapshot_keys))
        assert fold(messages) == expected and expected[1]["score"] == 3
        offsets = wait_until(lambda: [o for o in herder.connector_offsets("snap-src")["offsets"]
                                      if o["offset"].get("lsn", 0) > 0], 30, "a streaming offset committed")
        assert "snapshot" not in offsets[0]["offset"]
    finally:
        herder.stop()


def test_a_restart_before_the_snapshot_finished_takes_it_again(postgres):  # noqa: F811
    import psycopg

    from moldau.connect.connectors.postgres.cdc import ChangeCapture

    table = unique_topic("resnap").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
    sql(postgres.url, f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    slot, publication, settings = f"s_{table}", f"p_{table}", {"connection.url": postgres.url}

    def capture(offset):
        return ChangeCapture(psycopg.connect(postgres.url), [table], "x.", slot, publication, True, 100, offset,
                             settings, "initial")

    first = capture(None)
    records = first.poll()
    assert [r.key.get("id") for r in records] == [1, 2, 3] and first.snapshot is None
    assert [r.source_offset["last_snapshot_record"] for r in records] == [False, False, True]
    first.conn.close()
    sql(postgres.url, f"INSERT INTO {table} VALUES (4, 'd')")
    # The task died before the last snapshot record's offset was committed: the tables are read again (now with
    # row 4), then the slot, never advanced, replays everything after the first snapshot: at least once.
    again = capture({"lsn": 0, "snapshot": True, "last_snapshot_record": False})
    assert [r.key.get("id") for r in again.poll()] == [1, 2, 3, 4]
    replayed = wait_until(again.poll, 30, "the slot replayed")
    assert [(r.key.get("id"), r.source_offset["lsn"] > 0) for r in replayed] == [(4, True)]
    again.conn.close()
    # After a completed snapshot only streaming remains.
    done = capture({"lsn": 0, "snapshot": True, "last_snapshot_record": True})
    sql(postgres.url, f"UPDATE {table} SET name = 'b2' WHERE id = 2")
    streamed: list = []

    def update_streamed() -> bool:
        streamed.extend(done.poll())
        return any(r.value is not None and r.value.get("name") == "b2" for r in streamed)

    wait_until(update_streamed, 30, "the update streamed")  # from the slot's unacknowledged start
    assert [(r.key.get("id"), r.value.get("name")) for r in streamed] == [(4, "d"), (2, "b2")]
    assert streamed[0].source_offset["lsn"] > 0 and "snapshot" not in streamed[0].source_offset
    done.conn.close()
    sql(postgres.url, "SELECT pg_drop_replication_slot(%s)", (slot,))

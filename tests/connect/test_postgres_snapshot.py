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


def change_capture(url: str, table: str, offset):
    """The CDC source's reader of `table`, through slot `s_<table>` and publication `p_<table>`."""
    import psycopg

    from moldau.connect.connectors.postgres.cdc import ChangeCapture

    return ChangeCapture(psycopg.connect(url), [table], "x.", f"s_{table}", f"p_{table}", True, 100, offset,
                         {"connection.url": url}, "initial")


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
    table = unique_topic("resnap").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
    sql(postgres.url, f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')")

    def capture(offset):
        return change_capture(postgres.url, table, offset)

    first = capture(None)
    records = first.poll()
    assert [r.key.get("id") for r in records] == [1, 2, 3] and first.snapshot is None
    assert [r.source_offset["last_snapshot_record"] for r in records] == [False, False, True]
    first.conn.close()
    sql(postgres.url, f"INSERT INTO {table} VALUES (4, 'd')")
    sql(postgres.url, f"DELETE FROM {table} WHERE id = 3")
    # The task died before the last snapshot record's offset was committed: the tables are read again in a fresh
    # exported snapshot; the slot, never advanced, holds the changes since the first one. Their deletes come
    # first (row 3 may be in Kafka from the first attempt), their upserts are in the new snapshot (row 4).
    again = capture({"lsn": 0, "snapshot": True, "last_snapshot_record": False})
    records = again.poll()
    assert [(r.key.get("id"), r.value is None) for r in records] == [(3, True), (1, False), (2, False), (4, False)]
    assert records[-1].source_offset["last_snapshot_record"] and records[-1].source_offset["lsn"] > 0
    assert again.poll() == []  # the insert and the delete are not streamed a second time
    again.conn.close()
    # After a completed snapshot only streaming remains, after the transactions the snapshot covered.
    done = capture(records[-1].source_offset)
    sql(postgres.url, f"UPDATE {table} SET name = 'b2' WHERE id = 2")
    streamed: list = []

    def update_streamed() -> bool:
        streamed.extend(done.poll())
        return any(r.value is not None and r.value.get("name") == "b2" for r in streamed)

    wait_until(update_streamed, 30, "the update streamed")
    assert [(r.key.get("id"), r.value.get("name")) for r in streamed] == [(2, "b2")]
    assert streamed[0].source_offset["lsn"] > 0 and "snapshot" not in streamed[0].source_offset
    done.conn.close()
    sql(postgres.url, "SELECT pg_drop_replication_slot(%s)", (f"s_{table}",))


def test_a_slot_without_any_committed_offset_is_snapshotted(postgres):  # noqa: F811
    """The task created the slot and died before its first offset was committed: no offset, but a slot. The rows
    are read again (the old code only streamed, losing them), the deletes the slot holds come first, and the
    changes the new snapshot covers are not streamed again."""
    table = unique_topic("noofs").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
    sql(postgres.url, f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')")

    def capture(offset):
        return change_capture(postgres.url, table, offset)

    first = capture(None)  # the slot exists from here on; nothing is polled or committed
    first.snapshot.close()
    first.conn.close()
    sql(postgres.url, f"UPDATE {table} SET name = 'a2' WHERE id = 1")
    sql(postgres.url, f"DELETE FROM {table} WHERE id = 2")
    sql(postgres.url, f"INSERT INTO {table} VALUES (2, 'b2')")  # deleted and re-inserted: the row stays
    sql(postgres.url, f"DELETE FROM {table} WHERE id = 3")
    sql(postgres.url, f"INSERT INTO {table} VALUES (4, 'd')")
    again = capture(None)
    records = again.poll()
    assert again.snapshot is None
    assert [(r.key.get("id"), r.value) for r in records[:2]] == [(2, None), (3, None)]
    assert sorted((r.key.get("id"), r.value.get("name")) for r in records[2:]) == [(1, "a2"), (2, "b2"), (4, "d")]
    assert records[-1].source_offset["last_snapshot_record"] and records[-1].source_offset["lsn"] > 0
    assert again.poll() == []
    sql(postgres.url, f"UPDATE {table} SET name = 'd2' WHERE id = 4")
    streamed = wait_until(again.poll, 30, "the update streamed")
    assert [(r.key.get("id"), r.value.get("name")) for r in streamed] == [(4, "d2")]
    again.conn.close()
    sql(postgres.url, "SELECT pg_drop_replication_slot(%s)", (f"s_{table}",))


def test_a_slot_created_on_empty_tables_streams_every_change_from_its_start(postgres):  # noqa: F811
    """No committed offset, but the tables were empty when the slot was created (the first snapshot had nothing
    to commit): the slot holds every row's whole history, so it streams it change by change, no snapshot."""
    table = unique_topic("emptyslot").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")

    def capture(offset):
        return change_capture(postgres.url, table, offset)

    first = capture(None)
    assert first.poll() == [] and first.snapshot is None  # an empty snapshot: no record, so no offset
    first.conn.close()
    sql(postgres.url, f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')")
    sql(postgres.url, f"UPDATE {table} SET name = 'a2' WHERE id = 1")
    sql(postgres.url, f"DELETE FROM {table} WHERE id = 2")
    again = capture(None)
    assert again.snapshot is None
    records = again.poll()
    assert [(r.key.get("id"), None if r.value is None else r.value.get("name")) for r in records] == [
        (1, "a"), (2, "b"), (1, "a2"), (2, None)]
    assert all(r.source_offset["lsn"] > 0 and "snapshot" not in r.source_offset for r in records)
    again.conn.close()
    sql(postgres.url, "SELECT pg_drop_replication_slot(%s)", (f"s_{table}",))


@pytest.mark.timeout(300)
def test_a_worker_killed_between_slot_creation_and_first_commit_loses_no_row(group_broker, postgres, tmp_path,  # noqa: F811
                                                                             monkeypatch):
    """A real worker (exactly-once source) creates the slot, then is held there by a test-only hook and SIGKILLed
    before it committed anything. A new worker snapshots again: every pre-existing row, the changes made while
    the first one was down and the later ones each arrive once."""
    from collections import Counter

    from moldau.connect.connectors.postgres.cdc import HOLD_AFTER_SLOT_ENV
    from tests.connect.connect_fixtures import WorkerProcess, distributed_props, rest
    from tests.connect.test_pipeline_failover import task_owner

    rows = 2000
    table = unique_topic("killsnap").replace("-", "_")
    sql(postgres.url, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
    sql(postgres.url, f"INSERT INTO {table} SELECT g, 'before-' || g FROM generate_series(1, {rows}) g")
    topic = create_topic(group_broker.bootstrap_servers, f"ks.{table}", partitions=3)
    props = {**distributed_props(group_broker.bootstrap_servers, unique_topic("killsnap")),
             "exactly.once.source.support": "enabled", "offset.flush.interval.ms": "500", **JSON_NO_SCHEMAS}
    hold = tmp_path / "held"
    monkeypatch.setenv(HOLD_AFTER_SLOT_ENV, str(hold))
    first = WorkerProcess(tmp_path, "w1", props).start()
    monkeypatch.delenv(HOLD_AFTER_SLOT_ENV)
    second = None
    slot = f"moldau_{table}"
    try:
        assert rest(first.url, "POST", "/connectors", {"name": table, "config": {
            "connector.class": "PostgresSourceConnector", "connection.url": postgres.url, "mode": "cdc",
            "table.whitelist": table, "topic.prefix": "ks.", "poll.interval.ms": "50"}})[0] == 201
        wait_until(hold.exists, 60, "the task to hold after creating the slot")
        assert sql(postgres.url, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)) == [(1,)]
        # While the first worker is stuck (then dead): changes only the slot and the next snapshot can see.
        sql(postgres.url, f"UPDATE {table} SET name = 'down-' || id WHERE id <= 10")
        sql(postgres.url, f"DELETE FROM {table} WHERE id BETWEEN 11 AND 20")
        sql(postgres.url, f"INSERT INTO {table} VALUES (15, 'again-15')")
        first.kill()
        assert read_topic(group_broker.bootstrap_servers, topic, 1, timeout=2) == []  # nothing was committed
        second = WorkerProcess(tmp_path, "w2", props).start()
        wait_until(lambda: task_owner(second.url, table) == second.worker_id, 120, "the task on the new worker")
        sql(postgres.url, f"UPDATE {table} SET name = 'after-' || id WHERE id IN (1, 100)")
        sql(postgres.url, f"DELETE FROM {table} WHERE id = 200")
        sql(postgres.url, f"INSERT INTO {table} VALUES ({rows + 1}, 'after-new')")
        expected = {r[0]: {"id": r[0], "name": r[1]} for r in sql(postgres.url, f"SELECT id, name FROM {table}")}
        # 10 tombstones (the deletes the slot held), the snapshot (rows - 10 + 1 rows), then 4 changes
        total = 10 + (rows - 9) + 4
        messages = read_topic(group_broker.bootstrap_servers, topic, total, timeout=120)
        assert len(messages) == total, second.log_path.read_text()[-3000:]
        assert fold(messages) == expected
        events = Counter((m.key(), m.value()) for m in messages)
        assert max(events.values()) == 1  # exactly once: no record twice
        assert read_topic(group_broker.bootstrap_servers, topic, total + 1, timeout=5)[total:] == []
    finally:
        first.kill()
        if second is not None:
            second.stop()
        rest_status = sql(postgres.url, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s "
                          "AND NOT active", (slot,))
        if rest_status == [(1,)]:
            sql(postgres.url, "SELECT pg_drop_replication_slot(%s)", (slot,))

"""Given a broker and a standalone worker, FileStream source -> topic -> FileStream sink copies a file."""

from __future__ import annotations

import json

from moldau.connect.runtime.standalone import standalone_herder
from moldau.connect.runtime.status import TargetState
from tests.connect.connect_fixtures import FAST_WORKER, create_topic, lines_of, read_topic, wait_until
from tests.fixtures import unique_topic


def worker_props(broker, tmp_path, **extra):
    return {"bootstrap.servers": broker.bootstrap_servers,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "offset.storage.file.filename": str(tmp_path / "offsets.json"), **FAST_WORKER, **extra}



def test_file_source_to_topic_to_file_sink(broker, tmp_path):
    topic = create_topic(broker.bootstrap_servers, unique_topic("file"))  # one partition: file order kept
    source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
    source_file.write_text("".join(f"line {i}\n" for i in range(100)))
    herder = standalone_herder(worker_props(broker, tmp_path), worker_id="w1:8083")
    try:
        created, info = herder.put_connector_config("local-file-source", {
            "connector.class": "FileStreamSource", "tasks.max": "1", "file": str(source_file), "topic": topic},
            allow_replace=False)
        assert created and info["type"] == "source" and info["tasks"] == [{"connector": "local-file-source",
                                                                           "task": 0}]
        herder.put_connector_config("local-file-sink", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "tasks.max": "1",
            "file": str(sink_file), "topics": topic,
            # The Java consumer's setting: small puts, every record still delivered once, in order.
            "consumer.override.max.poll.records": "7"}, allow_replace=False)
        wait_until(lambda: len(lines_of(sink_file)) == 100, what="100 lines in the sink file")
        assert lines_of(sink_file) == [f"line {i}" for i in range(100)]

        # Lines appended later flow too, and the records in the topic are the lines as strings.
        with source_file.open("a") as out:
            out.write("late line\n")
        wait_until(lambda: len(lines_of(sink_file)) == 101, what="the appended line")
        assert [m.value() for m in read_topic(broker.bootstrap_servers, topic, 101)][-1] == b"late line"

        status = herder.connector_status("local-file-source")
        assert status["connector"]["state"] == "RUNNING" and status["tasks"][0]["state"] == "RUNNING"
        assert status["connector"]["worker_id"] == "w1:8083"
    finally:
        herder.stop()
    offsets = json.loads((tmp_path / "offsets.json").read_text())
    assert list(offsets.values()) == [{"position": source_file.stat().st_size}]


def test_source_resumes_from_committed_offset_after_restart(broker, tmp_path):
    topic = create_topic(broker.bootstrap_servers, unique_topic("file-resume"))
    source_file = tmp_path / "in.txt"
    source_file.write_text("".join(f"a{i}\n" for i in range(10)))
    config = {"connector.class": "FileStreamSource", "file": str(source_file), "topic": topic}
    herder = standalone_herder(worker_props(broker, tmp_path))
    try:
        herder.put_connector_config("src", config, allow_replace=False)
        wait_until(lambda: len(read_topic(broker.bootstrap_servers, topic, 10, timeout=5)) == 10, what="10 records")
    finally:
        herder.stop()
    with source_file.open("a") as out:
        out.write("".join(f"b{i}\n" for i in range(5)))
    herder = standalone_herder(worker_props(broker, tmp_path))  # same offsets file: a restarted worker
    try:
        herder.put_connector_config("src", config, allow_replace=False)
        wait_until(lambda: len(read_topic(broker.bootstrap_servers, topic, 15, timeout=5)) == 15, what="15 records")
    finally:
        herder.stop()
    values = [m.value().decode() for m in read_topic(broker.bootstrap_servers, topic, 16, timeout=3)]
    assert values == [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(5)]  # no duplicates


def test_pause_resume_and_stop_change_status(broker, tmp_path):
    topic = unique_topic("file-pause")
    source_file = tmp_path / "in.txt"
    source_file.write_text("x\n")
    herder = standalone_herder(worker_props(broker, tmp_path))
    try:
        herder.put_connector_config("src", {"connector.class": "FileStreamSource", "file": str(source_file),
                                            "topic": topic}, allow_replace=False)
        wait_until(lambda: herder.connector_status("src")["tasks"][0]["state"] == "RUNNING", what="RUNNING")
        herder.set_target_state("src", TargetState.PAUSED)
        status = herder.connector_status("src")
        assert status["connector"]["state"] == "PAUSED" and status["tasks"][0]["state"] == "PAUSED"
        herder.set_target_state("src", TargetState.STOPPED)
        status = herder.connector_status("src")
        assert status["connector"]["state"] == "STOPPED" and status["tasks"] == []
        herder.set_target_state("src", TargetState.STARTED)
        wait_until(lambda: herder.connector_status("src")["tasks"][:1] and
                   herder.connector_status("src")["tasks"][0]["state"] == "RUNNING", what="RUNNING again")
    finally:
        herder.stop()

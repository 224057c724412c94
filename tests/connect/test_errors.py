"""Error handling (KIP-298): retries of retriable failures, errors.tolerance, and a dead letter queue whose
records carry the error context in `__connect.errors.*` headers."""

from __future__ import annotations

import json
import threading

import confluent_kafka

from moldau.connect.api.connector import SinkTask
from moldau.connect.api.errors import RetriableException
from moldau.connect.converters.simple import StringConverter
from moldau.connect.runtime.errors import RetryWithToleranceOperator
from moldau.connect.runtime.sink_task import WorkerSinkTask, consumer_group_id
from moldau.connect.runtime.standalone import standalone_herder
from moldau.connect.runtime.transformation_chain import TransformationChain
from moldau.connect.runtime.worker_task import ConnectorTaskId, TaskPlumbing
from moldau.connect.transforms.base import Transformation
from tests.connect.connect_fixtures import (
    FAST_WORKER,
    create_topic,
    lines_of,
    produce,
    read_topic,
    wait_until,
)
from tests.fixtures import unique_topic

FLAKY_FAILURES: dict[str, int] = {}


class FlakyTransform(Transformation):
    """Fails twice per record with a retriable error, then passes the record on."""

    def apply(self, record):
        key = f"{record.topic}/{record.kafka_offset}"
        FLAKY_FAILURES[key] = FLAKY_FAILURES.get(key, 0) + 1
        if FLAKY_FAILURES[key] <= 2:
            raise RetriableException("not yet")
        return record


def herder_for(broker, tmp_path):
    return standalone_herder({"bootstrap.servers": broker.bootstrap_servers,
                              "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                              "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                              "value.converter.schemas.enable": "false", **FAST_WORKER}, worker_id="w:1")



def test_bad_records_go_to_the_dlq_with_context_headers(broker, tmp_path):
    topic = create_topic(broker.bootstrap_servers, unique_topic("dlq-in"))
    dlq = unique_topic("dlq")
    produce(broker.bootstrap_servers, topic, [(b"k1", b'{"n": 1}'), (b"k2", b"{broken"), (b"k3", b'{"n": 3}')])
    out = tmp_path / "out.txt"
    herder = herder_for(broker, tmp_path)
    try:
        herder.put_connector_config("snk", {
            "connector.class": "FileStreamSink", "file": str(out), "topics": topic,
            "errors.tolerance": "all", "errors.log.enable": "true",
            "errors.deadletterqueue.topic.name": dlq, "errors.deadletterqueue.topic.replication.factor": "1",
            "errors.deadletterqueue.context.headers.enable": "true",
            "transforms": "flaky", "transforms.flaky.type": "tests.connect.test_errors.FlakyTransform",
            "errors.retry.timeout": "30000", "errors.retry.delay.max.ms": "50"}, allow_replace=False)
        wait_until(lambda: len(lines_of(out)) == 2, what="the two good records")
        assert lines_of(out) == ["{'n': 1}", "{'n': 3}"]  # retried past the RetriableExceptions
        [dead] = read_topic(broker.bootstrap_servers, dlq, 1)
        assert (dead.key(), dead.value()) == (b"k2", b"{broken")  # the original bytes, unchanged
        headers = {k: v.decode() for k, v in dead.headers()}
        assert headers["__connect.errors.topic"] == topic
        assert headers["__connect.errors.partition"] == "0" and headers["__connect.errors.offset"] == "1"
        assert headers["__connect.errors.connector.name"] == "snk" and headers["__connect.errors.task.id"] == "0"
        assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
        assert headers["__connect.errors.class.name"] == "JsonConverter"
        assert "DataException" in headers["__connect.errors.exception.class.name"]
        assert "serialization error" in headers["__connect.errors.exception.message"]
        assert "Traceback" in headers["__connect.errors.exception.stacktrace"]
        assert herder.connector_status("snk")["tasks"][0]["state"] == "RUNNING"
    finally:
        herder.stop()


def test_tolerance_none_fails_the_task_with_a_trace(broker, tmp_path):
    topic = create_topic(broker.bootstrap_servers, unique_topic("strict"))
    produce(broker.bootstrap_servers, topic, [(None, b"not json")])
    herder = herder_for(broker, tmp_path)
    try:
        herder.put_connector_config("strict", {"connector.class": "FileStreamSink", "file": str(tmp_path / "o"),
                                               "topics": topic}, allow_replace=False)
        status = wait_until(lambda: (s := herder.connector_status("strict"))["tasks"][0]["state"] == "FAILED" and s,
                            what="task FAILED")
        assert "Tolerance exceeded in error handler" in status["tasks"][0]["trace"]
        assert status["connector"]["state"] == "RUNNING"  # the task failed, not the connector
        # KIP-745: restarting only the failed tasks re-runs them (and they fail again on the same record).
        accepted = herder.restart_connector("strict", include_tasks=True, only_failed=True)
        assert accepted["tasks"][0]["state"] == "RESTARTING" and accepted["connector"]["state"] == "RUNNING"
        wait_until(lambda: herder.connector_status("strict")["tasks"][0]["state"] == "FAILED", what="FAILED again")
    finally:
        herder.stop()
    assert json.loads(json.dumps(status))  # the status body is plain JSON


class RefusingSinkTask(SinkTask):
    """A sink whose database is away: every non-empty put() fails with a retriable error."""

    def start(self, props):
        self.refused = threading.Event()

    def put(self, records):
        if records:
            self.refused.set()
            raise RetriableException("database unavailable")

    def stop(self):
        pass


def test_a_sink_stopped_while_put_is_retried_does_not_commit_the_batch(group_broker):
    """Kafka's WorkerSinkTask counts a batch as consumed only once put() took it: a task stopped while its
    put() keeps failing (a rebalance, a shutdown) must not commit the batch's offsets, or it is lost."""
    bootstrap = group_broker.bootstrap_servers
    topic = create_topic(bootstrap, unique_topic("refused"))
    produce(bootstrap, topic, [(None, b"a"), (None, b"b")])
    converter = StringConverter()
    converter.configure({}, False)
    plumbing = TaskPlumbing(converter, converter, converter, TransformationChain([]), RetryWithToleranceOperator(),
                            {"topics": topic}, {})
    sink = RefusingSinkTask()
    task = WorkerSinkTask(ConnectorTaskId("refusing", 0), sink, plumbing, lambda state, trace: None,
                          {"bootstrap.servers": bootstrap}, flush_interval_ms=100)
    task.start()
    try:
        wait_until(lambda: getattr(sink, "refused", None) and sink.refused.is_set(), 60, "put() refused")
    finally:
        task.stop()
        assert task.await_stop(30)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": consumer_group_id("refusing")})
    try:
        committed = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset < 0  # nothing committed: the two records are delivered again on restart

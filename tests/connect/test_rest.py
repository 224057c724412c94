"""Kafka Connect's REST API: paths, bodies, status codes and error shapes as in Kafka's Connect REST docs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moldau.connect.server import ConnectServer
from tests.connect.connect_fixtures import FAST_WORKER, create_topic, rest, wait_until
from tests.fixtures import unique_topic


@pytest.fixture
def server(broker, tmp_path):
    props = {"bootstrap.servers": broker.bootstrap_servers, "listeners": "http://127.0.0.1:0",
             "offset.storage.file.filename": str(tmp_path / "offsets.json"),
             "key.converter": "org.apache.kafka.connect.storage.StringConverter",
             "value.converter": "org.apache.kafka.connect.storage.StringConverter", **FAST_WORKER}
    with ConnectServer(props) as running:
        yield running


def source_config(tmp_path, topic, **extra):
    path = tmp_path / "in.txt"
    if not path.exists():
        path.write_text("one\ntwo\n")
    return {"connector.class": "FileStreamSource", "tasks.max": "1", "file": str(path), "topic": topic, **extra}


def task_state(url, name):
    status, body = rest(url, "GET", f"/connectors/{name}/status")
    return status == 200 and body["tasks"] and body["tasks"][0]["state"]


def test_root_and_plugins(server, broker):
    status, body = rest(server.rest_url, "GET", "/")
    assert status == 200 and body["version"] and body["kafka_cluster_id"]
    status, plugins = rest(server.rest_url, "GET", "/connector-plugins")
    assert status == 200
    assert {"class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "type": "sink",
            "version": plugins[0]["version"]} in plugins
    _, everything = rest(server.rest_url, "GET", "/connector-plugins?connectorsOnly=false")
    assert {"class": "org.apache.kafka.connect.transforms.InsertField$Value", "type": "transformation",
            "version": everything[0]["version"]} in everything
    status, definitions = rest(server.rest_url, "GET", "/connector-plugins/FileStreamSource/config")
    assert status == 200 and {d["name"] for d in definitions} == {"file", "topic", "batch.size"}


def test_connector_lifecycle(server, broker, tmp_path):
    url, topic = server.rest_url, unique_topic("rest")
    status, info = rest(url, "POST", "/connectors", {"name": "src", "config": source_config(tmp_path, topic)})
    assert status == 201
    assert info == {"name": "src", "config": {**source_config(tmp_path, topic), "name": "src"},
                    "tasks": [{"connector": "src", "task": 0}], "type": "source"}
    assert rest(url, "POST", "/connectors", {"name": "src", "config": source_config(tmp_path, topic)}) == (
        409, {"error_code": 409, "message": "Connector src already exists"})
    assert rest(url, "GET", "/connectors") == (200, ["src"])
    wait_until(lambda: task_state(url, "src") == "RUNNING", what="task RUNNING")

    status, expanded = rest(url, "GET", "/connectors?expand=status&expand=info")
    assert status == 200 and expanded["src"]["status"]["connector"]["state"] == "RUNNING"
    assert expanded["src"]["info"]["type"] == "source"
    assert rest(url, "GET", "/connectors/src/config")[1]["topic"] == topic
    status, tasks = rest(url, "GET", "/connectors/src/tasks")
    assert status == 200 and tasks[0]["id"] == {"connector": "src", "task": 0} and tasks[0]["config"]["topic"] == topic
    status, task = rest(url, "GET", "/connectors/src/tasks/0/status")
    assert status == 200 and task["id"] == 0 and task["state"] == "RUNNING" and task["worker_id"] == server.worker_id
    wait_until(lambda: rest(url, "GET", "/connectors/src/topics")[1] == {"src": {"topics": [topic]}},
               what="active topics")

    assert rest(url, "PUT", "/connectors/src/pause")[0] == 202
    assert rest(url, "GET", "/connectors/src/status")[1]["connector"]["state"] == "PAUSED"
    assert rest(url, "PUT", "/connectors/src/resume")[0] == 202
    wait_until(lambda: task_state(url, "src") == "RUNNING", what="RUNNING after resume")

    assert rest(url, "POST", "/connectors/src/restart") == (204, None)
    status, accepted = rest(url, "POST", "/connectors/src/restart?includeTasks=true&onlyFailed=false")
    assert status == 202 and accepted["connector"]["state"] == "RESTARTING"
    assert accepted["tasks"][0]["state"] == "RESTARTING"
    wait_until(lambda: task_state(url, "src") == "RUNNING", what="RUNNING after restart")
    assert rest(url, "POST", "/connectors/src/tasks/0/restart") == (204, None)

    # PUT config updates (200), PATCH merges and removes null keys (KIP-477).
    status, updated = rest(url, "PUT", "/connectors/src/config", source_config(tmp_path, topic, **{"batch.size": "5"}))
    assert status == 200 and updated["config"]["batch.size"] == "5"
    status, patched = rest(url, "PATCH", "/connectors/src/config", {"batch.size": None, "tasks.max": "2"})
    assert status == 200 and "batch.size" not in patched["config"] and patched["config"]["tasks.max"] == "2"

    assert rest(url, "DELETE", "/connectors/src") == (204, None)
    assert rest(url, "GET", "/connectors/src") == (404, {"error_code": 404, "message": "Connector src not found"})
    assert rest(url, "GET", "/connectors/src/status")[0] == 404
    assert rest(url, "GET", "/connectors") == (200, [])


def test_invalid_config_errors(server, tmp_path):
    url = server.rest_url
    status, body = rest(url, "POST", "/connectors", {"name": "bad", "config": {
        "connector.class": "FileStreamSource", "tasks.max": "0"}})
    assert status == 400
    assert body == {"error_code": 400, "message":
                    "Connector configuration is invalid and contains the following 2 error(s):\n"
                    "Invalid value 0 for configuration tasks.max: Value must be at least 1\n"
                    'Missing required configuration "topic" which has no default value.\n'
                    "You can also find the above list of errors at the endpoint "
                    "`/connector-plugins/{connectorType}/config/validate`"}
    status, infos = rest(url, "PUT", "/connector-plugins/FileStreamSinkConnector/config/validate",
                         {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                          "name": "s", "transforms": "x", "transforms.x.type": "NoSuchTransform"})
    assert status == 200
    assert infos["name"] == "org.apache.kafka.connect.file.FileStreamSinkConnector" and infos["error_count"] == 3
    by_name = {c["definition"]["name"]: c for c in infos["configs"]}
    assert by_name["topics"]["value"]["errors"] == ["Must configure one of topics or topics.regex"]
    assert by_name["transforms.x.type"]["value"]["errors"][0].startswith(
        "Invalid value NoSuchTransform for configuration transforms.x.type")
    assert by_name["file"]["definition"] == {
        "name": "file", "type": "STRING", "required": False, "default_value": None, "importance": "HIGH",
        "documentation": "Destination filename. If not specified, the standard output will be used", "group": None,
        "width": "NONE", "display_name": "file", "dependents": [], "order": -1}
    assert "Common" in infos["groups"]
    status, body = rest(url, "PUT", "/connector-plugins/FileStreamSource/config/validate",
                        {"connector.class": "FileStreamSink"})
    assert status == 400 and body["message"] == ("Included connector type FileStreamSink does not match request "
                                                 "type FileStreamSource")
    assert rest(url, "GET", "/nowhere")[0] == 404
    status, body = rest(url, "PUT", "/connectors/x/config", {"name": "y", "connector.class": "FileStreamSource"})
    assert status == 400 and "doesn't match connector name in the URL" in body["message"]


def test_offsets_need_stopped_connector_then_alter_and_reset(server, broker, tmp_path):
    url, topic = server.rest_url, create_topic(broker.bootstrap_servers, unique_topic("rest-offsets"))
    rest(url, "POST", "/connectors", {"name": "src", "config": source_config(tmp_path, topic)})
    partition = {"filename": str(tmp_path / "in.txt")}
    wait_until(lambda: rest(url, "GET", "/connectors/src/offsets")[1] == {
        "offsets": [{"partition": partition, "offset": {"position": 8}}]}, what="committed offset 8")
    status, body = rest(url, "DELETE", "/connectors/src/offsets")
    assert status == 400 and body["message"].startswith("Connectors must be in the STOPPED state")
    assert rest(url, "PUT", "/connectors/src/stop") == (204, None)
    status, stopped = rest(url, "GET", "/connectors/src/status")
    assert stopped["connector"]["state"] == "STOPPED" and stopped["tasks"] == []
    status, body = rest(url, "PATCH", "/connectors/src/offsets",
                        {"offsets": [{"partition": partition, "offset": {"position": 4}}]})
    assert (status, body) == (200, {"message": "The offsets for this connector have been altered successfully"})
    assert rest(url, "GET", "/connectors/src/offsets")[1]["offsets"][0]["offset"] == {"position": 4}
    status, body = rest(url, "DELETE", "/connectors/src/offsets")
    assert (status, body) == (200, {"message": "The offsets for this connector have been reset successfully"})
    assert rest(url, "GET", "/connectors/src/offsets")[1] == {"offsets": []}


def test_sink_offsets_are_the_consumer_groups(server, broker, tmp_path):
    url, topic = server.rest_url, create_topic(broker.bootstrap_servers, unique_topic("rest-sink"))
    from tests.connect.connect_fixtures import produce

    produce(broker.bootstrap_servers, topic, [(None, b"a"), (None, b"b"), (None, b"c")])
    rest(url, "POST", "/connectors", {"name": "snk", "config": {
        "connector.class": "FileStreamSink", "file": str(tmp_path / "out.txt"), "topics": topic}})
    expected = {"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 3}}]}
    wait_until(lambda: rest(url, "GET", "/connectors/snk/offsets")[1] == expected, what="sink offsets")
    rest(url, "PUT", "/connectors/snk/stop")
    status, body = rest(url, "PATCH", "/connectors/snk/offsets", {"offsets": [
        {"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 1}}]})
    assert status == 200, body
    assert rest(url, "GET", "/connectors/snk/offsets")[1]["offsets"][0]["offset"] == {"kafka_offset": 1}


def test_admin_loggers(server):
    url = server.rest_url
    status, body = rest(url, "PUT", "/admin/loggers/moldau.connect", {"level": "DEBUG"})
    assert status == 200 and "moldau.connect" in body
    assert rest(url, "GET", "/admin/loggers/moldau.connect")[1]["level"] == "DEBUG"
    assert rest(url, "GET", "/admin/loggers")[1]["moldau.connect"]["level"] == "DEBUG"
    assert rest(url, "PUT", "/admin/loggers/moldau.connect", {"level": "LOUD"})[0] == 400
    assert rest(url, "GET", "/admin/loggers/no.such.logger")[0] == 404
    rest(url, "PUT", "/admin/loggers/moldau.connect", {"level": "INFO"})


def test_cli_talks_to_the_rest_api(server, tmp_path):
    def moldau(*args):
        return subprocess.run([sys.executable, "-m", "moldau.cli.main", *args, "--url", server.rest_url],
                              capture_output=True, text=True, timeout=60, check=False)

    config = tmp_path / "src.properties"
    config.write_text(f"connector.class=FileStreamSource\nfile={tmp_path / 'in.txt'}\ntopic=cli-topic\n")
    (tmp_path / "in.txt").write_text("x\n")
    created = moldau("connector", "create", "cli-src", "--config-file", str(config))
    assert created.returncode == 0, created.stderr
    assert '"cli-src"' in moldau("connector", "list").stdout
    assert moldau("connector", "pause", "cli-src").returncode == 0
    wait_until(lambda: '"PAUSED"' in moldau("connector", "status", "cli-src").stdout, what="PAUSED via CLI")
    assert moldau("connector", "resume", "cli-src").returncode == 0
    assert moldau("connector", "restart", "cli-src", "--include-tasks").returncode == 0
    assert '"offsets"' in moldau("connector", "offsets", "cli-src").stdout
    missing = moldau("connector", "status", "nope")
    assert missing.returncode == 1 and "No status found for connector nope (HTTP 404)" in missing.stderr
    assert moldau("connector", "delete", "cli-src").returncode == 0
    assert moldau("connector", "list").stdout.strip() == "[]"


def test_moldau_connect_start_runs_a_standalone_worker_process(broker, tmp_path):
    from tests.fixtures import free_port, wait_for_port

    port = free_port()
    topic = create_topic(broker.bootstrap_servers, unique_topic("proc"))
    (tmp_path / "in.txt").write_text("p1\np2\n")
    worker = tmp_path / "connect-standalone.properties"
    worker.write_text(f"bootstrap.servers={broker.bootstrap_servers}\nlisteners=http://127.0.0.1:{port}\n"
                      "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
                      "value.converter=org.apache.kafka.connect.storage.StringConverter\n"
                      f"offset.storage.file.filename={tmp_path / 'offsets'}\noffset.flush.interval.ms=200\n")
    connector = tmp_path / "connect-file-source.properties"
    connector.write_text(f"name=local-file-source\nconnector.class=FileStreamSource\ntasks.max=1\n"
                         f"file={tmp_path / 'in.txt'}\ntopic={topic}\n")
    process = subprocess.Popen([sys.executable, "-m", "moldau.cli.main", "connect", "start", str(worker),
                                str(connector)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 60, process)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: task_state(url, "local-file-source") == "RUNNING", what="task RUNNING")
        from tests.connect.connect_fixtures import read_topic

        assert [m.value() for m in read_topic(broker.bootstrap_servers, topic, 2)] == [b"p1", b"p2"]
    finally:
        process.terminate()
        assert process.wait(60) == 0

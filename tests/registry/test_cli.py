"""Given a standalone `moldau registry` process beside a broker, when a person uses `moldau schema ...`,
then schemas are registered, read, checked and deleted as shown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from moldau.testing import running_broker
from tests.cli.test_cli import moldau
from tests.fixtures import PROCESS_START_TIMEOUT_S, free_port, wait_for_port

V1 = json.dumps({"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}]})
V2 = json.dumps({"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"},
                                                             {"name": "age", "type": "int", "default": 0}]})
BAD = json.dumps({"type": "record", "name": "User", "fields": [{"name": "name", "type": "int"}]})


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory):
    with running_broker() as broker:
        port = free_port()
        directory = tmp_path_factory.mktemp("registry")
        log, properties = directory / "registry.log", directory / "schema-registry.properties"
        # Confluent's own configuration file works unchanged; flags override it.
        properties.write_text(f"listeners=http://127.0.0.1:{port}\n"
                              f"kafkastore.bootstrap.servers=PLAINTEXT://{broker.bootstrap_servers}\n"
                              "kafkastore.topic=_schemas\n")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moldau.cli.main", "registry", "--config", str(properties),
                 "--replication-factor", "1"],
                stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            wait_for_port(port, PROCESS_START_TIMEOUT_S, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, log.read_text()


def test_register_get_and_list_commands(registry_url, tmp_path):
    url = ("--url", registry_url)
    v2_file = tmp_path / "user.avsc"
    v2_file.write_text(V2)
    first = int(moldau("schema", "register", "users-value", "--schema", V1, *url).stdout)
    second = int(moldau("schema", "register", "users-value", "--schema-file", str(v2_file), *url).stdout)
    assert second == first + 1
    assert moldau("schema", "list", *url).stdout.split() == ["users-value"]
    assert moldau("schema", "list", "users-value", *url).stdout.split() == ["1", "2"]
    latest = json.loads(moldau("schema", "get", "users-value", *url).stdout)
    assert (latest["version"], latest["id"]) == (2, second)
    assert json.loads(json.loads(moldau("schema", "get", "--id", str(first), *url).stdout)["schema"]) \
        == json.loads(V1)


def test_compatibility_and_delete_commands(registry_url):
    url = ("--url", registry_url)
    moldau("schema", "register", "orders-value", "--schema", V1, *url)
    second = int(moldau("schema", "register", "orders-value", "--schema", V2, *url).stdout)
    incompatible = moldau("schema", "check-compat", "orders-value", "--schema", BAD, *url, check=False)
    assert incompatible.returncode == 1 and "incompatible" in incompatible.stdout
    assert moldau("schema", "check-compat", "orders-value", "--schema", V2, *url).stdout.strip() == "compatible"
    refused = moldau("schema", "register", "orders-value", "--schema", BAD, *url, check=False)
    assert refused.returncode == 1 and "error code 409" in refused.stderr
    assert moldau("schema", "set-compat", "none", "--subject", "orders-value", *url).stdout.strip() == "NONE"
    assert int(moldau("schema", "register", "orders-value", "--schema", BAD, *url).stdout) == second + 1

    assert json.loads(moldau("schema", "delete", "orders-value", "--version", "1", *url).stdout) == 1
    assert json.loads(moldau("schema", "delete", "orders-value", *url).stdout) == [2, 3]
    assert "orders-value" not in moldau("schema", "list", *url).stdout.split()
    assert "orders-value" in moldau("schema", "list", "--deleted", *url).stdout.split()
    invalid = moldau("schema", "register", "x", "--schema", "{nope", *url, check=False)
    assert invalid.returncode == 1 and "error code 42201" in invalid.stderr

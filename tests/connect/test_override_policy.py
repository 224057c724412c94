"""Given a worker's `connector.client.config.override.policy` (KIP-458), when a connector config overrides
its clients' settings, then what the policy refuses fails validation with Kafka's message, and what it allows
is used: under `Principal`, a sink connector consumes as its own SASL user, which the worker's user could not."""

from __future__ import annotations

import pytest

from moldau.client.client import Client
from moldau.client.security_admin import create_acls
from moldau.connect.api.config import ConfigException
from moldau.connect.runtime.standalone import standalone_herder
from moldau.connect.server import ConnectServer
from moldau.security.acl import AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType
from moldau.testing import running_broker
from tests.connect.connect_fixtures import FAST_WORKER, create_topic, lines_of, produce, rest, wait_until
from tests.fixtures import unique_topic

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
USERS = {"worker": "worker-secret", "app": "app-secret"}


def jaas(user: str) -> str:
    return f'{PLAIN} required username="{user}" password="{USERS[user]}";'


def worker_props(bootstrap: str, tmp_path, policy: str, **extra: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap, "listeners": "http://127.0.0.1:0",
            "offset.storage.file.filename": str(tmp_path / "offsets.json"),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "connector.client.config.override.policy": policy, **FAST_WORKER, **extra}


def sink_config(tmp_path, topic: str, **overrides: str) -> dict[str, str]:
    return {"connector.class": "FileStreamSink", "tasks.max": "1", "file": str(tmp_path / "out.txt"),
            "topics": topic, **overrides}


def refusal(policy: str, setting: str) -> str:
    return f"The '{policy}' policy does not allow '{setting}' to be overridden in the connector configuration."


def test_the_none_policy_refuses_every_override_of_a_client_the_connector_uses(broker, tmp_path):
    topic = create_topic(broker.bootstrap_servers, unique_topic("policy-none"))
    with ConnectServer(worker_props(broker.bootstrap_servers, tmp_path, "None")) as server:
        url = server.rest_url
        config = sink_config(tmp_path, topic, **{"consumer.override.max.poll.records": "7"})
        status, body = rest(url, "POST", "/connectors", {"name": "sink", "config": config})
        assert status == 400 and refusal("None", "max.poll.records") in body["message"]
        assert rest(url, "GET", "/connectors") == (200, [])

        status, infos = rest(url, "PUT", "/connector-plugins/FileStreamSink/config/validate",
                             {**config, "name": "sink"})
        assert status == 200 and infos["error_count"] == 1
        [entry] = [c for c in infos["configs"] if c["definition"]["name"] == "consumer.override.max.poll.records"]
        assert entry["value"]["errors"] == [refusal("None", "max.poll.records")]

        # A sink has no producer unless it has a dead letter queue, so its producer overrides are not checked
        # (AbstractHerder.connectorUsesProducer); with a DLQ they are.
        unused = sink_config(tmp_path, topic, **{"producer.override.linger.ms": "5"})
        assert rest(url, "PUT", "/connectors/sink/config", unused)[0] == 201
        with_dlq = {**unused, "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "dlq",
                    "errors.deadletterqueue.topic.replication.factor": "1"}
        status, body = rest(url, "PUT", "/connectors/sink/config", with_dlq)
        assert status == 400 and refusal("None", "linger.ms") in body["message"]


def test_the_all_policy_is_the_default_and_an_unknown_policy_stops_the_worker(broker, tmp_path):
    props = worker_props(broker.bootstrap_servers, tmp_path, "All")
    del props["connector.client.config.override.policy"]
    herder = standalone_herder(props)
    try:
        topic = create_topic(broker.bootstrap_servers, unique_topic("policy-all"))
        created, _ = herder.put_connector_config("sink", sink_config(
            tmp_path, topic, **{"consumer.override.max.poll.records": "7"}), allow_replace=False)
        assert created
    finally:
        herder.stop()
    with pytest.raises(ConfigException, match="connector.client.config.override.policy"):
        standalone_herder(worker_props(broker.bootstrap_servers, tmp_path, "Everything"))


def test_the_principal_policy_lets_a_sink_consume_as_its_own_user(tmp_path):
    users = " ".join(f'user_{name}="{password}"' for name, password in USERS.items())
    with running_broker(listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                        sasl_enabled_mechanisms="PLAIN", sasl_jaas_config=f"{PLAIN} required {users};",
                        authorizer_class_name="org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                        super_users="User:ANONYMOUS", num_partitions=1) as broker:
        admin_bootstrap, sasl_bootstrap = broker.bootstrap("PLAINTEXT"), broker.bootstrap("SASL_PLAINTEXT")
        topic = create_topic(admin_bootstrap, unique_topic("policy-principal"))
        produce(admin_bootstrap, topic, [(None, f"line {i}".encode()) for i in range(20)])
        with Client(admin_bootstrap) as admin:  # only `app` may read the topic, as the sink's group
            create_acls(admin, [
                AclBinding(resource, name, PatternType.LITERAL, "User:app", "*", AclOperation.READ,
                           AclPermissionType.ALLOW)
                for resource, name in ((ResourceType.TOPIC, topic), (ResourceType.GROUP, "connect-sink"))])

        props = worker_props(sasl_bootstrap, tmp_path, "Principal", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.jaas.config": jaas("worker")})
        with ConnectServer(props) as server:
            url = server.rest_url
            status, body = rest(url, "POST", "/connectors", {"name": "sink", "config": sink_config(
                tmp_path, topic, **{"consumer.override.max.poll.records": "7"})})
            assert status == 400 and refusal("Principal", "max.poll.records") in body["message"]

            status, _ = rest(url, "POST", "/connectors", {"name": "sink", "config": sink_config(
                tmp_path, topic, **{"consumer.override.sasl.jaas.config": jaas("app")})})
            assert status == 201
            wait_until(lambda: len(lines_of(tmp_path / "out.txt")) == 20, what="20 lines read as User:app")
            assert lines_of(tmp_path / "out.txt") == [f"line {i}" for i in range(20)]

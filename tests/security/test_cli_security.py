"""Given a SASL_SSL broker from `moldau.testing`, when an operator uses `moldau` with --command-config,
then topics, ACLs, SCRAM users and quotas are managed as with Kafka's tools."""

from __future__ import annotations

import json

from confluent_kafka import Producer

from moldau.testing import running_secure_broker
from tests.cli.test_cli import moldau
from tests.fixtures import unique_topic


def test_cli_manages_acls_users_and_quotas_over_sasl_ssl(tmp_path):
    with running_secure_broker(users={"alice": "alice-secret"}, authorizer=True) as broker:
        properties = tmp_path / "admin.properties"
        properties.write_text(broker.client_properties("admin"))
        admin = ("-b", broker.bootstrap_servers, "--command-config", str(properties))
        topic = unique_topic("cli-sec")
        assert "Created topic" in moldau("topic", "create", topic, "--partitions", "1", *admin).stdout

        # alice may not see the topic until an ACL allows it.
        alice_properties = tmp_path / "alice.properties"
        alice_properties.write_text(broker.client_properties("alice"))
        alice = ("-b", broker.bootstrap_servers, "--command-config", str(alice_properties))
        assert topic not in json.loads(moldau("topic", "list", "--json", *alice).stdout)
        moldau("acl", "add", "--allow-principal", "User:alice", "--operation", "Write", "--operation", "Read",
               "--topic", topic, *admin)
        assert topic in json.loads(moldau("topic", "list", "--json", *alice).stdout)
        moldau("produce", topic, *alice, stdin="hello\n")
        listed = json.loads(moldau("acl", "list", "--principal", "User:alice", "--json", *admin).stdout)
        assert {(a["operation"], a["name"]) for a in listed} == {("WRITE", topic), ("READ", topic)}
        assert "Removed 2 ACL(s)" in moldau("acl", "remove", "--topic", topic, *admin).stdout
        assert topic not in json.loads(moldau("topic", "list", "--json", *alice).stdout)

        # A new SCRAM user can log in with librdkafka; after removal it cannot.
        moldau("user", "add", "carol", "--password", "carol-secret", "--mechanism", "SCRAM-SHA-256", *admin)
        users = json.loads(moldau("user", "list", "--json", *admin).stdout)
        assert users["carol"] == [{"mechanism": "SCRAM-SHA-256", "iterations": 8192}]
        config = {**broker.client_config("admin", "SCRAM-SHA-256"), "sasl.username": "carol",
                  "sasl.password": "carol-secret"}
        assert Producer(config).list_topics(timeout=10).cluster_id
        moldau("user", "remove", "carol", *admin)
        assert "carol" not in json.loads(moldau("user", "list", "--json", *admin).stdout)

        moldau("quota", "set", "--user", "alice", "--client-id-default", "--config", "producer_byte_rate=1048576",
               *admin)
        quotas = json.loads(moldau("quota", "list", "--json", *admin).stdout)
        assert quotas == [{"entity": {"user": "alice", "client-id": None}, "values": {"producer_byte_rate": 1048576.0}}]

        # Without credentials the command fails with one readable line.
        refused = moldau("topic", "list", "-b", broker.bootstrap_servers, check=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr

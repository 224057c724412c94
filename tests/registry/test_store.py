"""The `_schemas` fold alone (no Kafka): Confluent's record layout, and a deterministic answer when two
registry instances race."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.registry.store import (
    SchemaKey,
    SchemaStore,
    SchemaVersion,
    config_key,
    config_value,
    mode_key,
    mode_value,
    schema_key,
    schema_value,
)


def entry(subject: str, version: int, schema_id: int, schema: str, deleted: bool = False) -> SchemaVersion:
    return SchemaVersion(subject, version, schema_id, SchemaKey("AVRO", schema), deleted)


def fold(records: list[tuple[bytes, bytes | None]]) -> SchemaStore:
    store = SchemaStore()
    for offset, (key, value) in enumerate(records):
        store.apply(key, value, offset)
    return store


def test_confluent_layout():
    key = json.loads(schema_key("s", 1))
    assert key == {"keytype": "SCHEMA", "subject": "s", "version": 1, "magic": 1}
    value = json.loads(schema_value(entry("s", 1, 3, '"int"')))
    assert value == {"subject": "s", "version": 1, "id": 3, "schema": '"int"', "deleted": False}
    assert json.loads(config_key(None)) == {"keytype": "CONFIG", "subject": None, "magic": 0}
    assert json.loads(config_value("FULL")) == {"compatibilityLevel": "FULL"}


def test_first_record_wins_a_race_and_the_loser_is_flagged_for_repair():
    winner, loser = entry("s", 1, 1, '"int"'), entry("s", 1, 2, '"long"')
    store = fold([(schema_key("s", 1), schema_value(winner)), (schema_key("s", 1), schema_value(loser))])
    assert store.get_version("s", 1).id == 1 and 2 not in store.by_id
    assert store.overridden == {("s", 1)}
    store.apply(schema_key("s", 1), schema_value(winner), 2)  # the repair: the winner appended again
    assert store.overridden == set()


def test_an_id_bound_to_another_schema_is_ignored():
    store = fold([(schema_key("a", 1), schema_value(entry("a", 1, 1, '"int"'))),
                  (schema_key("b", 1), schema_value(entry("b", 1, 1, '"long"')))])
    assert store.subjects() == ["a"] and store.by_id[1].schema == '"int"'


def test_soft_delete_tombstone_and_settings():
    store = fold([
        (schema_key("s", 1), schema_value(entry("s", 1, 1, '"int"'))),
        (schema_key("s", 2), schema_value(entry("s", 2, 2, '"long"'))),
        (schema_key("s", 1), schema_value(entry("s", 1, 1, '"int"', deleted=True))),
        (config_key("s"), config_value("NONE")),
        (mode_key(None), mode_value("READONLY")),
    ])
    assert [v.version for v in store.subject_versions("s")] == [2]
    assert [v.version for v in store.subject_versions("s", deleted=True)] == [1, 2]
    assert store.compatibility_of("s") == "NONE" and store.compatibility_of("t") == "BACKWARD"
    assert store.mode_of("t") == "READONLY"
    store.apply(schema_key("s", 1), None, 5)
    store.apply(config_key("s"), None, 6)
    assert [v.version for v in store.subject_versions("s", deleted=True)] == [2]
    assert 1 not in store.by_id and store.max_id == 2  # ids are never handed out again
    assert store.compatibility_of("s") == "BACKWARD"


def test_delete_subject_records_and_junk_are_tolerated():
    store = fold([
        (schema_key("s", 1), schema_value(entry("s", 1, 1, '"int"'))),
        (b'{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}', b'{"subject":"s","version":1}'),
        (b"not json", b"{}"),
        (b'{"keytype":"NOOP","magic":0}', None),
    ])
    assert store.subject_versions("s") == [] and store.applied_offset == 3


def visible(store: SchemaStore) -> dict:
    """What clients can see: every version (deleted or not) with its id and schema, and the settings."""
    return {
        "versions": {(e.subject, e.version): (e.id, e.key, e.deleted)
                     for s in store.versions for e in store.versions[s].values()},
        "by_id": dict(store.by_id), "compatibility": dict(store.compatibility), "modes": dict(store.modes),
    }


def compacted(records: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    """What Kafka's log cleaner leaves: the last record of each key, in offset order (tombstones kept)."""
    last = {key: offset for offset, (key, _) in enumerate(records)}
    return [record for offset, record in enumerate(records) if last[record[0]] == offset]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["register", "soft", "hard", "config"]),
                          st.sampled_from(["a", "b", "c"]), st.integers(0, 4)), max_size=40))
def test_state_survives_compaction(operations):
    """Replaying the compacted `_schemas` gives the state of replaying all of it (design decision 7)."""
    store, records = SchemaStore(), []

    def write(key: bytes, value: bytes | None) -> None:
        records.append((key, value))
        store.apply(key, value, len(records) - 1)

    for op, subject, n in operations:
        live = store.subject_versions(subject)
        if op == "register":
            key = SchemaKey("AVRO", f'"schema-{n}"')
            if any(e.key == key for e in live):
                continue
            all_versions = store.subject_versions(subject, deleted=True)
            version = (all_versions[-1].version if all_versions else 0) + 1
            write(schema_key(subject, version), schema_value(SchemaVersion(
                subject, version, store.id_of.get(key, store.max_id + 1), key)))
        elif op == "soft" and live:
            e = live[n % len(live)]
            write(schema_key(subject, e.version), schema_value(SchemaVersion(e.subject, e.version, e.id, e.key,
                                                                              deleted=True)))
        elif op == "hard":
            deleted = [e for e in store.subject_versions(subject, deleted=True) if e.deleted]
            if deleted:
                write(schema_key(subject, deleted[n % len(deleted)].version), None)
        elif op == "config":
            write(config_key(subject), config_value(["NONE", "FULL"][n % 2]) if n < 4 else None)
    assert visible(fold(compacted(records))) == visible(store)


def test_registry_config_from_confluent_properties():
    import pytest

    from moldau.errors import MoldauError
    from moldau.registry import RegistryConfig

    config = RegistryConfig.from_properties({
        "listeners": "http://0.0.0.0:8085", "kafkastore.bootstrap.servers": "PLAINTEXT://k1:9092,SASL_SSL://k2:9093",
        "kafkastore.topic": "_schemas_x", "kafkastore.timeout.ms": "2500",
        "kafkastore.security.protocol": "SASL_SSL", "kafkastore.sasl.mechanism": "PLAIN",
    })
    assert (config.bootstrap_servers, config.listener, config.topic, config.timeout_s) == \
        ("k1:9092,k2:9093", "http://0.0.0.0:8085", "_schemas_x", 2.5)
    assert config.client_config == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    with pytest.raises(MoldauError, match="kafkastore.bootstrap.servers"):
        RegistryConfig.from_properties({"listeners": "http://0.0.0.0:8081"})


def test_a_record_ignored_for_its_id_applies_once_the_id_is_freed():
    """Live instances and an instance replaying the compacted log (without the id holder) end the same."""
    holder, orphan = entry("a", 1, 7, '"int"', deleted=True), entry("b", 1, 7, '"long"')
    records = [(schema_key("a", 1), schema_value(holder)), (schema_key("b", 1), schema_value(orphan)),
               (schema_key("a", 1), None)]
    live = fold(records)
    assert [(e.subject, e.id) for e in live.subject_versions("b")] == [("b", 7)]
    assert visible(live) == visible(fold(compacted(records))) == visible(fold(records[1:]))
    # A later record for the orphan's key supersedes it: nothing is resurrected.
    superseded = fold(records[:2] + [(schema_key("b", 1), schema_value(entry("b", 1, 8, '"long"'))),
                                     records[2]])
    assert [(e.subject, e.id) for e in superseded.subject_versions("b")] == [("b", 8)]

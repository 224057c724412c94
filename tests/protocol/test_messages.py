"""The generated message classes."""

from __future__ import annotations

import uuid

import pytest

from moldau.protocol import messages as m
from moldau.protocol.api import decode_message, encode_message
from moldau.protocol.schema import all_specs, snake_case


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("TopicId", "topic_id"),
        ("ErrorCode", "error_code"),
        ("ThrottleTimeMs", "throttle_time_ms"),
        ("KRaftVersion", "k_raft_version"),
        ("V3AndBelowTopics", "v3_and_below_topics"),
        ("Enable2Pc", "enable2_pc"),
        ("timeoutMs", "timeout_ms"),
        ("Class", "class_"),
        ("Global", "global_"),
    ],
)
def test_snake_case(name: str, attr: str) -> None:
    assert snake_case(name) == attr


def test_every_schema_has_a_class_with_its_nested_structs() -> None:
    for name, spec in all_specs().items():
        cls = getattr(m, name)
        assert cls.__name__ == name
        for struct in spec.structs:
            assert getattr(cls, struct).__qualname__ == f"{name}.{struct}"
    assert m.ProduceResponse.TopicProduceResponse
    assert m.FetchResponse.PartitionData
    assert m.MetadataResponse.MetadataResponseTopic
    assert m.FetchResponse.LeaderIdAndEpoch  # a commonStruct
    assert m.ConsumerProtocolSubscription.TopicPartition
    assert m.RequestHeader and m.ResponseHeader
    with pytest.raises(AttributeError):
        _ = m.NoSuchRequest
    assert "FetchRequest" in dir(m)


def test_checked_in_message_classes_match_the_schemas() -> None:
    """The messages package is generated; a schema or generator change without regenerating fails here."""
    from moldau.protocol.classes import GENERATOR, stale_files

    stale = stale_files()
    assert not stale, f"stale generated files {stale}: run `{GENERATOR}`"


def test_the_stale_check_sees_an_edit(tmp_path) -> None:
    from moldau.protocol.classes import PACKAGE_DIR, stale_files

    for path in PACKAGE_DIR.glob("*.py"):
        (tmp_path / path.name).write_text(path.read_text())
    assert stale_files(tmp_path) == []
    edited = tmp_path / "heartbeat_request.py"
    edited.write_text(edited.read_text().replace("generation_id: int = 0", "generation_id: int = 1"))
    (tmp_path / "no_such_message.py").write_text("")
    (tmp_path / "fetch_request.py").unlink()
    assert stale_files(tmp_path) == ["fetch_request.py", "heartbeat_request.py", "no_such_message.py"]


def test_the_broker_reads_no_schema_for_the_api_table() -> None:
    """api.APIS comes from the generated table (startup time), and agrees with the schemas."""
    from moldau.protocol.api import APIS

    specs = all_specs()
    for api_key, api in APIS.items():
        request, response = specs[api.name + "Request"], specs[api.name + "Response"]
        assert request.api_key == api_key
        assert (api.min_version, api.max_version) == (request.valid.lo, request.valid.hi)
        assert api.response_flexible_min == (None if response.flexible.empty else response.flexible.lo)
    live = {s.api_key for s in specs.values() if s.kind == "request" and not s.valid.empty}
    assert set(APIS) == live


def test_defaults() -> None:
    partition = m.FetchResponse.PartitionData()
    assert partition.last_stable_offset == -1
    assert partition.records is None
    assert partition.aborted_transactions == []
    assert partition.current_leader == m.FetchResponse.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1)
    other = m.FetchResponse.PartitionData()
    assert other.aborted_transactions is not partition.aborted_transactions
    assert other.current_leader is not partition.current_leader
    assert m.FetchResponse.FetchableTopicResponse().topic_id == uuid.UUID(int=0)
    assert m.MetadataRequest().allow_auto_topic_creation is True
    assert m.MetadataRequest().topics == []
    assert m.ConsumerGroupHeartbeatResponse().assignment is None  # nullable struct, default null
    assert m.ProduceRequest().transactional_id is None
    assert m.FetchRequest().max_wait_ms == 0
    assert m.FetchRequest().isolation_level == 0
    assert m.FetchRequest.FetchPartition().log_start_offset == -1
    assert m.JoinGroupRequest().rebalance_timeout_ms == -1
    assert m.ListOffsetsRequest.ListOffsetsPartition().current_leader_epoch == -1


def test_slots_repr_eq() -> None:
    a = m.HeartbeatRequest(group_id="g", generation_id=3)
    with pytest.raises(AttributeError):
        a.no_such_field = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        m.HeartbeatRequest("g")  # type: ignore[misc]
    assert repr(a) == "HeartbeatRequest(group_id='g', generation_id=3, member_id='', group_instance_id=None)"
    assert a == m.HeartbeatRequest(group_id="g", generation_id=3)
    assert a != m.HeartbeatRequest(group_id="g", generation_id=4)
    assert a != m.HeartbeatResponse()
    with pytest.raises(TypeError):
        hash(a)


def test_fields_outside_the_version_are_neither_written_nor_read() -> None:
    request = m.HeartbeatRequest(group_id="g", generation_id=3, member_id="m", group_instance_id="i")
    v0 = encode_message("HeartbeatRequest", 0, request)  # group_instance_id is v3+
    assert b"i" not in v0[-3:]
    decoded, _ = decode_message("HeartbeatRequest", 0, v0)
    assert decoded.group_instance_id is None
    assert decoded == m.HeartbeatRequest(group_id="g", generation_id=3, member_id="m")


def test_produce_v13_uses_topic_ids_instead_of_names() -> None:
    topic_id = uuid.uuid4()
    request = m.ProduceRequest(topic_data=[m.ProduceRequest.TopicProduceData(name="t", topic_id=topic_id)])
    decoded, _ = decode_message("ProduceRequest", 13, encode_message("ProduceRequest", 13, request))
    assert decoded.topic_data[0].topic_id == topic_id
    assert decoded.topic_data[0].name == ""
    decoded, _ = decode_message("ProduceRequest", 12, encode_message("ProduceRequest", 12, request))
    assert decoded.topic_data[0].name == "t"
    assert decoded.topic_data[0].topic_id == uuid.UUID(int=0)


def test_data_schemas_encode_too() -> None:
    subscription = m.ConsumerProtocolSubscription(topics=["a", "b"], user_data=None, generation_id=2)
    wire = encode_message("ConsumerProtocolSubscription", 3, subscription)
    assert decode_message("ConsumerProtocolSubscription", 3, wire)[0] == subscription


def test_dump_prints_the_generated_code(capsys: pytest.CaptureFixture[str]) -> None:
    from moldau.protocol.codegen import main

    main(["--dump", "Produce", "9"])
    out = capsys.readouterr().out
    assert "def _d_ProduceRequest(mv, pos):" in out
    assert "def _e_ProduceResponse(o, b, parts):" in out

"""Kafka Connect's group protocol layouts (ConnectProtocol v0, IncrementalCooperativeConnectProtocol v1/v2) and
the incremental cooperative assignor (KIP-415), without a broker.

The golden bytes are derived by hand from the schemas in Kafka's IncrementalCooperativeConnectProtocol and
ConnectProtocol: STRING = int16 length + UTF-8, INT32/INT64 big-endian, ArrayOf / NULLABLE_BYTES = int32
count or length, -1 for null.
"""

from __future__ import annotations

import pytest

from moldau.connect.runtime.connect_protocol import (
    ConnectAssignment,
    ConnectProtocolCompatibility,
    WorkerState,
    metadata_request,
)
from moldau.connect.runtime.incremental_assignor import ConnectorsAndTasks, IncrementalCooperativeAssignor
from moldau.connect.runtime.worker_task import ConnectorTaskId as T

URL = "http://w1:8083"  # 14 bytes
URL_BYTES = "000e" + URL.encode().hex()
OFFSET_7 = "0000000000000007"

# Assignment V1 body after its version: error 0, leader "m1", leader url, config offset 7,
# assignment [ {"c", [-1, 0]} ], revoked [ {"d", [1]} ], delay 5000.
ASSIGNMENT_V1_BODY = (
    "0000"                                  # Error => Int16 (NO_ERROR)
    "0002" "6d31"                           # Leader => String "m1"
    + URL_BYTES                             # LeaderUrl => String
    + OFFSET_7                              # ConfigOffset => Int64
    + "00000001"                            # Assignment => [Connector Assignment], 1 entry
    "0001" "63"                             #   Connector => String "c"
    "00000002" "ffffffff" "00000000"        #   Tasks => [Int32]: CONNECTOR_TASK (-1, the connector), task 0
    "00000001"                              # Revoked => [Connector Assignment], 1 entry
    "0001" "64"                             #   Connector => String "d"
    "00000001" "00000001"                   #   Tasks => [Int32]: task 1
    "00001388"                              # ScheduledDelay => Int32 5000
)


def test_assignment_v1_and_v2_layout():
    assignment = ConnectAssignment("m1", URL, 7, ["c"], [T("c", 0)], version=1, revoked_tasks=[T("d", 1)], delay=5000)
    assert assignment.encode().hex() == "0001" + ASSIGNMENT_V1_BODY  # Version => Int16 1 (compatible)
    assignment.version = 2
    assert assignment.encode().hex() == "0002" + ASSIGNMENT_V1_BODY  # v2 (sessioned) is v1 with version 2
    decoded = ConnectAssignment.decode(bytes.fromhex("0002" + ASSIGNMENT_V1_BODY))
    assert decoded == assignment


def test_assignment_v0_layout_and_v0_read_as_v1():
    v0 = ConnectAssignment("m1", URL, 7, ["c"], [T("c", 0)])
    golden = "0000" + ASSIGNMENT_V1_BODY[:ASSIGNMENT_V1_BODY.index("00000001" "0001" "64")]  # no Revoked/Delay
    assert v0.encode().hex() == golden
    decoded = ConnectAssignment.decode(bytes.fromhex(golden))
    assert (decoded.version, decoded.connectors, decoded.tasks, decoded.revoked_tasks, decoded.delay) == \
        (0, ["c"], [T("c", 0)], [], 0)
    # Kafka's v1 schema tolerates missing trailing fields: a v1 header on a body that stops early reads.
    short = ConnectAssignment.decode(bytes.fromhex("0001" + golden[4:]))
    assert (short.version, short.tasks, short.revoked_tasks, short.delay) == (1, [T("c", 0)], [], 0)


def test_null_arrays_read_as_empty():
    body = "0001" "0000" "0002" "6d31" + URL_BYTES + OFFSET_7 + "ffffffff" "ffffffff" "00000000"
    decoded = ConnectAssignment.decode(bytes.fromhex(body))
    assert (decoded.connectors, decoded.tasks, decoded.revoked_connectors, decoded.delay) == ([], [], [], 0)


def test_worker_metadata_layouts():
    new_worker = WorkerState(URL, 7)
    assert new_worker.encode(0).hex() == "0000" + URL_BYTES + OFFSET_7  # ConnectProtocol v0: Version Url Offset
    # v1/v2: ... then Current Assignment => NULLABLE_BYTES, null (-1) for a worker with nothing assigned yet.
    assert new_worker.encode(2).hex() == "0002" + URL_BYTES + OFFSET_7 + "ffffffff"
    owned = ConnectAssignment("m1", URL, 7, ["c"], [T("c", 0)], version=1, delay=0)
    running = WorkerState(URL, 7, owned)
    allocation = ("0001" "0000" "0002" "6d31" + URL_BYTES + OFFSET_7
                  + "00000001" "0001" "63" "00000002" "ffffffff" "00000000"  # assignment {"c", [-1, 0]}
                  + "00000000"                                                # revoked: none
                  + "00000000")                                               # delay 0
    assert running.encode(1).hex() == "0001" + URL_BYTES + OFFSET_7 + f"{len(allocation) // 2:08x}" + allocation
    decoded = WorkerState.decode(running.encode(2))
    assert decoded.url == URL and decoded.config_offset == 7
    assert decoded.assignment is not None and decoded.assignment.connectors == ["c"]
    assert decoded.assignment.tasks == [T("c", 0)] and decoded.assignment.version == 2
    assert WorkerState.decode(new_worker.encode(0)) == new_worker


@pytest.mark.parametrize(("mode", "names"), [("sessioned", ["sessioned", "compatible", "default"]),
                                             ("compatible", ["compatible", "default"]),
                                             ("eager", ["default"])])
def test_join_group_protocols_in_preference_order(mode, names):
    offered = metadata_request(WorkerState(URL, 7), ConnectProtocolCompatibility.from_config(mode))
    assert [name for name, _ in offered] == names
    assert [int.from_bytes(metadata[:2], "big") for _, metadata in offered] == \
        [ConnectProtocolCompatibility.from_protocol(name).version for name in names]


# -- the assignor -----------------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


CONFIGURED = ConnectorsAndTasks({"a", "b"}, {T("a", i) for i in range(4)} | {T("b", 0), T("b", 1)})


class Group:
    """Members applying the assignor's answers the way WorkerGroupMember does, generation by generation."""

    def __init__(self, max_delay_ms: int = 5000) -> None:
        self.clock = Clock()
        self.assignor = IncrementalCooperativeAssignor(max_delay_ms, clock=self.clock)
        self.owned: dict[str, ConnectorsAndTasks] = {}
        self.generation = 0
        self.started: list[tuple[str, object]] = []
        self.stopped: list[tuple[str, object]] = []

    def rebalance(self, members: list[str], configured: ConnectorsAndTasks = CONFIGURED) -> int:
        self.generation += 1
        for m in members:
            self.owned.setdefault(m, ConnectorsAndTasks())
        changes, delay = self.assignor.perform(configured, {m: self.owned[m] for m in members},
                                               self.generation - 1, self.generation)
        for m, change in changes.items():
            for item in [*change.revoked_connectors, *change.revoked_tasks]:
                self.stopped.append((m, item))
            self.owned[m] = self.owned[m].minus(ConnectorsAndTasks(set(change.revoked_connectors),
                                                                   set(change.revoked_tasks)))
            self.owned[m].add(ConnectorsAndTasks(set(change.connectors), set(change.tasks)))
            self.started += [(m, item) for item in [*change.connectors, *change.tasks]]
        return delay

    def until_settled(self, members: list[str]) -> int:
        """Rebalance until a round revokes nothing (each revocation needs a follow-up round)."""
        for _ in range(4):
            stopped = len(self.stopped)
            delay = self.rebalance(members)
            if len(self.stopped) == stopped:
                return delay
        raise AssertionError("the assignment did not settle")

    def sizes(self) -> dict[str, tuple[int, int]]:
        return {m: (len(o.connectors), len(o.tasks)) for m, o in self.owned.items()}


def test_a_joining_member_gets_a_share_and_nothing_that_stays_is_stopped():
    group = Group()
    group.until_settled(["w1"])
    assert group.sizes() == {"w1": (2, 6)}
    group.started.clear()
    assert group.rebalance(["w1", "w2"]) == 0  # w1 is told to stop its excess; nothing is started yet
    assert {m for m, _ in group.stopped} == {"w1"} and len(group.stopped) == 4  # 1 connector, 3 tasks
    assert group.started == []
    stopped = {item for _, item in group.stopped}
    group.rebalance(["w1", "w2"])  # the follow-up round gives the revoked work to w2
    assert {item for _, item in group.started} == stopped and {m for m, _ in group.started} == {"w2"}
    assert group.sizes() == {"w1": (1, 3), "w2": (1, 3)}
    assert len(group.stopped) == 4  # nothing else was ever stopped
    group.rebalance(["w1", "w2"])  # balanced: a further round changes nothing
    assert group.sizes() == {"w1": (1, 3), "w2": (1, 3)} and len(group.stopped) == 4


def test_lost_work_is_held_for_the_delay_then_reassigned():
    group = Group(max_delay_ms=5000)
    group.until_settled(["w1"])
    group.rebalance(["w1", "w2"])
    group.rebalance(["w1", "w2"])
    lost = group.owned.pop("w2")
    assert group.rebalance(["w1"]) == 5000  # w2 left: its work is held, every member rejoins in 5 s
    assert group.sizes() == {"w1": (1, 3)}
    group.clock.now += 2
    assert group.rebalance(["w1"]) == 3000  # a rebalance meanwhile keeps the remaining delay
    assert group.sizes() == {"w1": (1, 3)}
    group.clock.now += 3
    assert group.rebalance(["w1"]) == 0  # the delay is over: the lost work goes to w1
    assert group.owned["w1"].tasks >= lost.tasks and group.sizes() == {"w1": (2, 6)}


def test_a_member_back_within_the_delay_keeps_its_work():
    group = Group(max_delay_ms=5000)
    group.until_settled(["w1"])
    group.rebalance(["w1", "w2"])
    group.rebalance(["w1", "w2"])
    w2 = group.owned.pop("w2")
    assert group.rebalance(["w1"]) == 5000
    group.owned["w2"] = w2  # it comes back still running its work (a long GC pause, a network blip)
    group.clock.now += 1
    assert group.rebalance(["w1", "w2"]) == 0
    assert group.owned["w2"] == w2 and group.sizes() == {"w1": (1, 3), "w2": (1, 3)}
    group.clock.now += 10
    group.rebalance(["w1", "w2"])
    assert group.owned["w2"] == w2


def test_a_new_member_during_the_delay_receives_the_lost_work():
    group = Group(max_delay_ms=5000)
    group.until_settled(["w1"])
    group.rebalance(["w1", "w2"])
    group.rebalance(["w1", "w2"])
    lost = group.owned.pop("w2")
    group.rebalance(["w1"])
    group.clock.now += 1
    assert group.rebalance(["w1", "w3"]) == 4000  # no revocations while lost work is held
    assert group.sizes()["w3"] == (0, 0)
    group.clock.now += 4
    group.rebalance(["w1", "w3"])
    assert group.owned["w3"] == lost


def test_deleted_and_duplicated_work_is_revoked():
    group = Group(max_delay_ms=0)
    group.until_settled(["w1", "w2"])
    w1_tasks = set(group.owned["w1"].tasks)
    group.owned["w2"].tasks |= {next(iter(w1_tasks))}  # w2 came back running a task w1 now owns
    group.stopped.clear()
    group.rebalance(["w1", "w2"])
    duplicate = next(iter(w1_tasks))
    assert sorted(m for m, _ in group.stopped) == ["w1", "w2"] and {i for _, i in group.stopped} == {duplicate}
    group.rebalance(["w1", "w2"])  # the follow-up round gives it to one of them
    assert [m for m in ("w1", "w2") if duplicate in group.owned[m].tasks] in (["w1"], ["w2"])
    group.stopped.clear()
    without_b = ConnectorsAndTasks({"a"}, {T("a", i) for i in range(4)})
    group.rebalance(["w1", "w2"], without_b)
    assert {item for _, item in group.stopped} >= {"b", T("b", 0), T("b", 1)}


def test_successive_revoking_rounds_back_off():
    group = Group(max_delay_ms=60000)
    group.until_settled(["w1"])
    group.rebalance(["w1", "w2"])  # revokes
    group.owned["w1"].tasks |= {T("a", 0), T("a", 1), T("a", 2), T("a", 3)}  # imbalance again right away
    group.owned["w2"] = ConnectorsAndTasks()
    assert group.rebalance(["w1", "w2"]) == 40  # KIP-415: the second revoking round in a row waits 40 ms

"""Kafka Connect's group protocols (protocol type `connect`): the JoinGroup metadata and SyncGroup assignment
layouts of Kafka's `ConnectProtocol` (v0, eager) and `IncrementalCooperativeConnectProtocol` (v1 `compatible`,
v2 `sessioned`; KIP-415, KIP-507), and the eager round-robin assignor (Kafka's EagerAssignor).

    v0 metadata    := version:int16=0 url:string config_offset:int64
    v1/v2 metadata := version:int16 url:string config_offset:int64 allocation:nullable_bytes
                      (allocation = the worker's current assignment, serialized as below; null for a new worker)
    v0 assignment  := version:int16=0 error:int16 leader:string leader_url:string config_offset:int64
                      [connector:string [task:int32]]        (task -1 stands for the connector itself)
    v1/v2 assignment := the v0 fields, with the array nullable, then
                      revoked:[connector:string [task:int32]] (nullable) delay:int32

`string` is an int16 length and UTF-8; arrays and nullable_bytes an int32 count (-1 for null). v2 is v1 byte for
byte; its version number says the workers sign internal REST requests with a session key (KIP-507).

The layouts are Kafka's own, so the bytes a Moldau worker puts in JoinGroup/SyncGroup are what a Java worker
would put there. They are not among Kafka's JSON message schemas (Connect defines them with its own
Schema/Struct classes), so this module writes them out with `struct`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from moldau.connect.runtime.worker_task import ConnectorTaskId

PROTOCOL_TYPE = "connect"
CONNECTOR_TASK = -1
NO_ERROR, CONFIG_MISMATCH = 0, 1
CONNECT_PROTOCOL_V0, CONNECT_PROTOCOL_V1, CONNECT_PROTOCOL_V2 = 0, 1, 2

_I16, _I32, _I64 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")


class ConnectProtocolCompatibility(enum.Enum):
    """`connect.protocol`: which protocols a worker offers (Kafka's ConnectProtocolCompatibility)."""

    EAGER = ("default", CONNECT_PROTOCOL_V0)
    COMPATIBLE = ("compatible", CONNECT_PROTOCOL_V1)
    SESSIONED = ("sessioned", CONNECT_PROTOCOL_V2)

    @property
    def protocol(self) -> str:
        return self.value[0]

    @property
    def version(self) -> int:
        return self.value[1]

    @staticmethod
    def from_config(name: str) -> ConnectProtocolCompatibility:
        return ConnectProtocolCompatibility[name.strip().upper()]

    @staticmethod
    def from_protocol(name: str) -> ConnectProtocolCompatibility:
        for mode in ConnectProtocolCompatibility:
            if mode.protocol == name:
                return mode
        raise ValueError(f"Not found Connect protocol compatibility mode for protocol: {name}")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, fmt: struct.Struct) -> int:
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return int(value)

    def i16(self) -> int:
        return self._take(_I16)

    def i32(self) -> int:
        return self._take(_I32)

    def i64(self) -> int:
        return self._take(_I64)

    def string(self) -> str:
        length = self.i16()
        text = self.data[self.pos:self.pos + length].decode()
        self.pos += length
        return text

    def nullable_bytes(self) -> bytes | None:
        length = self.i32()
        if length < 0:
            return None
        raw = self.data[self.pos:self.pos + length]
        self.pos += length
        return raw

    def remaining(self) -> int:
        return len(self.data) - self.pos


def _string(text: str) -> bytes:
    raw = text.encode()
    return _I16.pack(len(raw)) + raw


def _connector_assignments(connectors: list[str], tasks: list[ConnectorTaskId]) -> bytes:
    """[connector [task]]: each connector's entry lists CONNECTOR_TASK first when the connector itself is in it
    (as Kafka's Assignment.asMap builds it)."""
    by_connector: dict[str, list[int]] = {}
    for connector in connectors:
        by_connector.setdefault(connector, []).append(CONNECTOR_TASK)
    for task in tasks:
        by_connector.setdefault(task.connector, []).append(task.task)
    out = [_I32.pack(len(by_connector))]
    for connector, ids in by_connector.items():
        out += [_string(connector), _I32.pack(len(ids)), *(_I32.pack(i) for i in ids)]
    return b"".join(out)


def _read_connector_assignments(reader: _Reader, connectors: list[str], tasks: list[ConnectorTaskId]) -> None:
    count = reader.i32()
    for _ in range(max(count, 0)):  # -1: a null array (v1's nullable fields)
        connector = reader.string()
        for _ in range(reader.i32()):
            task = reader.i32()
            if task == CONNECTOR_TASK:
                connectors.append(connector)
            else:
                tasks.append(ConnectorTaskId(connector, task))


@dataclass(slots=True)
class ConnectAssignment:
    """A SyncGroup assignment (Kafka's ConnectProtocol.Assignment / ExtendedAssignment). Under the cooperative
    protocols `connectors`/`tasks` are what to start (the member adds what it keeps), `revoked_*` what to stop,
    and `delay` the milliseconds after which every member rejoins (a scheduled rebalance)."""

    leader: str
    leader_url: str
    config_offset: int
    connectors: list[str] = field(default_factory=list)
    tasks: list[ConnectorTaskId] = field(default_factory=list)
    error: int = NO_ERROR
    version: int = CONNECT_PROTOCOL_V0
    revoked_connectors: list[str] = field(default_factory=list)
    revoked_tasks: list[ConnectorTaskId] = field(default_factory=list)
    delay: int = 0

    def encode(self) -> bytes:
        head = [_I16.pack(self.version), _I16.pack(self.error), _string(self.leader), _string(self.leader_url),
                _I64.pack(self.config_offset), _connector_assignments(self.connectors, self.tasks)]
        if self.version >= CONNECT_PROTOCOL_V1:
            head += [_connector_assignments(self.revoked_connectors, self.revoked_tasks), _I32.pack(self.delay)]
        return b"".join(head)

    @staticmethod
    def decode(data: bytes) -> ConnectAssignment:
        reader = _Reader(data)
        version = reader.i16()
        error = reader.i16()
        result = ConnectAssignment(reader.string(), reader.string(), reader.i64(), error=error, version=version)
        _read_connector_assignments(reader, result.connectors, result.tasks)
        # v1 tolerates missing trailing fields (TOLERATE_MISSING_FIELDS_WITH_DEFAULTS): a v0 body reads as v1.
        if version >= CONNECT_PROTOCOL_V1 and reader.remaining() >= 4:
            _read_connector_assignments(reader, result.revoked_connectors, result.revoked_tasks)
            if reader.remaining() >= 4:
                result.delay = reader.i32()
        return result


@dataclass(slots=True)
class WorkerState:
    """JoinGroup metadata (ConnectProtocol.WorkerState / ExtendedWorkerState)."""

    url: str
    config_offset: int
    assignment: ConnectAssignment | None = None  # v1/v2: what the worker runs now (None: nothing yet)

    def encode(self, version: int = CONNECT_PROTOCOL_V0) -> bytes:
        out = [_I16.pack(version), _string(self.url), _I64.pack(self.config_offset)]
        if version >= CONNECT_PROTOCOL_V1:
            if self.assignment is None:
                out.append(_I32.pack(-1))
            else:
                allocation = ConnectAssignment(
                    self.assignment.leader, self.assignment.leader_url, self.assignment.config_offset,
                    self.assignment.connectors, self.assignment.tasks, self.assignment.error, version,
                    [], [], self.assignment.delay).encode()  # the allocation carries the metadata's version
                out += [_I32.pack(len(allocation)), allocation]
        return b"".join(out)

    @staticmethod
    def decode(data: bytes) -> WorkerState:
        reader = _Reader(data)
        version = reader.i16()
        state = WorkerState(reader.string(), reader.i64())
        if version >= CONNECT_PROTOCOL_V1 and reader.remaining() >= 4:
            allocation = reader.nullable_bytes()
            if allocation is not None:
                state.assignment = ConnectAssignment.decode(allocation)
        return state


def metadata_request(state: WorkerState, mode: ConnectProtocolCompatibility) -> list[tuple[str, bytes]]:
    """The JoinGroup protocols, most preferred first (IncrementalCooperativeConnectProtocol.metadataRequest):
    sessioned offers [sessioned v2, compatible v1, default v0]; compatible drops sessioned; eager only default."""
    offered = [m for m in (ConnectProtocolCompatibility.SESSIONED, ConnectProtocolCompatibility.COMPATIBLE,
                           ConnectProtocolCompatibility.EAGER) if m.version <= mode.version]
    return [(m.protocol, state.encode(m.version)) for m in offered]


def round_robin(members: list[str], connectors: list[str], task_counts: dict[str, int]
                ) -> dict[str, tuple[list[str], list[ConnectorTaskId]]]:
    """Kafka's EagerAssignor: connectors, then each connector's tasks, dealt round-robin over the members
    sorted by id, so every worker gets a near-equal share."""
    ordered = sorted(members)
    result: dict[str, tuple[list[str], list[ConnectorTaskId]]] = {m: ([], []) for m in ordered}
    index = 0
    for connector in sorted(connectors):
        result[ordered[index % len(ordered)]][0].append(connector)
        index += 1
    for connector in sorted(connectors):
        for task in range(task_counts.get(connector, 0)):
            result[ordered[index % len(ordered)]][1].append(ConnectorTaskId(connector, task))
            index += 1
    return result

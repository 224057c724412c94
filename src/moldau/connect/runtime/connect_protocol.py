"""Kafka Connect's group protocol (ConnectProtocol, protocol type `connect`, protocol name `default`, v0),
and the leader's eager round-robin assignor (EagerAssignor).

    WorkerState := version:int16 url:string config_offset:int64
    Assignment  := version:int16 error:int16 leader:string leader_url:string config_offset:int64
                   [connector:string [task:int32]]        (task -1 stands for the connector itself)

The layouts are Kafka's own, byte for byte, so the bytes a Moldau worker puts in JoinGroup/SyncGroup are
what a Java worker would put there. They are not among Kafka's JSON message schemas (Connect defines them
with its own Schema/Struct classes), so this module writes them out with `struct`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from moldau.connect.runtime.worker_task import ConnectorTaskId

PROTOCOL_TYPE = "connect"
PROTOCOL_NAME = "default"  # eager (CONNECT_PROTOCOL_V0); see docs/connect.md for why not "sessioned"
CONNECTOR_TASK = -1
NO_ERROR, CONFIG_MISMATCH = 0, 1

_I16, _I32, _I64 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")


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


def _string(text: str) -> bytes:
    raw = text.encode()
    return _I16.pack(len(raw)) + raw


@dataclass(slots=True, frozen=True)
class WorkerState:
    url: str
    config_offset: int

    def encode(self) -> bytes:
        return _I16.pack(0) + _string(self.url) + _I64.pack(self.config_offset)

    @staticmethod
    def decode(data: bytes) -> WorkerState:
        reader = _Reader(data)
        reader.i16()  # version: v1/v2 add fields after these, which we do not need
        return WorkerState(reader.string(), reader.i64())


@dataclass(slots=True)
class ConnectAssignment:
    leader: str
    leader_url: str
    config_offset: int
    connectors: list[str] = field(default_factory=list)
    tasks: list[ConnectorTaskId] = field(default_factory=list)
    error: int = NO_ERROR

    def encode(self) -> bytes:
        by_connector: dict[str, list[int]] = {c: [CONNECTOR_TASK] for c in self.connectors}
        for task in self.tasks:
            by_connector.setdefault(task.connector, []).append(task.task)
        out = [_I16.pack(0), _I16.pack(self.error), _string(self.leader), _string(self.leader_url),
               _I64.pack(self.config_offset), _I32.pack(len(by_connector))]
        for connector, ids in by_connector.items():
            out += [_string(connector), _I32.pack(len(ids)), *(_I32.pack(i) for i in ids)]
        return b"".join(out)

    @staticmethod
    def decode(data: bytes) -> ConnectAssignment:
        reader = _Reader(data)
        reader.i16()
        error = reader.i16()
        result = ConnectAssignment(reader.string(), reader.string(), reader.i64(), error=error)
        for _ in range(reader.i32()):
            connector = reader.string()
            for _ in range(reader.i32()):
                task = reader.i32()
                if task == CONNECTOR_TASK:
                    result.connectors.append(connector)
                else:
                    result.tasks.append(ConnectorTaskId(connector, task))
        return result


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

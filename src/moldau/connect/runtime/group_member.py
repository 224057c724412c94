"""Group membership for distributed workers over the Kafka protocol (WorkerGroupMember / WorkerCoordinator).

confluent-kafka's consumer only speaks the `consumer` protocol type, so workers join their group directly:
FindCoordinator, JoinGroup (protocol type `connect`), SyncGroup, Heartbeat, LeaveGroup, through Moldau's
small blocking client and its generated codec. Nothing here is Moldau-specific: any Kafka-compatible
broker's group coordinator serves it.

Eager protocol: before (re)joining, the worker gives up everything it runs (`on_revoke`), so a connector or
task never runs on two workers at once; then the leader deals out all connectors and tasks
(`connect_protocol.round_robin`) and each worker starts its share (`on_assign`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from moldau.client.client import Client
from moldau.connect.runtime.connect_protocol import (
    PROTOCOL_NAME,
    PROTOCOL_TYPE,
    ConnectAssignment,
    WorkerState,
)
from moldau.errors import MoldauError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)
RETRY_BACKOFF_S = 0.5
_REJOIN = {ErrorCode.REBALANCE_IN_PROGRESS}
_RESET = {ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.FENCED_INSTANCE_ID}
_COORDINATOR = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}


class GroupError(MoldauError):
    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: {ErrorCode(code).name}")
        self.code = ErrorCode(code)


Assignor = Callable[[dict[str, WorkerState]], dict[str, ConnectAssignment]]


class WorkerGroupMember:
    def __init__(self, bootstrap: str, group_id: str, url: str, *, session_timeout_ms: int,
                 rebalance_timeout_ms: int, heartbeat_interval_ms: int, config_offset: Callable[[], int],
                 assignor: Assignor, on_revoke: Callable[[], None],
                 on_assign: Callable[[ConnectAssignment, int], None]) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.url = url
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000
        self.config_offset = config_offset
        self.assignor = assignor
        self.on_revoke = on_revoke
        self.on_assign = on_assign
        self.member_id = ""
        self.generation = -1
        self.leader_id = ""
        self._client: Client | None = None
        self._rejoin = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"connect-group-{group_id}", daemon=True)
        self.assigned = threading.Event()  # set after the first successful SyncGroup

    # -- control -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_rejoin(self) -> None:
        self._rejoin.set()

    @property
    def is_leader(self) -> bool:
        return bool(self.member_id) and self.member_id == self.leader_id

    def stop(self) -> None:
        self._stop.set()
        self._rejoin.set()
        self._thread.join(self.rebalance_timeout_ms / 1000 + 10)
        if self._client is not None:
            try:
                if self.member_id:
                    identity = messages.LeaveGroupRequest.MemberIdentity(member_id=self.member_id,
                                                                         reason="the worker is shutting down")
                    self._client.send(13, messages.LeaveGroupRequest(group_id=self.group_id,
                                                                     member_id=self.member_id, members=[identity]))
            except (MoldauError, OSError):
                pass  # the session timeout removes us anyway
            self._client.close()

    # -- the membership loop -----------------------------------------------------------------------

    def _run(self) -> None:
        revoked = True
        while not self._stop.is_set():
            try:
                if not revoked:
                    self.on_revoke()
                    revoked = True
                assignment = self._join_and_sync()
                if assignment is None:
                    continue
                self.on_assign(assignment, self.generation)
                revoked = False
                self.assigned.set()
                self._heartbeat_until_rejoin()
            except GroupError as exc:
                log.info("connect group %s: %s; rejoining", self.group_id, exc)
                if exc.code in _RESET:
                    self.member_id = ""
                if exc.code in _COORDINATOR:
                    self._disconnect()
                self._stop.wait(RETRY_BACKOFF_S)
            except (MoldauError, OSError) as exc:
                log.warning("connect group %s: coordinator connection failed: %s", self.group_id, exc)
                self._disconnect()
                self._stop.wait(RETRY_BACKOFF_S)
            except Exception:
                log.exception("connect group %s: unexpected failure; rejoining", self.group_id)
                self._stop.wait(RETRY_BACKOFF_S)
        if not revoked:
            self.on_revoke()

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _coordinator(self) -> Client:
        if self._client is not None:
            return self._client
        timeout = self.rebalance_timeout_ms / 1000 + 10  # JoinGroup blocks up to the rebalance timeout
        with Client(self.bootstrap, client_id=f"connect-{self.url}", timeout=timeout) as bootstrap:
            version = bootstrap.version_for(10)
            request = messages.FindCoordinatorRequest(key=self.group_id, key_type=0,
                                                      coordinator_keys=[self.group_id])
            response = bootstrap.send(10, request, version=version)
            found: Any = response.coordinators[0] if version >= 4 else response
            if found.error_code:
                raise GroupError(found.error_code, "FindCoordinator")
            host, port = found.host, found.port
        self._client = Client(f"{host}:{port}", client_id=f"connect-{self.url}", timeout=timeout)
        return self._client

    def _join_and_sync(self) -> ConnectAssignment | None:
        client = self._coordinator()
        self._rejoin.clear()
        metadata = WorkerState(self.url, self.config_offset()).encode()
        protocol = messages.JoinGroupRequest.JoinGroupRequestProtocol(name=PROTOCOL_NAME, metadata=metadata)
        join = client.send(11, messages.JoinGroupRequest(
            group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
            protocol_type=PROTOCOL_TYPE, protocols=[protocol], reason="connect worker (re)joining"))
        if join.error_code == ErrorCode.MEMBER_ID_REQUIRED:  # KIP-394: join again with the given id
            self.member_id = join.member_id
            return None
        if join.error_code:
            raise GroupError(join.error_code, "JoinGroup")
        self.member_id, self.generation, self.leader_id = join.member_id, join.generation_id, join.leader
        assignments = []
        if self.is_leader:
            states = {m.member_id: WorkerState.decode(m.metadata) for m in join.members}
            computed = self.assignor(states)
            assignments = [messages.SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a.encode())
                           for m, a in computed.items()]
        sync = client.send(14, messages.SyncGroupRequest(
            group_id=self.group_id, generation_id=self.generation, member_id=self.member_id,
            protocol_type=PROTOCOL_TYPE, protocol_name=PROTOCOL_NAME, assignments=assignments))
        if sync.error_code:
            raise GroupError(sync.error_code, "SyncGroup")
        assignment = ConnectAssignment.decode(sync.assignment)
        log.info("connect group %s generation %d: member %s%s assigned connectors %s tasks %s", self.group_id,
                 self.generation, self.member_id, " (leader)" if self.is_leader else "", assignment.connectors,
                 [str(t) for t in assignment.tasks])
        return assignment

    def _heartbeat_until_rejoin(self) -> None:
        client = self._coordinator()
        while not self._stop.is_set():
            if self._rejoin.wait(self.heartbeat_interval_s):
                return  # a config change asks for a new assignment
            started = time.monotonic()
            response = client.send(12, messages.HeartbeatRequest(group_id=self.group_id,
                                                                 generation_id=self.generation,
                                                                 member_id=self.member_id))
            if response.error_code in _REJOIN:
                return
            if response.error_code:
                raise GroupError(response.error_code, "Heartbeat")
            log.debug("heartbeat took %.3fs", time.monotonic() - started)

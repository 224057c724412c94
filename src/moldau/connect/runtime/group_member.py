"""Group membership for distributed workers over the Kafka protocol (WorkerGroupMember / WorkerCoordinator).

confluent-kafka's consumer only speaks the `consumer` protocol type, so workers join their group directly:
FindCoordinator, JoinGroup (protocol type `connect`), SyncGroup, Heartbeat, LeaveGroup, through Moldau's
small blocking client and its generated codec. Nothing here is Moldau-specific: any Kafka-compatible
broker's group coordinator serves it.

The worker offers the protocols its `connect.protocol` allows (`sessioned`, `compatible`, `default`); the
broker elects one every member supports, and it decides how this member behaves (WorkerCoordinator):

- eager (`default`): before (re)joining, the worker gives up everything it runs (`on_revoke`), so a connector
  or task never runs on two workers at once; the leader deals out everything again.
- cooperative (`compatible`/`sessioned`, KIP-415): the worker keeps running what it owns through the
  rebalance and reports it in its metadata. The assignment names what to start and what to stop (revoked);
  the worker stops the revoked work (its offsets committed) before it rejoins for the follow-up round, which
  gives that work to its new owner. A non-zero `delay` in the assignment is a scheduled rebalance: every
  member rejoins when it ends, so the leader can reassign the work of a member that did not come back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from moldau.client.client import Client
from moldau.connect.runtime.connect_protocol import (
    PROTOCOL_TYPE,
    ConnectAssignment,
    ConnectProtocolCompatibility,
    WorkerState,
    metadata_request,
)
from moldau.connect.runtime.worker_task import ConnectorTaskId
from moldau.errors import MoldauError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)
RETRY_BACKOFF_S = 0.5
EAGER = ConnectProtocolCompatibility.EAGER
_REJOIN = {ErrorCode.REBALANCE_IN_PROGRESS}
_RESET = {ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.FENCED_INSTANCE_ID}
_COORDINATOR = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}


class GroupError(MoldauError):
    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: {ErrorCode(code).name}")
        self.code = ErrorCode(code)


# The leader's assignor: (elected protocol, member id -> metadata) -> member id -> assignment.
Assignor = Callable[[ConnectProtocolCompatibility, dict[str, WorkerState]], dict[str, ConnectAssignment]]
Revoke = Callable[[list[str], list[ConnectorTaskId]], None]


class WorkerGroupMember:
    def __init__(self, bootstrap: str, group_id: str, url: str, *, session_timeout_ms: int,
                 rebalance_timeout_ms: int, heartbeat_interval_ms: int, config_offset: Callable[[], int],
                 assignor: Assignor, on_revoke: Revoke, on_assign: Callable[[ConnectAssignment, int], None],
                 protocol: ConnectProtocolCompatibility = ConnectProtocolCompatibility.SESSIONED) -> None:
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
        self.mode = protocol  # what this worker offers (connect.protocol)
        self.current_protocol = protocol  # what the group elected in the last completed rebalance
        self.member_id = ""
        self.generation = -1
        self.last_completed_generation = -1
        self.leader_id = ""
        self.snapshot: ConnectAssignment | None = None  # everything this worker owns now
        self._scheduled_rejoin: float | None = None  # monotonic time of a scheduled rebalance
        self._unreachable_since: float | None = None
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

    def _revoke_all(self) -> None:
        if self.snapshot is not None:
            owned, self.snapshot = self.snapshot, None
            self.on_revoke(list(owned.connectors), list(owned.tasks))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.current_protocol is EAGER:
                    self._revoke_all()  # eager: give everything up before rejoining
                assignment = self._join_and_sync()
                self._unreachable_since = None
                if assignment is None:
                    continue
                self._complete(assignment)
                self.assigned.set()
                self._heartbeat_until_rejoin()
            except GroupError as exc:
                log.info("connect group %s: %s; rejoining", self.group_id, exc)
                if exc.code in _RESET:
                    # Cooperative: keep running; our metadata tells the leader what we still run, and it
                    # revokes whatever was meanwhile given to another member (duplicates). Kafka does the same.
                    self.member_id, self.generation = "", -1
                if exc.code in _COORDINATOR:
                    self._disconnect()
                self._stop.wait(RETRY_BACKOFF_S)
            except (MoldauError, OSError) as exc:
                log.warning("connect group %s: coordinator connection failed: %s", self.group_id, exc)
                self._disconnect()
                self._coordinator_unreachable()
                self._stop.wait(RETRY_BACKOFF_S)
            except Exception:
                log.exception("connect group %s: unexpected failure; rejoining", self.group_id)
                self._stop.wait(RETRY_BACKOFF_S)
        self._revoke_all()

    def _coordinator_unreachable(self) -> None:
        """Kafka's WorkerCoordinator.poll: a worker that cannot reach the coordinator for a heartbeat interval
        stops its work rather than run it outside the group (the others may be given it)."""
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= self.heartbeat_interval_s and self.snapshot is not None:
            log.info("connect group %s: coordinator unreachable for %.1fs; revoking %s", self.group_id,
                     now - self._unreachable_since, self.snapshot)
            self._revoke_all()

    def _complete(self, assignment: ConnectAssignment) -> None:
        """Apply a SyncGroup assignment (WorkerCoordinator.onJoinComplete + the herder's follow-ups)."""
        if self.current_protocol is not EAGER:
            if assignment.revoked_connectors or assignment.revoked_tasks:
                self.on_revoke(list(assignment.revoked_connectors), list(assignment.revoked_tasks))
            if self.snapshot is not None:  # add what we keep to what we are told to start
                revoked_tasks = set(assignment.revoked_tasks)
                for connector in self.snapshot.connectors:
                    if connector not in assignment.revoked_connectors and connector not in assignment.connectors:
                        assignment.connectors.append(connector)
                new_tasks = set(assignment.tasks)
                assignment.tasks += [t for t in self.snapshot.tasks if t not in revoked_tasks and t not in new_tasks]
        elif self.snapshot is not None:
            # A cooperative group fell back to eager (an eager-only worker joined): stop what we ran, the
            # eager assignment is complete.
            self._revoke_all()
        self.snapshot = assignment
        self.last_completed_generation = self.generation
        self.on_assign(assignment, self.generation)
        if assignment.error:
            self._rejoin.set()  # the leader was behind the config topic: try again
        if assignment.revoked_connectors or assignment.revoked_tasks:
            self._rejoin.set()  # the follow-up round hands the revoked work to its new owner
        self._scheduled_rejoin = time.monotonic() + assignment.delay / 1000 if assignment.delay > 0 else None
        if assignment.delay > 0:
            log.info("connect group %s: scheduled rebalance in %d ms", self.group_id, assignment.delay)
        assignment.revoked_connectors, assignment.revoked_tasks = [], []

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
        state = WorkerState(self.url, self.config_offset(), self.snapshot)
        protocols = [messages.JoinGroupRequest.JoinGroupRequestProtocol(name=name, metadata=metadata)
                     for name, metadata in metadata_request(state, self.mode)]
        join = client.send(11, messages.JoinGroupRequest(
            group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
            protocol_type=PROTOCOL_TYPE, protocols=protocols, reason="connect worker (re)joining"))
        if join.error_code == ErrorCode.MEMBER_ID_REQUIRED:  # KIP-394: join again with the given id
            self.member_id = join.member_id
            return None
        if join.error_code:
            raise GroupError(join.error_code, "JoinGroup")
        self.member_id, self.generation, self.leader_id = join.member_id, join.generation_id, join.leader
        elected = ConnectProtocolCompatibility.from_protocol(join.protocol_name)
        assignments = []
        if self.is_leader:
            states = {m.member_id: WorkerState.decode(m.metadata) for m in join.members}
            computed = self.assignor(elected, states)
            assignments = [messages.SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a.encode())
                           for m, a in computed.items()]
        sync = client.send(14, messages.SyncGroupRequest(
            group_id=self.group_id, generation_id=self.generation, member_id=self.member_id,
            protocol_type=PROTOCOL_TYPE, protocol_name=join.protocol_name, assignments=assignments))
        if sync.error_code:
            raise GroupError(sync.error_code, "SyncGroup")
        previous, self.current_protocol = self.current_protocol, elected
        if previous is not elected:
            log.info("connect group %s: protocol %s elected (was %s)", self.group_id, elected.protocol,
                     previous.protocol)
        assignment = ConnectAssignment.decode(sync.assignment)
        log.info("connect group %s generation %d (%s): member %s%s assigned connectors %s tasks %s, revoked "
                 "connectors %s tasks %s, delay %d", self.group_id, self.generation, elected.protocol,
                 self.member_id, " (leader)" if self.is_leader else "", assignment.connectors,
                 [str(t) for t in assignment.tasks], assignment.revoked_connectors,
                 [str(t) for t in assignment.revoked_tasks], assignment.delay)
        return assignment

    def _heartbeat_until_rejoin(self) -> None:
        client = self._coordinator()
        while not self._stop.is_set():
            wait = self.heartbeat_interval_s
            if self._scheduled_rejoin is not None:
                wait = max(0.0, min(wait, self._scheduled_rejoin - time.monotonic()))
            if self._rejoin.wait(wait):
                return  # a config change or a revocation asks for a new assignment
            if self._scheduled_rejoin is not None and time.monotonic() >= self._scheduled_rejoin:
                self._scheduled_rejoin = None
                return  # the scheduled rebalance (KIP-415): the leader may now reassign lost work
            started = time.monotonic()
            response = client.send(12, messages.HeartbeatRequest(group_id=self.group_id,
                                                                 generation_id=self.generation,
                                                                 member_id=self.member_id))
            if response.error_code in _REJOIN:
                return
            if response.error_code:
                raise GroupError(response.error_code, "Heartbeat")
            log.debug("heartbeat took %.3fs", time.monotonic() - started)

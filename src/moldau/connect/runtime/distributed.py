"""Distributed mode (connect-distributed.sh): workers sharing `group.id` form a group, share configs,
offsets and statuses through compacted topics, and split connectors and tasks among themselves.

Any worker serves any REST request: config changes are written to the config topic, which every worker
follows. The group leader watches the config for changes in what there is to assign (connectors, task
counts) and starts a rebalance when it changes; the owner of a connector regenerates its task configs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from moldau.connect.api.errors import (
    BadRequestException,
    ConnectException,
    ConnectRestException,
    NotFoundException,
)
from moldau.connect.plugins import Plugins
from moldau.connect.runtime.connect_protocol import (
    ConnectAssignment,
    ConnectProtocolCompatibility,
    WorkerState,
    round_robin,
)
from moldau.connect.runtime.eos_source_task import transactional_id
from moldau.connect.runtime.group_member import WorkerGroupMember
from moldau.connect.runtime.herder import Assignment, Herder
from moldau.connect.runtime.incremental_assignor import ConnectorsAndTasks, IncrementalCooperativeAssignor
from moldau.connect.runtime.session_key import SessionKey, check, sign
from moldau.connect.runtime.status import State, Status
from moldau.connect.runtime.worker import Worker
from moldau.connect.runtime.worker_config import WorkerConfig
from moldau.connect.runtime.worker_task import ConnectorTaskId
from moldau.connect.runtime.zombie_fencing import FENCING_TIMEOUT_S, fence_producers
from moldau.connect.storage.configs import ClusterConfigState
from moldau.connect.storage.kafka_log import ensure_topic
from moldau.connect.storage.kafka_stores import (
    KafkaConfigBackingStore,
    KafkaOffsetBackingStore,
    KafkaStatusBackingStore,
)

log = logging.getLogger(__name__)
Shape = tuple[tuple[str, int], ...]
NO_SESSION_KEY = "no session key yet"


def shape_of(state: ClusterConfigState) -> Shape:
    """What the assignment depends on: the connectors and how many tasks each has."""
    return tuple(sorted((c, len(state.tasks.get(c, []))) for c in state.connectors))


class DistributedHerder(Herder):
    config_store: KafkaConfigBackingStore

    def __init__(self, worker: Worker, config_store: KafkaConfigBackingStore, status_store: KafkaStatusBackingStore,
                 url: str, plugin_registry: Plugins | None = None) -> None:
        super().__init__(worker, config_store, status_store, plugin_registry)
        self.url = url
        config = worker.config
        self.current = Assignment()
        self._assigned_shape: Shape | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._restarts: list[tuple[str, bool, bool]] = []
        self._loop_thread = threading.Thread(target=self._loop, name="connect-herder", daemon=True)
        self.protocol = ConnectProtocolCompatibility.from_config(str(config.get("connect.protocol")))
        # The leader's assignor keeps state between the rounds it leads (what it handed out, held lost work).
        self.incremental_assignor = IncrementalCooperativeAssignor(int(config.get("scheduled.rebalance.max.delay.ms")))
        self.member = WorkerGroupMember(
            config.bootstrap_servers, config.get("group.id"), url,
            session_timeout_ms=int(config.get("session.timeout.ms")),
            rebalance_timeout_ms=int(config.get("rebalance.timeout.ms")),
            heartbeat_interval_ms=int(config.get("heartbeat.interval.ms")),
            config_offset=lambda: self.config_store.snapshot().offset,
            assignor=self._assign, on_revoke=self._revoke, on_assign=self._on_assign, protocol=self.protocol)
        config_store.listeners.append(self._wake.set)
        config_store.restart_listeners.append(self._restart_requested)
        self._fencing = threading.Lock()  # one fencing round at a time (tasks start on several threads)
        worker.zombie_fencer = self

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_thread.start()
        self.member.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.member.stop()  # revokes (stops) everything this worker runs, then leaves the group
        self._loop_thread.join(30)
        self.worker.stop()
        for store in (self.config_store, self.status_store, self.worker.offset_store):
            store.stop()

    def wait_for_assignment(self, timeout_s: float = 60.0) -> bool:
        return self.member.assigned.wait(timeout_s)

    # -- group callbacks (membership thread) --------------------------------------------------------

    def _assign(self, protocol: ConnectProtocolCompatibility, members: dict[str, WorkerState]
                ) -> dict[str, ConnectAssignment]:
        self.config_store.refresh()
        state = self.config_store.snapshot()
        self._assigned_shape = shape_of(state)
        task_counts = {c: len(t) for c, t in state.tasks.items() if c in state.connectors}
        if protocol is ConnectProtocolCompatibility.EAGER:
            dealt = round_robin(list(members), list(state.connectors), task_counts)
            return {m: ConnectAssignment(self.member.member_id, self.url, state.offset, conns, tasks)
                    for m, (conns, tasks) in dealt.items()}
        configured = ConnectorsAndTasks(set(state.connectors), {ConnectorTaskId(c, i) for c, n in task_counts.items()
                                                                for i in range(n)})
        owned = {m: ConnectorsAndTasks(set(s.assignment.connectors), set(s.assignment.tasks)) if s.assignment
                 else ConnectorsAndTasks() for m, s in members.items()}
        changes, delay = self.incremental_assignor.perform(configured, owned, self.member.last_completed_generation,
                                                           self.member.generation)
        return {m: ConnectAssignment(self.member.member_id, self.url, state.offset, c.connectors, c.tasks,
                                     version=protocol.version, revoked_connectors=c.revoked_connectors,
                                     revoked_tasks=c.revoked_tasks, delay=delay)
                for m, c in changes.items()}

    def _revoke(self, connectors: list[str], tasks: list[ConnectorTaskId]) -> None:
        """Stop what the group takes away (all of it under eager), committing task offsets as they stop,
        before this worker rejoins (DistributedHerder's RebalanceListener.onRevoked)."""
        with self._lock:
            gone = set(connectors)
            self.current = Assignment(self.current.connectors - gone, self.current.tasks - set(tasks))
            self.worker.stop_tasks([t for t in tasks if t in self.worker.tasks])
            for task_id in tasks:
                self._running_task_configs.pop(task_id, None)
                self._running_configs.pop(f"task:{task_id}", None)
            snapshot = self.config_store.snapshot()
            for name in connectors:
                if name in self.worker.connectors:
                    self.worker.stop_connector(name)
                self._running_configs.pop(name, None)
                if name in snapshot.connectors:
                    self.status_store.put_connector(name, Status(State.UNASSIGNED, self.worker.worker_id))
            log.info("connect herder: stopped revoked connectors %s tasks %s", connectors, [str(t) for t in tasks])

    def _on_assign(self, assignment: ConnectAssignment, generation: int) -> None:
        with self._lock:
            self.worker.generation = generation
            self.current = Assignment(set(assignment.connectors), set(assignment.tasks))
        if not self.member.is_leader:
            self._assigned_shape = None
        self._wake.set()

    # -- the herder loop ---------------------------------------------------------------------------

    def request_reconcile(self) -> None:
        self._wake.set()

    def assignment(self, state: ClusterConfigState) -> Assignment:
        return self.current

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._maybe_rotate_session_key()
                self._handle_restarts()
                self.reconcile()
                if self.member.is_leader and self._assigned_shape is not None and \
                        shape_of(self.config_store.snapshot()) != self._assigned_shape:
                    self.member.request_rejoin()  # new connectors or task counts: deal them out again
            except Exception:
                log.exception("connect herder: reconcile failed")

    # -- KIP-507: session keys and internal requests ------------------------------------------------

    @property
    def request_validation_enabled(self) -> bool:
        return self.member.current_protocol is ConnectProtocolCompatibility.SESSIONED

    def _maybe_rotate_session_key(self) -> None:
        """The leader writes a session key when there is none or it is older than inter.worker.key.ttl.ms."""
        if not (self.member.is_leader and self.request_validation_enabled and self.member.assigned.is_set()):
            return
        key = self.config_store.session_key
        ttl_ms = int(self.worker.config.get("inter.worker.key.ttl.ms"))
        if key is None or time.time() * 1000 >= key.creation_timestamp + ttl_ms:
            size = self.worker.config.get("inter.worker.key.size")
            new = SessionKey.generate(str(self.worker.config.get("inter.worker.key.generation.algorithm")),
                                      int(size) if size else None)
            self.config_store.put_session_key(new)
            log.info("connect herder: distributed a new session key (%s)", new.algorithm)

    def write_task_configs(self, name: str, configs: list[dict[str, str]]) -> bool:
        """Only the leader writes task configs (Kafka's DistributedHerder); a follower forwards them to the
        leader's `POST /connectors/{c}/tasks`, signed with the session key under `sessioned`."""
        leader = self.member.snapshot
        if self.member.is_leader or leader is None or not leader.leader_url:
            self.config_store.put_task_configs(name, configs)
            return True
        failure = self._forward_to_leader(leader.leader_url, "POST", f"/connectors/{name}/tasks",
                                          json.dumps(configs).encode(), timeout_s=10)  # the herder lock is held
        if failure is not None:
            report = log.info if failure == NO_SESSION_KEY else log.warning
            report("connect herder: forwarding task configs of %s to the leader %s failed (%s); retrying",
                   name, leader.leader_url, failure)
            return False
        log.info("connect herder: forwarded %d task configs of %s to the leader %s", len(configs), name,
                 leader.leader_url)
        self.config_store.refresh()
        return True

    def put_task_configs_internal(self, name: str, configs: list[dict[str, str]], headers: Any, body: bytes) -> None:
        """`POST /connectors/{c}/tasks` (InternalClusterResource.putTaskConfigs)."""
        if self.request_validation_enabled:
            check(headers, body, self.config_store.session_key,
                  [str(a) for a in self.worker.config.get("inter.worker.verification.algorithms")])
        if not self.member.is_leader:
            raise ConnectRestException(409, "Only the leader may write task configurations.")
        if name not in self.config_store.snapshot().connectors:
            raise NotFoundException(f"Connector {name} not found")
        self.config_store.put_task_configs(name, [{str(k): str(v) for k, v in c.items()} for c in configs])
        self.request_reconcile()

    # -- KIP-618: zombie fencing before a new generation of exactly-once source tasks ---------------

    def task_generation(self, connector: str) -> int:
        return self.config_store.snapshot().task_generations.get(connector, 0)

    def fence_zombies(self, task_id: ConnectorTaskId, stopping: threading.Event) -> None:
        """On a task's thread, before its producer starts: the leader fences, a follower asks the leader with
        `PUT /connectors/{c}/fence`. Leader changes are retried for up to FENCING_TIMEOUT_S."""
        deadline = time.monotonic() + FENCING_TIMEOUT_S
        while True:
            self.config_store.refresh()
            if task_id.connector not in self.config_store.snapshot().pending_fencing:
                return
            if self.member.is_leader:
                self.fence_zombie_source_tasks(task_id.connector)
                return
            failure = self._forward_fencing(task_id.connector)
            if failure is None:
                return
            if time.monotonic() >= deadline:
                raise ConnectException(f"Zombie fencing for {task_id.connector} failed: {failure}")
            log.warning("connect herder: zombie fencing for %s through the leader failed (%s); retrying",
                        task_id.connector, failure)
            if stopping.wait(1.0):
                raise ConnectException(f"Task {task_id} stopped while waiting for zombie fencing")

    def _forward_fencing(self, connector: str) -> str | None:
        """Ask the leader for a fencing round; the failure's text, or None once it is done."""
        leader = self.member.snapshot
        if leader is None or not leader.leader_url:
            return "no group leader known yet"
        return self._forward_to_leader(leader.leader_url, "PUT", f"/connectors/{connector}/fence", b"",
                                       timeout_s=FENCING_TIMEOUT_S)

    def _forward_to_leader(self, leader_url: str, method: str, path: str, body: bytes,
                           timeout_s: float) -> str | None:
        """One internal request to the leader's REST API, signed with the session key under `sessioned`
        (KIP-507); the failure's text, or None once the leader answered with success."""
        headers = {"Content-Type": "application/json"}
        if self.request_validation_enabled:
            key = self.config_store.session_key
            if key is None:
                return NO_SESSION_KEY
            headers.update(sign(key, body, str(self.worker.config.get("inter.worker.signature.algorithm"))))
        request = urllib.request.Request(f"{leader_url}{path}?forward=false", data=body, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s):
                return None
        except (urllib.error.URLError, OSError) as exc:
            return exc.read().decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else str(exc)

    def fence_zombies_internal(self, connector: str, headers: Any, body: bytes) -> None:
        """`PUT /connectors/{c}/fence` (InternalClusterResource.fenceZombies), from a follower's task."""
        if self.request_validation_enabled:
            check(headers, body, self.config_store.session_key,
                  [str(a) for a in self.worker.config.get("inter.worker.verification.algorithms")])
        if not self.member.is_leader:
            raise ConnectRestException(409, "Only the leader may perform zombie fencing.")
        self.fence_zombie_source_tasks(connector)

    def fence_zombie_source_tasks(self, connector: str) -> None:
        """The leader's fencing round (doFenceZombieSourceTasks): while the connector's task configs are newer
        than its task count record, fence the transactional ids of the previous count's tasks, then record
        the current count. Nothing needs fencing the first time, or when one task follows one task (the new
        task's own init_transactions fences the old one)."""
        with self._fencing:
            self.config_store.refresh()
            state = self.config_store.snapshot()
            if connector not in state.connectors:
                raise NotFoundException(f"Connector {connector} not found")
            if self.connector_type(connector) != "source":
                raise BadRequestException(f"Connector {connector} is not a source connector")
            if connector not in state.pending_fencing:
                return
            count = len(state.tasks.get(connector, []))
            previous = state.task_count_records.get(connector)
            if previous is not None and (previous, count) != (1, 1):
                group = str(self.worker.config.get("group.id"))
                fence_producers(self.worker.connector_client_config("admin", state.connectors[connector]),
                                [transactional_id(group, connector, task) for task in range(previous)])
            self.config_store.put_task_count_record(connector, count)
            log.info("connect herder: %s may start its %d exactly-once task(s) (previous generation: %s)",
                     connector, count, previous)

    def verify_task(self, task_id: ConnectorTaskId, generation: int) -> None:
        """verifyTaskGenerationAndOwnership: a task that started while its configs were replaced, or while it
        was moved to another worker, must not run."""
        if self.task_generation(task_id.connector) != generation:
            raise ConnectException(f"Task {task_id} was started with task configs that have since been replaced")
        if task_id not in self.current.tasks:
            raise ConnectException(f"Task {task_id} is no longer assigned to this worker")

    # -- restarts (KIP-745 requests travel through the config topic) -------------------------------

    def _restart_requested(self, connector: str, include_tasks: bool, only_failed: bool) -> None:
        with self._lock:
            self._restarts.append((connector, include_tasks, only_failed))
        self._wake.set()

    def _handle_restarts(self) -> None:
        with self._lock:
            requests, self._restarts = self._restarts, []
            for connector, include_tasks, only_failed in requests:
                status = self.status_store.get_connector(connector)
                restart_connector = connector in self.current.connectors and (
                    not only_failed or (status is not None and status.state in (State.FAILED, State.RESTARTING)))
                tasks = []
                for task_id in self.current.tasks:
                    if task_id.connector != connector or not include_tasks:
                        continue
                    task_status = self.status_store.get_task(connector, task_id.task)
                    if not only_failed or (task_status is not None and task_status.state in
                                           (State.FAILED, State.RESTARTING)):
                        tasks.append(task_id.task)
                if restart_connector or tasks:
                    super().do_restart(connector, restart_connector, tasks)

    def submit_restart(self, name: str, include_tasks: bool, only_failed: bool, connector: bool,
                       tasks: list[int]) -> None:
        self.config_store.put_restart_request(name, include_tasks, only_failed)

    def restart_task(self, name: str, task: int) -> None:
        """Run here, or forward to the worker that owns the task (Kafka forwards to the owner's REST API)."""
        self.task_status(name, task)
        if ConnectorTaskId(name, task) in self.current.tasks:
            with self._lock:
                super().do_restart(name, False, [task])
            return
        owner = self.status_store.get_task(name, task)
        if owner is None or owner.worker_id == self.worker.worker_id:
            raise ConnectException(f"Task {name}-{task} is not assigned to any worker right now; retry later")
        req = urllib.request.Request(f"http://{owner.worker_id}/connectors/{name}/tasks/{task}/restart?forward=false",
                                     method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30):
            pass


def distributed_herder(props: dict[str, Any], worker_id: str, url: str,
                       plugin_registry: Plugins | None = None) -> DistributedHerder:
    config = WorkerConfig(props)
    missing = [k for k in ("config.storage.topic", "offset.storage.topic", "status.storage.topic") if not config.get(k)]
    if missing:
        raise ConnectException(f"Distributed mode (group.id={config.get('group.id')}) needs {', '.join(missing)}")
    admin = config.client_config("admin")
    ensure_topic(admin, config.get("config.storage.topic"), 1, int(config.get("config.storage.replication.factor")))
    ensure_topic(admin, config.get("offset.storage.topic"), int(config.get("offset.storage.partitions")),
                 int(config.get("offset.storage.replication.factor")))
    ensure_topic(admin, config.get("status.storage.topic"), int(config.get("status.storage.partitions")),
                 int(config.get("status.storage.replication.factor")))
    client = config.client_config("producer")
    offsets = KafkaOffsetBackingStore(config.get("offset.storage.topic"), client)
    status = KafkaStatusBackingStore(config.get("status.storage.topic"), client)
    configs = KafkaConfigBackingStore(config.get("config.storage.topic"), client)
    for store in (offsets, status, configs):
        store.start()
    worker = Worker(config, worker_id, offsets, status, plugin_registry)
    return DistributedHerder(worker, configs, status, url, plugin_registry)


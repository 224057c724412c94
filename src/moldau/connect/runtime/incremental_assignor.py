"""The leader's incremental cooperative assignor (KIP-415; Kafka's IncrementalCooperativeAssignor).

Each member's JoinGroup metadata says what it runs now. The leader keeps, between rebalances it leads, the
assignment it handed out (`previous`), and from it, the configuration and the members' reports derives:

- deleted: previous - configured, revoked from whoever runs them;
- duplicated: run by more than one member (a member that came back after its work was moved), revoked;
- lost: previous - active - deleted (the work of members that left). Held, not reassigned, for
  `scheduled.rebalance.max.delay.ms` in case the member comes back; every member gets that delay in its
  assignment and rejoins when it ends; then the lost work goes to the members that joined meanwhile, or is
  balanced like new work;
- created: configured - previous - active, dealt to the least loaded members;
- load-balancing revocations: when a member runs more than its balanced share (a new member joined), the
  excess is revoked in this round; the member stops it and rejoins, and the follow-up round deals it out as
  new work. Two revoking rounds in a row back off exponentially (40 ms, 1.6 s, ...), up to the max delay.

A member keeps everything that is neither revoked nor deleted: it is never stopped by a rebalance.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from moldau.connect.runtime.worker_task import ConnectorTaskId

log = logging.getLogger(__name__)
REVOCATION_BACKOFF_MULTIPLIER = 40  # Kafka: ExponentialBackoff(1, 40, maxDelay, 0)


def _task_key(task: ConnectorTaskId) -> tuple[str, int]:
    return task.connector, task.task


@dataclass(slots=True)
class ConnectorsAndTasks:
    connectors: set[str] = field(default_factory=set)
    tasks: set[ConnectorTaskId] = field(default_factory=set)

    def empty(self) -> bool:
        return not self.connectors and not self.tasks

    def minus(self, *others: ConnectorsAndTasks) -> ConnectorsAndTasks:
        result = ConnectorsAndTasks(set(self.connectors), set(self.tasks))
        for other in others:
            result.connectors -= other.connectors
            result.tasks -= other.tasks
        return result

    def add(self, other: ConnectorsAndTasks) -> None:
        self.connectors |= other.connectors
        self.tasks |= other.tasks


@dataclass(slots=True)
class WorkerLoad:
    worker: str
    connectors: list[str] = field(default_factory=list)
    tasks: list[ConnectorTaskId] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.connectors and not self.tasks

    def remove(self, gone: ConnectorsAndTasks) -> None:
        self.connectors = [c for c in self.connectors if c not in gone.connectors]
        self.tasks = [t for t in self.tasks if t not in gone.tasks]


@dataclass(slots=True)
class MemberChange:
    """What one member is told: start `connectors`/`tasks`, stop `revoked_*`."""

    connectors: list[str] = field(default_factory=list)
    tasks: list[ConnectorTaskId] = field(default_factory=list)
    revoked_connectors: list[str] = field(default_factory=list)
    revoked_tasks: list[ConnectorTaskId] = field(default_factory=list)


class IncrementalCooperativeAssignor:
    def __init__(self, max_delay_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_delay_ms = max_delay_ms
        self._now_ms = lambda: int(clock() * 1000)
        self.previous = ConnectorsAndTasks()
        self.previous_revocation = ConnectorsAndTasks()
        self.previous_generation = -1
        self.previous_members: set[str] = set()
        self.revoked_in_previous = False
        self.successive_revoking_rounds = 0
        self.candidates: list[str] = []  # members that joined while lost work was held
        self.scheduled_rebalance = 0  # when held lost work is due (ms), 0: nothing held
        self.delay = 0

    def _revoking_backoff_ms(self, rounds: int) -> int:
        if self.max_delay_ms == 0:
            return 0
        return int(min(REVOCATION_BACKOFF_MULTIPLIER ** rounds, self.max_delay_ms))

    def perform(self, configured: ConnectorsAndTasks, members: dict[str, ConnectorsAndTasks],
                last_completed_generation: int, generation: int) -> tuple[dict[str, MemberChange], int]:
        """The per-member changes and the scheduled-rebalance delay (ms) for this round."""
        if self.previous_generation != last_completed_generation:
            # This leader did not complete the previous round (new leader, failed sync): its view is stale.
            self.previous = ConnectorsAndTasks()
        active = ConnectorsAndTasks()
        for owned in members.values():
            active.add(owned)
        if not self.previous_revocation.empty():
            # A revocation of the previous round did not take effect: start again from what runs now.
            if self.previous_revocation.connectors & active.connectors or self.previous_revocation.tasks & active.tasks:
                self.previous = ConnectorsAndTasks(set(active.connectors), set(active.tasks))
            self.previous_revocation = ConnectorsAndTasks()

        deleted = self.previous.minus(configured)
        duplicated = _duplicated(members.values())
        lost = self.previous.minus(active, deleted)
        created = configured.minus(self.previous, active)
        log.debug("assignor: deleted %s duplicated %s lost %s created %s", deleted, duplicated, lost, created)

        # What each member runs now, without deleted work: the base for "what is new to this member".
        current = {m: WorkerLoad(m, sorted(o.connectors - deleted.connectors),
                                 sorted(o.tasks - deleted.tasks, key=_task_key)) for m, o in members.items()}
        to_revoke: dict[str, ConnectorsAndTasks] = {m: ConnectorsAndTasks() for m in members}
        for member, owned in members.items():
            to_revoke[member].add(_intersection(owned, deleted))
            to_revoke[member].add(_intersection(owned, duplicated))
        nxt = [WorkerLoad(m, sorted(o.connectors), sorted(o.tasks, key=_task_key)) for m, o in sorted(members.items())]
        for load in nxt:
            load.remove(to_revoke[load.worker])

        reassign = self._handle_lost(lost, nxt)

        if self.delay == 0:
            balancing = _load_balancing_revocations(configured, nxt)
            if balancing and self.revoked_in_previous:
                self.successive_revoking_rounds += 1
                self.delay = self._revoking_backoff_ms(self.successive_revoking_rounds)
                if self.delay:
                    self.scheduled_rebalance = self._now_ms() + self.delay
                    log.debug("assignor: revoking again; skipping revocations for %d ms", self.delay)
                else:
                    self._revoke(balancing, to_revoke, nxt)
            elif balancing:
                self._revoke(balancing, to_revoke, nxt)
                self.revoked_in_previous = True
            elif self.revoked_in_previous:
                self.revoked_in_previous = False  # balanced again: reset the back-off
                self.successive_revoking_rounds = 0
        else:
            self.revoked_in_previous = False

        to_assign = created.minus()
        to_assign.add(reassign)
        _deal(nxt, sorted(to_assign.connectors), lambda load: load.connectors)
        _deal(nxt, sorted(to_assign.tasks, key=_task_key), lambda load: load.tasks)

        changes: dict[str, MemberChange] = {}
        next_all = ConnectorsAndTasks()
        for load in nxt:
            before = current[load.worker]
            revoked = to_revoke[load.worker]
            changes[load.worker] = MemberChange(
                [c for c in load.connectors if c not in before.connectors],
                [t for t in load.tasks if t not in before.tasks],
                sorted(revoked.connectors), sorted(revoked.tasks, key=_task_key))
            next_all.connectors.update(load.connectors)
            next_all.tasks.update(load.tasks)
        for revoked in to_revoke.values():
            next_all = next_all.minus(revoked)
            self.previous_revocation.add(revoked)
        next_all.add(lost)  # still lost until reassigned: the next round finds them lost again
        self.previous = next_all
        self.previous_generation = generation
        self.previous_members = set(members)
        return changes, self.delay

    @staticmethod
    def _revoke(balancing: dict[str, ConnectorsAndTasks], to_revoke: dict[str, ConnectorsAndTasks],
                nxt: list[WorkerLoad]) -> None:
        for member, revoked in balancing.items():
            to_revoke[member].add(revoked)
        for load in nxt:
            load.remove(balancing.get(load.worker, ConnectorsAndTasks()))

    def _reset_delay(self) -> None:
        self.candidates = []
        self.scheduled_rebalance = 0
        self.delay = 0

    def _handle_lost(self, lost: ConnectorsAndTasks, nxt: list[WorkerLoad]) -> ConnectorsAndTasks:
        """Lost work to reassign now (the rest stays held, and `self.delay` says for how long)."""
        if lost.empty() and not self.revoked_in_previous:
            self._reset_delay()
            return ConnectorsAndTasks()
        now = self._now_ms()
        active_members = {load.worker for load in nxt}
        if self.scheduled_rebalance <= 0 and active_members >= self.previous_members:
            # Nobody left: the work was lost by a member that missed the last assignment. Reassign it now.
            return lost
        if self.max_delay_ms == 0:
            return lost
        if 0 < self.scheduled_rebalance <= now:
            # The delay is over and the departed members did not come back.
            by_worker = {load.worker: load for load in nxt}
            candidates = [by_worker[c] for c in self.candidates if c in by_worker]
            self._reset_delay()
            self.revoked_in_previous = False
            if not candidates:
                return lost
            for i, connector in enumerate(sorted(lost.connectors)):
                candidates[i % len(candidates)].connectors.append(connector)
            for i, task in enumerate(sorted(lost.tasks, key=_task_key)):
                candidates[i % len(candidates)].tasks.append(task)
            return ConnectorsAndTasks()
        for load in nxt:
            if load.empty() and load.worker not in self.candidates:
                self.candidates.append(load.worker)
        if now < self.scheduled_rebalance:
            self.delay = min(self.scheduled_rebalance - now, self.max_delay_ms)
        else:
            self.delay = self.max_delay_ms
        self.scheduled_rebalance = now + self.delay
        log.info("connect assignor: holding lost %s for %d ms (scheduled.rebalance.max.delay.ms)", lost, self.delay)
        return ConnectorsAndTasks()


def _duplicated(owned: Iterable[ConnectorsAndTasks]) -> ConnectorsAndTasks:
    connectors: Counter[str] = Counter()
    tasks: Counter[ConnectorTaskId] = Counter()
    for o in owned:
        connectors.update(o.connectors)
        tasks.update(o.tasks)
    return ConnectorsAndTasks({c for c, n in connectors.items() if n > 1}, {t for t, n in tasks.items() if n > 1})


def _intersection(owned: ConnectorsAndTasks, other: ConnectorsAndTasks) -> ConnectorsAndTasks:
    return ConnectorsAndTasks(owned.connectors & other.connectors, owned.tasks & other.tasks)


def _deal(loads: list[WorkerLoad], items: list, of: Callable[[WorkerLoad], list]) -> None:
    """Each item to the least loaded member (ties: lowest member id), so loads stay within one of each other."""
    if not loads:
        return
    for item in items:
        target = min(loads, key=lambda load: (len(of(load)), load.worker))
        of(target).append(item)


def _load_balancing_revocations(configured: ConnectorsAndTasks, loads: list[WorkerLoad]
                                ) -> dict[str, ConnectorsAndTasks]:
    """Revoke from members running more than their balanced share (Kafka's performLoadBalancingRevocations)."""
    if all(load.empty() for load in loads) or configured.empty():
        return {}
    result: dict[str, ConnectorsAndTasks] = {}
    for total, of in ((len(configured.connectors), lambda load: load.connectors),
                      (len(configured.tasks), lambda load: load.tasks)):
        for member, revoked in _revocations(total, loads, of).items():
            target = result.setdefault(member, ConnectorsAndTasks())
            for item in revoked:
                (target.tasks if isinstance(item, ConnectorTaskId) else target.connectors).add(item)
    return result


def _revocations(total: int, loads: list[WorkerLoad], of: Callable[[WorkerLoad], list]) -> dict[str, list]:
    minimum, extras = divmod(total, len(loads))
    sizes = [len(of(load)) for load in loads]
    at_min = sum(1 for s in sizes if s == minimum)
    at_extra = sum(1 for s in sizes if s == minimum + 1)
    if at_extra == extras and at_min + at_extra == len(loads):
        return {}  # balanced once new work is dealt out
    result: dict[str, list] = {}
    given_extra = 0
    for load in loads:
        size = len(of(load))
        if size <= minimum:
            continue
        if given_extra < extras:
            given_extra += 1
            if size == minimum + 1:
                continue
            keep = minimum + 1
        else:
            keep = minimum
        result[load.worker] = of(load)[keep:]  # keep the first `keep`, revoke the rest
    return result

"""Given two distributed workers running an exactly-once source with two tasks (KIP-618), when the worker
running task 1 is frozen (SIGSTOP) while the connector goes down to one task, then before the new task starts
the leader fences task 1's transactional id and writes a task count record, so that the frozen worker, once
it wakes, commits nothing: every source partition's records are in the topic exactly once, in order."""

from __future__ import annotations

import json
import signal

from tests.connect.connect_fixtures import (
    WorkerProcess,
    create_topic,
    distributed_props,
    read_to_end,
    read_topic,
    rest,
    wait_until,
)
from tests.connect.test_distributed import running
from tests.fixtures import unique_topic

CONNECTOR = "count"


def records(bootstrap: str, topic: str, key: str) -> list[dict | None]:
    """The values of every record with `key` in a Connect internal topic, oldest first."""
    return [json.loads(m.value()) if m.value() is not None else None
            for m in read_to_end(bootstrap, topic) if m.key() == key.encode()]


def task_worker(url: str, task: int) -> str | None:
    status, body = rest(url, "GET", f"/connectors/{CONNECTOR}/status")
    tasks = {t["id"]: t for t in body.get("tasks", [])} if status == 200 else {}
    return tasks[task]["worker_id"] if task in tasks and tasks[task]["state"] == "RUNNING" else None


def test_a_frozen_worker_commits_nothing_after_its_task_generation_was_fenced(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap_servers
    group = unique_topic("fencing")
    props = {**distributed_props(bootstrap, group), "exactly.once.source.support": "enabled"}
    workers = [WorkerProcess(tmp_path, f"fencing{i}", props).start() for i in range(2)]
    try:
        topic = create_topic(bootstrap, unique_topic("counted"))
        config = {"connector.class": "tests.connect.counting_source.CountingSourceConnector", "tasks.max": "2",
                  "topic": topic, "partitions": "2", "count": "100000000"}
        assert rest(workers[0].url, "PUT", f"/connectors/{CONNECTOR}/config", config)[0] == 201
        owners = wait_until(lambda: running(workers[0].url, CONNECTOR, 2) and
                            len({task_worker(workers[0].url, 0), task_worker(workers[0].url, 1)} - {None}) == 2 and
                            (task_worker(workers[0].url, 0), task_worker(workers[0].url, 1)),
                            90, "one task on each worker")
        zombie = next(w for w in workers if w.worker_id == owners[1])
        survivor = next(w for w in workers if w is not zombie)
        wait_until(lambda: len(read_topic(bootstrap, topic, 200, timeout=2)) >= 200, 60, "committed records")

        zombie.process.send_signal(signal.SIGSTOP)  # task 1 keeps its producer and its place in the stream
        try:
            assert rest(survivor.url, "PUT", f"/connectors/{CONNECTOR}/config", {**config, "tasks.max": "1"})[0] == 200
            wait_until(lambda: running(survivor.url, CONNECTOR, 1) and
                       task_worker(survivor.url, 0) == survivor.worker_id, 120, "task 0 alone, on the survivor")
            # A task count record follows each generation's fencing round: 2 tasks, then 1.
            assert records(bootstrap, f"{group}-configs", f"tasks-fencing-{CONNECTOR}") == [
                {"task-count": 2}, {"task-count": 1}]
        finally:
            zombie.process.send_signal(signal.SIGCONT)

        # The zombie's task 1 runs on until its worker notices; its thread's end is its last status record.
        def zombie_task_ended() -> bool:
            statuses = records(bootstrap, f"{group}-status", f"status-task-{CONNECTOR}-1")
            mine = [s for s in statuses if s is not None and s["worker_id"] == zombie.worker_id]
            return bool(mine) and mine[-1]["state"] in ("UNASSIGNED", "FAILED")

        wait_until(zombie_task_ended, 120, "the zombie's task 1 to end")
        assert rest(survivor.url, "PUT", f"/connectors/{CONNECTOR}/stop")[0] == 204
        wait_until(lambda: rest(survivor.url, "GET", f"/connectors/{CONNECTOR}/status")[1]["connector"]["state"]
                   == "STOPPED", 60, "the connector stopped")

        by_partition: dict[str, list[int]] = {"0": [], "1": []}
        for message in read_to_end(bootstrap, topic):
            partition, n = message.value().decode().split(":")
            by_partition[partition].append(int(n))
        for partition, seen in by_partition.items():
            assert seen == list(range(len(seen))), f"source partition {partition}: duplicates or gaps"
        assert min(len(seen) for seen in by_partition.values()) >= 100
    finally:
        for worker in workers:
            worker.stop()

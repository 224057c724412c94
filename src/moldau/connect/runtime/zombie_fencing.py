"""Zombie fencing for exactly-once source connectors (KIP-618).

A task's transactional producer fences the previous owner of the same task (`init_transactions`), but not
the tasks of an earlier generation of task configs that no longer exist, or that now read other source
partitions: a worker frozen while the connector went from two tasks to one could wake up and commit task
1's transaction on top of what the new task 0 wrote. So before the first task of a new generation starts,
the leader bumps the epoch of every transactional id of the previous generation (Admin.fenceProducers) and
then writes a task count record; until that record is newer than the task configs, no exactly-once task of
the connector starts (DistributedHerder.fenceZombieSourceTasks).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import confluent_kafka

from moldau.connect.api.errors import ConnectException
from moldau.connect.runtime.worker_task import ConnectorTaskId

log = logging.getLogger(__name__)
FENCING_TIMEOUT_S = 60.0


class ZombieFencer(Protocol):
    """What an exactly-once source task asks of its herder, on its own thread (the distributed herder)."""

    def task_generation(self, connector: str) -> int:
        """How many times the connector's task configs have been committed: the generation a task starts in."""
        ...

    def fence_zombies(self, task_id: ConnectorTaskId, stopping: threading.Event) -> None:
        """Return once no task of an earlier generation can commit (a fencing round, or one was not needed)."""
        ...

    def verify_task(self, task_id: ConnectorTaskId, generation: int) -> None:
        """Raise unless the task is still this worker's and its configs are still `generation`'s."""
        ...


def fence_producers(client_config: dict[str, Any], transactional_ids: list[str],
                    timeout_s: float = FENCING_TIMEOUT_S) -> None:
    """Admin.fenceProducers: bump each transactional id's epoch, which aborts its open transaction and makes
    its current producer fail with PRODUCER_FENCED. librdkafka has no fenceProducers; a transactional
    producer's init_transactions sends the same InitProducerId."""
    for transactional_id in transactional_ids:
        producer = confluent_kafka.Producer({**client_config, "transactional.id": transactional_id,
                                             "client.id": f"zombie-fencing-{transactional_id}"})
        try:
            producer.init_transactions(timeout_s)
        except confluent_kafka.KafkaException as exc:
            raise ConnectException(f"Fencing out the producer of {transactional_id} failed: {exc}") from exc
    log.info("connect: fenced out the producers of %s", ", ".join(transactional_ids))

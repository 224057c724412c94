"""The reference client: the Apache Kafka Java Admin (kafka-clients 3.9.1) starts, lists and cancels a
reassignment and runs a preferred election on a Moldau cluster, seeing Kafka's exceptions
(`tests/java/MoldauReassign.java`, compiled against the jars `scripts/java-client-setup.sh` fetches)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from moldau.cluster.etcd_server import find_etcd
from moldau.testing_cluster import running_cluster
from tests.cluster.test_reassignment import create_topic, fill, wait_for_replicas
from tests.fixtures import wait_until

REPO = Path(__file__).resolve().parents[2]
JAVA, JAVAC = shutil.which("java"), shutil.which("javac")
pytestmark = [
    pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)"),
    pytest.mark.skipif(JAVA is None or JAVAC is None, reason="java/javac (JDK 17+) not installed"),
]


@pytest.fixture(scope="module")
def classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    setup = subprocess.run(["bash", str(REPO / "scripts" / "java-client-setup.sh")], capture_output=True, text=True,
                           timeout=300, check=False)
    if setup.returncode != 0:
        pytest.skip(f"the Java client jars could not be fetched: {setup.stderr[-300:]}")
    jars = setup.stdout.strip().splitlines()[-1]
    classes = tmp_path_factory.mktemp("java-reassign")
    compiled = subprocess.run([JAVAC, "-d", str(classes), "-cp", jars, str(REPO / "tests/java/MoldauReassign.java")],
                              capture_output=True, text=True, timeout=120, check=False)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    return f"{jars}:{classes}"


def java(classpath: str, command: str, **args: object) -> list[dict[str, Any]]:
    assert JAVA is not None
    done = subprocess.run([JAVA, "-cp", classpath, "MoldauReassign", command, *(f"{k}={v}" for k, v in args.items())],
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.timeout(240)
def test_java_admin_reassigns_lists_cancels_and_elects(tmp_path, classpath):
    topic = "java-moves"
    with running_cluster(3, data_dir=tmp_path, follower_replication_throttled_rate=20000,
                         replication_quota_window_num=2, replica_fetch_max_bytes=16384,
                         replica_fetch_backoff_ms=100, auto_leader_rebalance_enable=False) as cluster:
        old = create_topic(cluster, topic, config={"follower.replication.throttled.replicas": "*"})
        new_broker = next(b for b in cluster.brokers if b not in old)
        fill(cluster, topic, 500_000)  # ~25 s at 20 kB/s: still moving while the Java client looks
        bootstrap = cluster.bootstrap_servers
        target = [old[1], new_broker]
        assert java(classpath, "reassign", bootstrap=bootstrap, topic=topic, partition=0,
                    replicas=",".join(map(str, target))) == [{"event": "reassign", "error": None}]
        listed = java(classpath, "list", bootstrap=bootstrap)
        assert listed[0] == {"event": "ongoing", "topic": topic, "partition": 0, "replicas": [*target, old[0]],
                             "adding": [new_broker], "removing": [old[0]]}
        assert java(classpath, "reassign", bootstrap=bootstrap, topic=topic, partition=0, replicas="cancel") == \
            [{"event": "reassign", "error": None}]
        assert java(classpath, "reassign", bootstrap=bootstrap, topic=topic, partition=0, replicas="cancel") == \
            [{"event": "reassign", "error": "NoReassignmentInProgressException"}]
        assert java(classpath, "reassign", bootstrap=bootstrap, topic=topic, partition=0, replicas="1,99") == \
            [{"event": "reassign", "error": "InvalidReplicaAssignmentException"}]
        wait_for_replicas(cluster, topic, old, ordered=False)
        # A reorder completes at once (the target is in sync): the preferred replica changes, not the leader.
        leader = cluster.leader_of(topic, 0)
        follower = next(r for r in old if r != leader)
        assert java(classpath, "reassign", bootstrap=bootstrap, topic=topic, partition=0,
                    replicas=f"{follower},{leader}") == [{"event": "reassign", "error": None}]
        wait_for_replicas(cluster, topic, [follower, leader])
        assert java(classpath, "list", bootstrap=bootstrap) == [{"event": "listed", "count": 0}]
        assert cluster.leader_of(topic, 0) == leader
        assert java(classpath, "elect", bootstrap=bootstrap, topic=topic, partition=0, type="PREFERRED") == \
            [{"event": "elect", "error": None}]
        wait_until(lambda: cluster.leader_of(topic, 0) == follower, 30, "the new preferred replica leading")
        assert java(classpath, "elect", bootstrap=bootstrap, topic=topic, partition=0, type="PREFERRED") == \
            [{"event": "elect", "error": "ElectionNotNeededException"}]

"""Security costs: produce/consume throughput over TLS against plaintext, and authorization with 1,000 ACLs.

    python bench/security_bench.py                     # ~1 min; --mib 200 for longer runs
    python bench/security_bench.py --only acl          # the authorizer part only

Throughput: one `moldau server` process with a PLAINTEXT and an SSL listener (throw-away certificates from
`moldau.testing_certs`), driven by confluent-kafka (librdkafka) from this process, 1 KiB records, one
partition, the two listeners alternately (`--repeat` runs each, medians). Fetch over TLS cannot use
sendfile: the broker reads the stored region and hands it to the TLS transport.

Authorization: `StandardAuthorizer.authorize` with 0 and 1,000 ACLs (literal and prefixed, for 100
principals and 1,000 topics), per check and per Metadata-sized batch of 100 topic checks; then whole
Metadata round trips against an in-process broker with and without the authorizer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from moldau.client.client import Client
from moldau.security.acl import AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType
from moldau.security.authorizer import StandardAuthorizer
from moldau.security.principal import KafkaPrincipal
from moldau.testing import running_broker
from moldau.testing_certs import generate_certificates

RECORD = b"x" * 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp: Path, certs) -> tuple[subprocess.Popen, int, int]:
    plain, tls = free_port(), free_port()
    args = [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "WARNING",
            "-o", f"listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}", "-o", f"log.dirs={tmp / 'data'}",
            "-o", f"ssl.keystore.location={certs.server_keystore}", "-o", "num.partitions=1"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "broker.log", "w"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            Client(f"127.0.0.1:{plain}", timeout=1).close()
            return process, plain, tls
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"broker did not start; see {tmp / 'broker.log'}")


def produce(settings: dict, topic: str, count: int) -> float:
    producer = Producer({**settings, "linger.ms": 10, "batch.size": 1 << 20, "acks": 1,
                         "queue.buffering.max.kbytes": 1 << 20})
    start = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, RECORD, partition=0)
                break
            except BufferError:
                producer.poll(0.001)
    producer.flush(120)
    return count * len(RECORD) / (time.perf_counter() - start) / 2**20


def consume(settings: dict, topic: str, count: int) -> float:
    consumer = Consumer({**settings, "group.id": "bench", "enable.auto.commit": False,
                         "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    received = 0
    start = time.perf_counter()
    while received < count:
        for msg in consumer.consume(10000, 1.0):
            if not msg.error():
                received += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return count * len(RECORD) / elapsed / 2**20


def throughput(mib: int, repeat: int) -> None:
    count = mib * 1024
    with tempfile.TemporaryDirectory(prefix="moldau-secbench-") as tmp_dir:
        tmp = Path(tmp_dir)
        certs = generate_certificates(tmp / "certs")
        process, plain, tls = start_broker(tmp, certs)
        try:
            listeners = {"PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{plain}"},
                         "SSL": {"bootstrap.servers": f"127.0.0.1:{tls}", "security.protocol": "SSL",
                                 "ssl.ca.location": str(certs.ca)}}
            results: dict[str, dict[str, list[float]]] = {n: {"produce": [], "consume": []} for n in listeners}
            for run in range(repeat):
                for name, settings in listeners.items():
                    topic = f"bench-{name.lower()}-{run}"
                    results[name]["produce"].append(produce(settings, topic, count))
                    results[name]["consume"].append(consume(settings, topic, count))
            print(f"\nthroughput, {mib} MiB of 1 KiB records, median of {repeat}")
            print(f"{'':12}{'PLAINTEXT MiB/s':>18}{'SSL MiB/s':>12}{'SSL/PLAIN':>11}")
            for phase in ("produce", "consume"):
                p = statistics.median(results["PLAINTEXT"][phase])
                s = statistics.median(results["SSL"][phase])
                print(f"{phase:12}{p:18.1f}{s:12.1f}{s / p:11.2f}")
        finally:
            process.terminate()
            process.wait(30)


def build_acls(n: int) -> list[AclBinding]:
    acls = []
    for i in range(n):
        principal = f"User:user-{i % 100}"
        if i % 4 == 0:
            acls.append(AclBinding(ResourceType.TOPIC, f"team-{i % 50}-", PatternType.PREFIXED, principal, "*",
                                   AclOperation.READ, AclPermissionType.ALLOW))
        else:
            acls.append(AclBinding(ResourceType.TOPIC, f"topic-{i}", PatternType.LITERAL, principal, "*",
                                   AclOperation.WRITE if i % 3 else AclOperation.DESCRIBE, AclPermissionType.ALLOW))
    return acls


class MemoryStore:
    def __init__(self) -> None:
        self.sections: dict = {}

    def security(self, section: str):
        return self.sections.get(section)

    def set_security(self, section: str, value) -> None:
        self.sections[section] = value


def authorizer_cost() -> None:
    print("\nauthorization, StandardAuthorizer.authorize")
    print(f"{'ACLs':>6}{'per check µs':>15}{'100-topic Metadata µs':>24}")
    principal = KafkaPrincipal("User", "user-7")
    topics = [f"topic-{i}" if i % 2 else f"team-{i % 50}-orders" for i in range(100)]
    for n in (0, 1000):
        authorizer = StandardAuthorizer(MemoryStore(), frozenset(), False)
        authorizer.create(build_acls(n))
        rounds = 200
        start = time.perf_counter()
        for _ in range(rounds):
            for topic in topics:
                authorizer.authorize(principal, "127.0.0.1", AclOperation.DESCRIBE, ResourceType.TOPIC, topic)
        per_batch = (time.perf_counter() - start) / rounds
        print(f"{n:6}{per_batch / len(topics) * 1e6:15.2f}{per_batch * 1e6:24.1f}")


def metadata_round_trips(requests: int = 3000) -> None:
    print(f"\nMetadata (all topics, 100 exist) round trips, {requests} requests, in-process broker")
    rates = {}
    for label, settings in (("no authorizer", {}),
                            ("1,000 ACLs", {"authorizer_class_name": "StandardAuthorizer",
                                            "super_users": "User:admin"})):
        with running_broker(num_partitions=1, **settings) as broker:
            with Client(broker.bootstrap_servers) as client:
                if settings:
                    broker.broker.authorizer.create(build_acls(999))
                    broker.broker.authorizer.create([AclBinding(
                        ResourceType.TOPIC, "*", PatternType.LITERAL, "User:ANONYMOUS", "*",
                        AclOperation.DESCRIBE, AclPermissionType.ALLOW)])
                for i in range(100):
                    broker.broker.replica_manager.create_topic(f"topic-{i}")
                assert len(client.metadata(None).topics) == 100
                start = time.perf_counter()
                for _ in range(requests):
                    client.metadata(None)
                elapsed = time.perf_counter() - start
                rates[label] = elapsed / requests * 1e6
    for label, micros in rates.items():
        print(f"{label:16}{micros:10.0f} µs per Metadata request")
    print(f"{'cost':16}{rates['1,000 ACLs'] - rates['no authorizer']:10.0f} µs per request (100 topic checks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=100, help="MiB produced and consumed per listener and run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("tls", "acl"), default=None)
    args = parser.parse_args()
    if args.only in (None, "tls"):
        throughput(args.mib, args.repeat)
    if args.only in (None, "acl"):
        authorizer_cost()
        metadata_round_trips()


if __name__ == "__main__":
    main()

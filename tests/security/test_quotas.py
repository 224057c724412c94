"""Given a producer_byte_rate quota of 1 MB/s on one client id, when that client produces flat out for
10 s, then it gets about 1 MB/s and sees throttle times, while another client on the same broker is not
slowed; quota configs round-trip through Alter/DescribeClientQuotas."""

from __future__ import annotations

import json
import threading
import time

import pytest
from confluent_kafka import Producer

from moldau.client.client import Client, ClientError
from moldau.client.security_admin import alter_quota, describe_quotas
from moldau.protocol.errors import ErrorCode
from moldau.testing import running_broker
from tests.fixtures import unique_topic

QUOTA = 1024 * 1024
RUN_S = 10.0
WARM_UP_S = 3.0
# Kafka's rate window is at least (quota.window.num - 1) samples long, so a fresh client may first burst
# about that many seconds' worth of quota; a 4-sample window lets the warm-up absorb the burst.
WINDOW = {"quota_window_num": 4, "quota_window_size_seconds": 1}
VALUE = b"x" * 10_000


def produce_flat_out(bootstrap: str, topic: str, client_id: str, seconds: float, result: dict,
                     warm_up: float = WARM_UP_S) -> None:
    throttles: list[int] = []

    def on_stats(text: str) -> None:
        for broker in json.loads(text)["brokers"].values():
            throttles.append(broker["throttle"]["max"])

    delivered = [0]

    def on_delivery(err, msg) -> None:
        if err is None:
            delivered[0] += len(msg.value())

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "acks": 1, "linger.ms": 5,
                         "statistics.interval.ms": 500, "stats_cb": on_stats, "queue.buffering.max.kbytes": 2048})
    start = time.monotonic() + warm_up
    measuring = False
    while time.monotonic() - start < seconds:
        if not measuring and time.monotonic() >= start:
            measuring, delivered[0], throttles[:] = True, 0, []
        try:
            producer.produce(topic, VALUE, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
    elapsed = time.monotonic() - start
    rate_at_deadline = delivered[0] / elapsed
    producer.flush(30)
    result.update(rate=rate_at_deadline, throttle_ms=max(throttles, default=0))


def test_producer_byte_rate_quota_caps_one_client_only():
    with running_broker(num_partitions=1, **WINDOW) as broker:
        topic = unique_topic("quota")
        with Client(broker.bootstrap_servers) as admin:
            admin.create_topic(topic, 1)
            alter_quota(admin, [("client-id", "capped")], {"producer_byte_rate": QUOTA})
        capped: dict = {}
        free: dict = {}
        threads = [threading.Thread(target=produce_flat_out, args=(broker.bootstrap_servers, topic, "capped",
                                                                   RUN_S, capped)),
                   threading.Thread(target=produce_flat_out, args=(broker.bootstrap_servers, topic, "free",
                                                                   RUN_S / 2, free))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        print(f"capped: {capped['rate'] / QUOTA:.2f} MB/s, throttle max {capped['throttle_ms']} ms; "
              f"free: {free['rate'] / QUOTA:.2f} MB/s")
        assert 0.8 * QUOTA <= capped["rate"] <= 1.2 * QUOTA
        assert capped["throttle_ms"] > 0
        assert free["throttle_ms"] == 0
        assert free["rate"] > 2 * QUOTA


def test_client_quota_configs_round_trip():
    with running_broker() as broker, Client(broker.bootstrap_servers) as admin:
        alter_quota(admin, [("user", "alice"), ("client-id", None)], {"producer_byte_rate": 2048,
                                                                     "request_percentage": 50})
        alter_quota(admin, [("client-id", "app")], {"consumer_byte_rate": 4096})
        alter_quota(admin, [("ip", None)], {"connection_creation_rate": 10})
        everything = {tuple(entity): values for entity, values in describe_quotas(admin)}
        assert everything == {
            (("client-id", None), ("user", "alice")): {"producer_byte_rate": 2048.0, "request_percentage": 50.0},
            (("client-id", "app"),): {"consumer_byte_rate": 4096.0},
            (("ip", None),): {"connection_creation_rate": 10.0},
        }
        exact = describe_quotas(admin, [("client-id", 0, "app")], strict=True)
        assert exact == [([("client-id", "app")], {"consumer_byte_rate": 4096.0})]
        alter_quota(admin, [("client-id", "app")], {"consumer_byte_rate": None})
        assert describe_quotas(admin, [("client-id", 0, "app")]) == []
        with pytest.raises(ClientError) as invalid:
            alter_quota(admin, [("ip", "1.2.3.4")], {"producer_byte_rate": 1})
        assert invalid.value.error_code == ErrorCode.INVALID_REQUEST


def test_connection_creation_rate_per_ip():
    with running_broker() as broker:
        with Client(broker.bootstrap_servers) as admin:
            alter_quota(admin, [("ip", "127.0.0.1")], {"connection_creation_rate": 1})
        refused = 0
        for _ in range(30):
            try:
                with Client(broker.bootstrap_servers, timeout=5):
                    pass
            except (ConnectionError, OSError):
                refused += 1
        # A rate of 1/s over an 11 s window lets about 10 through at once; the rest are refused.
        assert 10 <= refused <= 25


def test_max_connections_per_ip():
    with running_broker(max_connections_per_ip=2) as broker:
        first, second = Client(broker.bootstrap_servers), Client(broker.bootstrap_servers)
        try:
            with pytest.raises((ConnectionError, OSError)):
                Client(broker.bootstrap_servers, timeout=5)
        finally:
            first.close()
            second.close()
        deadline = time.monotonic() + 10
        while broker.broker.quotas.connection_count and time.monotonic() < deadline:
            time.sleep(0.02)  # the broker notices the closes on its own thread
        with Client(broker.bootstrap_servers):
            pass

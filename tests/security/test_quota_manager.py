"""Kafka's quota arithmetic without a broker: sampled rates, throttle times and KIP-55 precedence."""

from __future__ import annotations

import asyncio

import pytest

from moldau.cluster.config_store import MemoryConfigStore
from moldau.security.quota_config import Alteration, QuotaConfigs, QuotaError, entity_of
from moldau.security.quota_manager import ClientQuotaManager, Rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_window_is_at_least_samples_minus_one_windows():
    rate = Rate(samples=11, window_s=1.0)
    rate.record(10_000, now=0.0)
    assert rate.window_size(0.0) == 10.0
    assert rate.measure(0.0) == 1000.0
    for second in range(1, 30):
        rate.record(1000, now=float(second))
    # Old samples fall out: 11 one-second samples of 1000 over an 11 s window.
    assert rate.measure(29.0) == pytest.approx(1000 * 11 / 10, rel=0.15)


def test_throttle_time_is_kafkas_formula():
    store, clock = MemoryConfigStore(), Clock()
    configs = QuotaConfigs(store)
    asyncio.run(configs.alter([Alteration(entity_of([("client-id", "app")]), [("producer_byte_rate", 1000.0, False)])]))
    manager = ClientQuotaManager("producer_byte_rate", configs, samples=11, window_s=1.0, clock=clock)
    assert manager.record("alice", "app", 5_000) == 0  # 500 B/s over the 10 s minimum window
    # 20,000 B over 10 s = 2,000 B/s, twice the quota: (2000 - 1000) / 1000 * 10 s = 10 s.
    assert manager.record("alice", "app", 15_000) == 10_000
    assert manager.record("bob", "other", 1_000_000) == 0  # no quota applies to other clients


def test_precedence_and_defaults_per_user():
    store, clock = MemoryConfigStore(), Clock()
    configs = QuotaConfigs(store)
    asyncio.run(configs.alter([
        Alteration(entity_of([("user", None)]), [("consumer_byte_rate", 100.0, False)]),
        Alteration(entity_of([("user", "alice")]), [("consumer_byte_rate", 500.0, False)]),
        Alteration(entity_of([("user", "alice"), ("client-id", "etl")]), [("consumer_byte_rate", 900.0, False)]),
        Alteration(entity_of([("client-id", "etl")]), [("consumer_byte_rate", 50.0, False)]),
    ]))
    manager = ClientQuotaManager("consumer_byte_rate", configs, samples=11, window_s=1.0, clock=clock)
    assert manager.quota("alice", "etl") == (900.0, ("alice", "etl"))
    assert manager.quota("alice", "other") == (500.0, ("alice", ""))
    # A default user quota applies to each user on its own: separate rate keys.
    assert manager.quota("bob", "etl") == (100.0, ("bob", ""))
    assert manager.quota("carol", "x") == (100.0, ("carol", ""))
    asyncio.run(configs.alter([Alteration(entity_of([("user", None)]), [("consumer_byte_rate", 0.0, True)])]))
    assert manager.quota("bob", "etl") == (50.0, ("", "etl"))
    assert QuotaConfigs(store).entries == configs.entries  # persisted


def test_invalid_alterations():
    configs = QuotaConfigs(MemoryConfigStore())
    for entity, ops in (([("ip", "1.2.3.4"), ("user", "a")], [("connection_creation_rate", 1.0, False)]),
                        ([("user", "a")], [("connection_creation_rate", 1.0, False)]),
                        ([("user", "a")], [("producer_byte_rate", -1.0, False)]),
                        ([("group", "a")], [("producer_byte_rate", 1.0, False)])):
        with pytest.raises(QuotaError):
            configs.validate(Alteration(entity_of(entity), ops))

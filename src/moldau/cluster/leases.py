"""An etcd lease kept alive in the background: the liveness of a broker registration or of the controller.

Kafka's ZooKeeper mode tied both to the broker's ZooKeeper session; here each is an etcd lease that the
holder refreshes every TTL/3. When a refresh says the lease is gone (TTL <= 0), or no refresh succeeded
for a whole TTL (etcd unreachable), the lease is lost: `on_lost` runs once and the holder must act (a
broker registers again, a controller stops acting). Never stays silently "alive" without a lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aetcd  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


class KeptLease:
    def __init__(self, client: aetcd.Client, lease_id: int, ttl: int, on_lost: Callable[[], None]) -> None:
        self.client = client
        self.id = lease_id
        self.ttl = ttl
        self._on_lost = on_lost
        self._expires = time.monotonic() + ttl
        self.lost = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._keep_alive(), name=f"etcd-lease-{lease_id:x}")

    @classmethod
    async def grant(cls, client: aetcd.Client, ttl: int, on_lost: Callable[[], None]) -> KeptLease:
        lease = await client.lease(ttl)
        return cls(client, lease.id, ttl, on_lost)

    async def _keep_alive(self) -> None:
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(interval):
                    reply = await self.client.refresh_lease(self.id)
            except (TimeoutError, aetcd.ClientError) as exc:
                if time.monotonic() < self._expires:
                    continue
                log.warning("etcd lease %x lost: no keep-alive succeeded for %d s (%s)", self.id, self.ttl, exc)
                break
            if reply is None or reply.TTL <= 0:
                log.warning("etcd lease %x lost: etcd says it expired", self.id)
                break
            self._expires = time.monotonic() + reply.TTL
        self._mark_lost()

    def declare_lost(self) -> None:
        """The holder learnt otherwise that the lease is gone (a put under it was refused)."""
        self._task.cancel()
        self._mark_lost()

    def _mark_lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            self._on_lost()

    async def revoke(self) -> None:
        """Ends the lease now: etcd deletes its keys at once (controlled shutdown, immediate failover)."""
        self._task.cancel()
        self.lost.set()  # on purpose: not reported to on_lost
        try:
            async with asyncio.timeout(max(1, self.ttl)):
                await self.client.revoke_lease(self.id)
        except (TimeoutError, aetcd.ClientError) as exc:
            log.warning("could not revoke etcd lease %x (it expires in %d s): %s", self.id, self.ttl, exc)

    def stop(self) -> None:
        """Stops refreshing without revoking: the lease expires after its TTL (tests simulate a crash so)."""
        self._task.cancel()
        self.lost.set()

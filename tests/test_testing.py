"""Given an embedded broker (`moldau.testing`), when its stop hangs, then stop still returns within its bound,
says where the loop was stuck, and leaves nothing listening on the broker's port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from moldau.testing import ABORT_TIMEOUT_S, EmbeddedBroker, running_broker


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def start_broker(tmp_path) -> EmbeddedBroker:
    from moldau.broker.config import BrokerConfig

    embedded = EmbeddedBroker(BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path)}))
    embedded.start()
    return embedded


def test_a_hung_broker_stop_is_aborted_within_its_bound(tmp_path):
    embedded = start_broker(tmp_path)
    port = embedded.port

    async def never_stops() -> None:
        await asyncio.Event().wait()

    embedded.broker.stop = never_stops  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not stop within 1") as stopped:
        embedded.stop(timeout=1)
    # The error names the await the stop hung on, coroutine by coroutine, down to the future.
    assert "in never_stops" in str(stopped.value) and "awaiting <Future pending" in str(stopped.value)
    assert time.monotonic() - started < 1 + 2 * ABORT_TIMEOUT_S + 5  # + slack for a loaded machine
    assert not embedded._thread.is_alive()
    assert refuses_connections(port)
    embedded.stop()  # a second stop is a no-op


def test_a_blocked_loop_still_stops_listening(tmp_path):
    embedded = start_broker(tmp_path)
    port = embedded.port
    release = threading.Event()
    embedded._loop.call_soon_threadsafe(release.wait, 60)  # a callback that blocks the loop
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="loop thread"):
            embedded.stop(timeout=1)
        assert time.monotonic() - started < 1 + 2 * ABORT_TIMEOUT_S + 5  # + slack for a loaded machine
        assert refuses_connections(port)
    finally:
        release.set()
        embedded._thread.join(10)
        finish(embedded._loop)


def finish(loop: asyncio.AbstractEventLoop) -> None:
    """Let the tasks a blocked loop never ran see their cancellation, then close it, so that none is left
    pending for the interpreter to report at exit."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


def test_a_clean_stop_closes_the_loop(tmp_path):
    with running_broker(tmp_path) as embedded:
        port = embedded.port
    assert embedded._loop.is_closed()
    assert refuses_connections(port)

"""Given a broker, when clients send huge pipelined frames or floods of malformed ones, then its memory goes
back to where it was and its log stays short, while it keeps serving (issue 9 item 9)."""

from __future__ import annotations

import re
import socket
import struct
import time

from moldau.client.client import Client
from moldau.protocol import api, messages

FRAMES = 40
FRAME_BYTES = 16 << 20
CONNECTIONS = 1000


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def read_responses(sock: socket.socket, count: int) -> None:
    buffered = b""
    while count:
        chunk = sock.recv(1 << 16)
        assert chunk, "the broker closed the connection"
        buffered += chunk
        while len(buffered) >= 4 and len(buffered) >= 4 + int.from_bytes(buffered[:4], "big"):
            buffered = buffered[4 + int.from_bytes(buffered[:4], "big"):]
            count -= 1


def test_memory_goes_back_down_after_big_pipelined_frames(broker_process):
    process = broker_process()
    with Client(process.bootstrap_servers) as client:
        client.create_topic("big", 1)
        for _ in range(5):
            client.metadata(["big"])
    time.sleep(1)  # let start-up allocations settle
    baseline = rss_mib(process.process.pid)
    request = messages.ProduceRequest
    frame = api.encode_request(0, 9, 1, "abuse", request(acks=1, timeout_ms=30000, topic_data=[
        request.TopicProduceData(name="big", partition_data=[
            request.PartitionProduceData(index=0, records=b"\0" * FRAME_BYTES)])]))
    with socket.create_connection(("127.0.0.1", process.port), timeout=60) as sock:
        for _ in range(FRAMES):  # 640 MiB pipelined; each refused (MESSAGE_TOO_LARGE), the connection stays
            sock.sendall(frame)
        read_responses(sock, FRAMES)
        deadline = time.monotonic() + 10
        while (now := rss_mib(process.process.pid)) > baseline + 8 and time.monotonic() < deadline:
            time.sleep(0.2)  # another process's memory: nothing to await
        assert now <= baseline + 8, f"RSS {now:.1f} MiB, {now - baseline:.1f} MiB above {baseline:.1f} MiB"
        sock.sendall(api.encode_request(18, 0, 2, "abuse", messages.ApiVersionsRequest()))
        read_responses(sock, 1)  # and the same connection still serves


def test_a_flood_of_malformed_frames_writes_a_bounded_log(broker_process):
    process = broker_process()
    garbage = struct.pack(">ihhi", 10, 999, 0, 1) + b"\0\0"  # api key 999: closes the connection
    for _ in range(CONNECTIONS):
        with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:
            sock.sendall(garbage)
            assert sock.recv(16) == b""  # closed by the broker
    with Client(process.bootstrap_servers) as client:
        assert client.metadata(None).brokers  # still serving
    pattern = re.compile(r"(\d+) more warnings about bad requests were not logged .* \((\d+) since start\)")
    deadline = time.monotonic() + 20
    while True:
        text = process.log_text()
        lines = [line for line in text.splitlines() if "WARNING" in line]
        logged = sum("unsupported api key 999" in line for line in lines)
        summaries = [(int(m[1]), int(m[2])) for m in pattern.finditer(text)]
        if logged + sum(n for n, _ in summaries) == CONNECTIONS or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the summary comes at the end of the 10 s interval
    assert summaries, lines[-3:]
    assert logged + sum(n for n, _ in summaries) == CONNECTIONS  # every one counted, logged or summarized
    assert len(lines) <= 60, f"{len(lines)} warning lines for {CONNECTIONS} bad frames"

"""Loopback TCP reference: how fast bytes move between the broker core and the client core
with no Kafka at all (sendall of 1 MiB chunks -> recv_into), i.e. a ceiling for the numbers.

  loopback.py recv PORT          (run pinned like a broker) accepts one connection, drains it
  loopback.py send PORT BYTES    (run pinned like a client) prints {"mb_s": ...} as JSON
"""

from __future__ import annotations

import json
import socket
import sys
import time

CHUNK = 1 << 20


def recv(port: int) -> None:
    with socket.create_server(("127.0.0.1", port)) as srv:
        print("READY", flush=True)
        conn, _ = srv.accept()
        buf = memoryview(bytearray(CHUNK))
        with conn:
            while conn.recv_into(buf):
                pass
            conn.sendall(b"k")  # tells the sender everything was read


def send(port: int, total: int) -> None:
    data = b"\0" * CHUNK
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        for _ in range(total // CHUNK):
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        dt = time.perf_counter() - t0
    print(json.dumps({"bytes": total, "seconds": dt, "mb_s": total / dt / 1e6}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]))
    else:
        send(int(sys.argv[2]), int(sys.argv[3]))

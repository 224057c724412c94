"""Load clients: librdkafka's rdkafka_performance (native) for throughput and small requests,
bench/latency.py (confluent-kafka) for end-to-end latency, AdminClient for topics.

Every child process is bounded: at its deadline it gets SIGINT (rdkafka_performance then
prints its summary so far), then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = Path(os.environ.get("MOLDAU_BENCH_TOOLS", Path.home() / ".cache" / "moldau-bench"))
GRACE_S = 15.0
PIN: list[str] = []  # command prefix pinning clients to CPUs, e.g. ["taskset", "-c", "1"]; set by run.py

PRODUCED = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered .* in (\d+)ms")
CONSUMED = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms")


def rdkafka_performance() -> str:
    path = os.environ.get("RDKAFKA_PERFORMANCE", str(TOOLS / "bin" / "rdkafka_performance"))
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} missing: run bench/setup.sh")
    return path


def librdkafka_version() -> str:
    out = subprocess.run(
        [rdkafka_performance(), "-h"], check=False, capture_output=True, text=True, timeout=10
    )
    m = re.search(r"librdkafka version (\S+)", out.stdout + out.stderr)
    if not m:  # e.g. confluent-kafka was upgraded and the librdkafka it was linked to is gone
        raise SystemExit(
            f"rdkafka_performance does not run ({(out.stdout + out.stderr)[-300:]}): run bench/setup.sh"
        )
    return m.group(1)


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_bounded(argv: list[str], timeout: float, log_path: Path) -> tuple[str, bool, float]:
    """Run argv with stdout+stderr to log_path; SIGINT at the deadline. Returns (output, timed_out, wall s)."""
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_group(proc)
    return log_path.read_text(errors="replace"), timed_out, time.monotonic() - t0


def stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Throughput:
    msgs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    mb_s: float = 0.0  # 10^6 bytes per second, as rdkafka_performance prints
    msgs_s: float = 0.0
    timed_out: bool = False
    expected_msgs: int = 0
    client_wall_s: float = 0.0  # whole client process, connect and teardown included
    client_cpu_s: float = 0.0  # user+system of the client process
    broker_cpu_s: float = 0.0  # user+system of the broker's process group during the client run
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _throughput(msgs: int, nbytes: int, ms: int) -> Throughput:
    s = max(ms, 1) / 1000
    return Throughput(msgs=msgs, bytes=nbytes, seconds=s, mb_s=nbytes / s / 1e6, msgs_s=msgs / s)


def perf(
    broker,
    mode: str,
    topic: str,
    partitions: list[int] | None,
    count: int,
    size: int,
    extra: list[str],
    timeout: float,
    log_path: Path,
) -> Throughput:
    """One rdkafka_performance run. mode 'P' produces `count` messages of `size` bytes with acks=1;
    mode 'C' consumes `count` messages from the beginning of `partitions`."""
    argv = PIN + [rdkafka_performance(), f"-{mode}", "-t", topic, "-b", broker.bootstrap, "-c", str(count)]
    for p in partitions or []:
        argv += ["-p", str(p)]
    if mode == "P":
        argv += ["-s", str(size), "-a", "1"]
    else:
        argv += ["-o", "beginning"]
    argv += extra
    cpu0, bcpu0 = children_cpu_s(), broker.cpu_s()
    out, timed_out, wall = run_bounded(argv, timeout, log_path)
    pattern = PRODUCED if mode == "P" else CONSUMED
    matches = pattern.findall(out)
    if not matches:
        r = Throughput(error=f"no summary from rdkafka_performance; tail: {out[-400:]!r}")
    elif mode == "P":
        _produced, _bytes, delivered, ms = map(int, matches[-1])
        r = _throughput(delivered, delivered * size, ms)
    else:
        msgs, nbytes, ms = map(int, matches[-1])
        r = _throughput(msgs, nbytes, ms)
    r.timed_out, r.expected_msgs, r.client_wall_s = timed_out, count, wall
    r.client_cpu_s = children_cpu_s() - cpu0
    r.broker_cpu_s = broker.cpu_s() - bcpu0
    if not r.error and r.msgs < count:
        r.error = f"only {r.msgs} of {count} messages" + (" (timed out)" if timed_out else "")
    return r


def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30.0) -> None:
    """Create topics {name: partitions} with CreateTopics (replication factor 1)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()],
        request_timeout=timeout,
    )
    for fut in futures.values():
        fut.result(timeout=timeout)
    # Wait until metadata shows every partition with a leader.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout).topics
        if all(
            t in md
            and md[t].error is None
            and len(md[t].partitions) == n
            and all(p.leader >= 0 for p in md[t].partitions.values())
            for t, n in topics.items()
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {list(topics)} not ready after {timeout}s")


def loopback(broker_pin: list[str], nbytes: int, timeout: float = 60.0) -> dict:
    """MB/s of plain TCP over loopback from the client core to the broker core (bench/loopback.py)."""
    from brokers import free_port

    port = free_port()
    recv = subprocess.Popen(
        broker_pin + [sys.executable, str(HERE / "loopback.py"), "recv", str(port)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        if _readline(recv, 10.0).strip() != "READY":
            return {"error": "loopback receiver did not start"}
        out = subprocess.run(
            PIN + [sys.executable, str(HERE / "loopback.py"), "send", str(port), str(nbytes)],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return {"error": repr(e)}
    finally:
        stop_group(recv)


def delete_topics(bootstrap: str, topics: list[str], timeout: float = 60.0) -> str:
    """Best effort DeleteTopics, so that repeats start from the same broker state; returns an error or ''."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        for fut in admin.delete_topics(topics, request_timeout=timeout).values():
            fut.result(timeout=timeout)
    except Exception as e:  # noqa: BLE001 - reported by the caller, the benchmark goes on
        return repr(e)
    return ""


def latency(
    broker, topic: str, rate: int, seconds: float, size: int, warmup: float, timeout: float, workdir: Path
) -> dict:
    """End-to-end latency at a fixed rate: a consumer process, then a producer process
    (bench/latency.py); the consumer reports percentiles of (receive time - produce time)."""
    count = int(rate * seconds)
    common = PIN + [
        sys.executable,
        str(HERE / "latency.py"),
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        topic,
    ]
    cons_log, prod_log = (
        workdir / f"{broker.spec.name}-lat-consumer.log",
        workdir / f"{broker.spec.name}-lat-producer.log",
    )
    cpu0, bcpu0 = children_cpu_s(), broker.cpu_s()
    with open(cons_log, "wb") as clog, open(prod_log, "wb") as plog:
        consumer = subprocess.Popen(
            common + ["consume", "--count", str(count), "--warmup", str(warmup), "--timeout", str(timeout)],
            stdout=subprocess.PIPE,
            stderr=clog,
            start_new_session=True,
        )
        producer = None
        try:
            line = _readline(consumer, 30.0)
            if line.strip() != "READY":
                return {"error": f"consumer not ready: {line!r} {cons_log.read_text()[-400:]}"}
            producer = subprocess.Popen(
                common + ["produce", "--count", str(count), "--rate", str(rate), "--size", str(size)],
                stdout=plog,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            out, _ = consumer.communicate(timeout=timeout + seconds + 30)
            producer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return {"error": "latency run timed out"}
        finally:
            for p in (consumer, producer):
                if p is not None and p.poll() is None:
                    stop_group(p)
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no result; consumer log: {cons_log.read_text()[-400:]}"}
    result["client_cpu_s"] = children_cpu_s() - cpu0
    result["broker_cpu_s"] = broker.cpu_s() - bcpu0
    result["producer_log_tail"] = prod_log.read_text(errors="replace")[-300:]
    return result


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """First stdout line of proc, or '' after timeout."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        return ""
    return proc.stdout.readline().decode(errors="replace")

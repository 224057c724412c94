"""Moldau vs Tansu, side by side in one run. See bench/README.md.

    python bench/run.py [--moldau-cmd "moldau server"] [--gib G | --records N] [--repeat R]
                        [--only loopback,startup,produce,consume,latency,small,rss]

Both brokers run at the same time on free loopback ports, pinned to one core (clients to the other).
Every phase runs the same client with the same settings against each broker in turn, alternating the
order between rounds, so drift on a noisy machine hits both. Prints `metric | moldau | tansu | ratio`
(medians over rounds) and writes everything measured to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import brokers as B  # bench/ is sys.path[0] when run as `python bench/run.py`
import clients as C

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ["loopback", "startup", "produce", "consume", "latency", "small", "rss"]
KIB = 1024
CLIENT_BOUND = 0.8  # client CPU / measured seconds above which a throughput may be client-bound

# (key in summary, label, unit, higher_is_better)
ROWS = [
    ("startup_tcp_ms", "startup: process start -> TCP accept", "ms", False),
    ("startup_api_ms", "startup: process start -> ApiVersions answered", "ms", False),
    ("produce_1p_mb_s", "produce 1 KiB, acks=1, 1 partition", "MB/s", True),
    ("produce_np_mb_s", "produce 1 KiB, acks=1, {np} partitions", "MB/s", True),
    ("consume_1p_mb_s", "consume from beginning, 1 partition", "MB/s", True),
    ("consume_np_mb_s", "consume from beginning, {np} partitions", "MB/s", True),
    ("latency_p50_ms", "end-to-end latency p50 @ {rate}/s", "ms", False),
    ("latency_p99_ms", "end-to-end latency p99 @ {rate}/s", "ms", False),
    ("small_sync_req_s", "small produce, linger 0, 1 in flight", "req/s", True),
    ("small_pipelined_req_s", "small produce, linger 0, pipelined", "req/s", True),
    ("rss_peak_mib", "broker RSS peak ({gib} GiB in+out)", "MiB", False),
    ("rss_after_mib", "broker RSS after ({gib} GiB in+out)", "MiB", False),
]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--moldau-cmd",
        default="moldau server",
        help="command line; '--override listeners=... --override log.dirs=...' is appended",
    )
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=CMD",
        help="another Moldau-style broker command, e.g. "
        "'uvloop=moldau server --override moldau.event.loop=uvloop'; add NAME to --brokers",
    )
    ap.add_argument(
        "--brokers",
        default="moldau,tansu",
        help="brokers to run, in this order; ratios are each one over the last (the reference)",
    )
    ap.add_argument("--only", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    ap.add_argument(
        "--gib", type=float, default=1.0, help="volume of the 1-partition produce/consume (RSS test)"
    )
    ap.add_argument(
        "--records", type=int, default=None, help="1 KiB records per 1-partition run (default: --gib)"
    )
    ap.add_argument("--partitions", type=int, default=4, help="partitions of the multi-partition topic")
    ap.add_argument("--latency-rate", type=int, default=10_000)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--small-count", type=int, default=20_000, help="requests per small-produce run")
    ap.add_argument("--small-size", type=int, default=100)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each throughput/small-request phase, alternating broker order; median reported",
    )
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--phase-timeout", type=float, default=300.0, help="seconds, per client run")
    ap.add_argument("--broker-cpus", default="0", help="taskset CPU list for the brokers ('' = no pinning)")
    ap.add_argument("--client-cpus", default="1", help="taskset CPU list for clients and this script")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.only = {p.strip() for p in args.only.split(",") if p.strip()}
    if unknown := args.only - set(PHASES):
        ap.error(f"unknown phases {unknown}")
    if args.records is None:
        args.records = int(args.gib * (1 << 30) / KIB)
    args.gib = round(args.records * KIB / (1 << 30), 3)
    return args


def specs(args) -> list[B.BrokerSpec]:
    """--brokers in order; a name given with --extra NAME=CMD is a Moldau-style command line too."""
    extra = dict(e.split("=", 1) for e in args.extra)
    out = []
    for name in [b.strip() for b in args.brokers.split(",") if b.strip()]:
        if name == "tansu":
            out.append(B.tansu_spec())
        elif name == "moldau" or name in extra:
            out.append(B.moldau_spec(extra.get(name, args.moldau_cmd), name))
        else:
            raise SystemExit(f"unknown broker {name!r}: use moldau, tansu or a name given with --extra")
    return out


def version_of(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def cpu_model() -> str:
    try:
        return next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        return "?"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pin(args) -> None:
    """Brokers on one core, clients (and this script) on the other: steadier numbers on a 2-core box,
    and a fair fight, since a Moldau broker is one event loop."""
    if args.broker_cpus:
        B.PIN[:] = ["taskset", "-c", args.broker_cpus]
    if args.client_cpus:
        C.PIN[:] = ["taskset", "-c", args.client_cpus]
        cpus = set()
        for part in args.client_cpus.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        os.sched_setaffinity(0, cpus)


# librdkafka's defaults, stated because rdkafka_performance would otherwise set linger.ms=1000.
BIG = ["-X", "linger.ms=5", "-X", "batch.size=1000000"]
# One record per ProduceRequest, sent as soon as it is produced.
TINY = ["-X", "linger.ms=0", "-X", "batch.num.messages=1"]
BROKER_PHASES = {"produce", "consume", "rss", "latency", "small"}


class Bench:
    """The brokers under test (running side by side) and the results gathered from them."""

    def __init__(self, args, workdir: Path, res: dict):
        self.args, self.workdir, self.res = args, workdir, res
        self.running: list[B.Broker] = []
        self.samplers: dict[str, B.RssSampler] = {}

    def start(self) -> None:
        for spec in specs(self.args):
            b = B.Broker(spec, self.workdir)
            if not b.start(timeout=60):
                log(f"{spec.name}: FAILED to start: {b.error}")
                self.res[spec.name]["error"] = b.error
                continue
            log(f"{spec.name}: listening on {b.bootstrap} (pid {b.proc.pid}, {b.startup_s * 1000:.0f} ms)")
            self.running.append(b)
            self.samplers[spec.name] = B.RssSampler(b).__enter__()

    def stop(self) -> None:
        for s in self.samplers.values():
            s.__exit__(None, None, None)
        for b in self.running:
            b.stop()
            log(f"{b.spec.name}: stopped")

    def topics(self, r: int) -> dict[str, int]:
        only, n = self.args.only, self.args.partitions
        t = {}
        if only & {"produce", "consume", "rss"}:
            t.update({f"bench-1p-r{r}": 1, f"bench-{n}p-r{r}": n})
        if "small" in only:
            t.update({f"bench-small-sync-r{r}": 1, f"bench-small-pipe-r{r}": 1})
        return t

    def create_topics(self, topics: dict[str, int]) -> None:
        for b in list(self.running) if topics else []:
            try:
                C.create_topics(b.bootstrap, topics)
            except Exception as e:  # noqa: BLE001 - a broker that cannot create topics is reported, not fatal
                log(f"{b.spec.name}: create topics failed: {e!r}")
                self.res[b.spec.name]["error"] = f"create topics: {e!r}"
                self.running.remove(b)
                self.samplers.pop(b.spec.name).__exit__(None, None, None)
                b.stop()

    def each(self, phase: str, order: list[B.Broker], fn, **kw) -> None:
        """fn(broker, **kw) for each live broker in `order`; results appended under res[broker][phase]."""
        for b in order:
            if not b.alive():
                self.res[b.spec.name].setdefault("error", f"died before {phase}: {b.log_tail()}")
                continue
            log(f"{b.spec.name}: {phase}")
            r = fn(b, **kw)
            self.res[b.spec.name].setdefault(phase, []).append(r)
            brief = {
                k: round(r[k], 2) if isinstance(r[k], float) else r[k]
                for k in ("mb_s", "msgs_s", "p50_ms", "p99_ms", "error")
                if r.get(k)
            }
            log(f"{b.spec.name}: {phase} -> {brief}")

    def perf(
        self,
        b: B.Broker,
        tag: str,
        mode: str,
        topic: str,
        parts: list[int] | None,
        count: int,
        size: int,
        extra: list[str],
    ) -> dict:
        log_path = self.workdir / f"{b.spec.name}-{tag}.log"
        return C.perf(b, mode, topic, parts, count, size, extra, self.args.phase_timeout, log_path).as_dict()

    def repeat(self, r: int) -> None:
        """One round of the throughput and small-request phases on fresh topics."""
        a, n = self.args, self.args.partitions
        order = self.running if r % 2 == 0 else self.running[::-1]  # ABBA: drift hits both brokers alike
        if a.only & {"produce", "consume", "rss"}:
            for mode, phase in (("P", "produce_1p"), ("C", "consume_1p")):
                self.each(
                    phase,
                    order,
                    self.perf,
                    tag=f"{phase}-r{r}",
                    mode=mode,
                    topic=f"bench-1p-r{r}",
                    parts=[0],
                    count=a.records,
                    size=KIB,
                    extra=BIG if mode == "P" else [],
                )
            if r == 0:
                self.snapshot_rss()
        if a.only & {"produce", "consume"}:
            count = max(a.records // 2, 1)
            for mode, phase, parts in (("P", f"produce_{n}p", None), ("C", f"consume_{n}p", list(range(n)))):
                self.each(
                    phase,
                    order,
                    self.perf,
                    tag=f"{phase}-r{r}",
                    mode=mode,
                    topic=f"bench-{n}p-r{r}",
                    parts=parts,
                    count=count,
                    size=KIB,
                    extra=BIG if mode == "P" else [],
                )
        if "small" in a.only:
            self.each(
                "small_sync",
                order,
                self.perf,
                tag=f"small-sync-r{r}",
                mode="P",
                topic=f"bench-small-sync-r{r}",
                parts=[0],
                count=a.small_count,
                size=a.small_size,
                extra=TINY + ["-X", "max.in.flight=1"],
            )
            self.each(
                "small_pipelined",
                order,
                self.perf,
                tag=f"small-pipe-r{r}",
                mode="P",
                topic=f"bench-small-pipe-r{r}",
                parts=[0],
                count=a.small_count * 2,
                size=a.small_size,
                extra=TINY,
            )
        # Drop this round's topics so that every round starts from the same broker state.
        for b in self.running:
            names = list(self.topics(r))
            if names and b.alive() and (err := C.delete_topics(b.bootstrap, names)):
                log(f"{b.spec.name}: delete topics failed (not fatal): {err}")
                self.res[b.spec.name].setdefault("warnings", []).append(f"delete topics r{r}: {err}")

    def snapshot_rss(self) -> None:
        time.sleep(1.0)  # let the broker settle after the consumer left
        for b in self.running:
            peak = max(self.samplers[b.spec.name].peak_kb, b.hwm_kb())
            self.res[b.spec.name]["rss"] = {
                "after_kb": b.rss_kb(),
                "peak_kb": peak,
                "volume_gib": self.args.gib,
            }

    def latency(self) -> None:
        a = self.args
        self.create_topics({"bench-latency": 1})
        self.each(
            "latency",
            self.running,
            C.latency,
            topic="bench-latency",
            rate=a.latency_rate,
            seconds=a.latency_seconds,
            size=KIB,
            warmup=1.0,
            timeout=a.phase_timeout,
            workdir=self.workdir,
        )


def run(args) -> dict:
    pin(args)
    workdir = Path(tempfile.mkdtemp(prefix="moldau-bench-"))
    log(f"logs in {workdir}")
    res = {s.name: {} for s in specs(args)}
    report: dict = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "args": {
            k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
        },
        "machine": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpu": cpu_model(),
        },
        "versions": {
            "librdkafka": C.librdkafka_version(),
            "tansu": version_of([B.tansu_binary(), "--version"]),
        },
        "brokers": res,
        "logs": str(workdir),
    }
    if "loopback" in args.only:
        log("loopback TCP reference")
        report["loopback"] = C.loopback(B.PIN, 2 << 30)
        log(f"loopback -> {report['loopback']}")
    if "startup" in args.only:
        for spec in specs(args):
            log(f"{spec.name}: startup x{args.startup_runs}")
            res[spec.name]["startup"] = B.startup_times(spec, workdir, args.startup_runs, timeout=60)
    if args.only & BROKER_PHASES:
        bench = Bench(args, workdir, res)
        try:
            bench.start()
            for r in range(args.repeat):
                bench.create_topics(bench.topics(r))
                bench.repeat(r)
            if "latency" in args.only:
                bench.latency()
            for b in bench.running:
                res[b.spec.name]["rss_end_kb"] = b.rss_kb()
        finally:
            bench.stop()
    report["summary"] = summarize(res, args.partitions)
    return report


def summarize(res: dict, np_: int) -> dict:
    """{broker: {metric: {"median", "min", "max", "n"}}} from the raw runs."""

    def stat(values: list[float]) -> dict | None:
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}

    def runs(r: dict, phase: str, field: str, require_complete: bool = True) -> list:
        out = []
        for run in r.get(phase) or []:
            if require_complete and run.get("error"):
                continue  # incomplete or failed runs do not count
            out.append(run.get(field))
        return out

    out = {}
    for name, r in res.items():
        st = r.get("startup") or {}
        rss = r.get("rss") or {}
        metrics = {
            "startup_tcp_ms": stat([t * 1000 for t in st.get("tcp_s", [])]),
            "startup_api_ms": stat([t * 1000 for t in st.get("api_s", [])]),
            "produce_1p_mb_s": stat(runs(r, "produce_1p", "mb_s")),
            "produce_np_mb_s": stat(runs(r, f"produce_{np_}p", "mb_s")),
            "consume_1p_mb_s": stat(runs(r, "consume_1p", "mb_s")),
            "consume_np_mb_s": stat(runs(r, f"consume_{np_}p", "mb_s")),
            "latency_p50_ms": stat(runs(r, "latency", "p50_ms")),
            "latency_p99_ms": stat(runs(r, "latency", "p99_ms")),
            "small_sync_req_s": stat(runs(r, "small_sync", "msgs_s")),
            "small_pipelined_req_s": stat(runs(r, "small_pipelined", "msgs_s")),
            "rss_peak_mib": stat([rss["peak_kb"] / 1024] if rss.get("peak_kb") else []),
            "rss_after_mib": stat([rss["after_kb"] / 1024] if rss.get("after_kb") else []),
        }
        out[name] = {k: v for k, v in metrics.items() if v}
        # Share of one core used while the client measured (CPU seconds / measured seconds): a client
        # near 1.0 means the client, not the broker, may be the limit of that number.
        for phase in ("produce_1p", f"produce_{np_}p", "consume_1p", f"consume_{np_}p", "small_pipelined"):
            for who in ("client", "broker"):
                util = [x[f"{who}_cpu_s"] / x["seconds"] for x in r.get(phase) or [] if x.get("seconds")]
                if util:
                    out[name][f"{phase}_{who}_cpu"] = stat(util)
    return out


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"


def table(report: dict) -> str:
    names = list(report["summary"])
    a = report["args"]
    ref = names[-1] if len(names) > 1 else None
    head = ["metric", *names] + [f"{n}/{ref}" for n in names[:-1] if ref]
    rows = [head]
    for key, label, unit, higher in ROWS:
        stats = [report["summary"][n].get(key) for n in names]
        if all(s is None for s in stats):
            continue
        label = label.format(np=a["partitions"], rate=a["latency_rate"], gib=a["gib"])
        cells = []
        for s in stats:
            if s is None:
                cells.append("-")
            elif s["n"] > 1:
                cells.append(f"{fmt(s['median'])} [{fmt(s['min'])}-{fmt(s['max'])}]")
            else:
                cells.append(fmt(s["median"]))
        row = [f"{label} [{unit}] {'↑' if higher else '↓'}"] + cells
        for s in stats[:-1] if ref else []:
            ok = s is not None and stats[-1] is not None and stats[-1]["median"]
            row.append(f"{s['median'] / stats[-1]['median']:.2f}" if ok else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append("↑ higher is better, ↓ lower is better; median [min-max] over runs; MB = 10^6 bytes")
    for n in names:
        busy = [
            f"{k.removesuffix('_client_cpu')} {v['median']:.0%}"
            for k, v in report["summary"][n].items()
            if k.endswith("_client_cpu") and v["median"] >= CLIENT_BOUND
        ]
        if busy:
            lines.append(f"client near one full core (may be the limit) with {n}: " + ", ".join(busy))
    if (lo := report.get("loopback") or {}).get("mb_s"):
        lines.append(f"reference: plain loopback TCP client core -> broker core {lo['mb_s']:,.0f} MB/s")
    errors = [
        f"{n}: {phase}: {run['error']}"
        for n, r in report["brokers"].items()
        for phase, runs in r.items()
        if isinstance(runs, list)
        for run in runs
        if isinstance(run, dict) and run.get("error")
    ]
    errors += [f"{n}: {r['error']}" for n, r in report["brokers"].items() if r.get("error")]
    errors += [
        f"{n}: startup: {r['startup']['error']}"
        for n, r in report["brokers"].items()
        if (r.get("startup") or {}).get("error")
    ]
    return "\n".join(lines + ([""] + errors if errors else []))


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: brokers get killed
    try:
        report = run(args)
    finally:
        B.stop_all()
    text = table(report)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = args.out / f"{stamp}.json"
    for i in range(1, 100):
        if not path.exists():
            break
        path = args.out / f"{stamp}-{i}.json"
    report["table"] = text.splitlines()
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

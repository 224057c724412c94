"""Given a broker, when `moldau produce` and `moldau consume` sit in pipelines (`tail -f log | moldau produce`,
`moldau consume | head -1`, `< file`, `> file`), then they stream, stop and report as Unix tools do."""

from __future__ import annotations

import os
import pty
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from moldau.client.client import Client
from moldau.protocol.records import iter_batches
from tests.cli.runner import MOLDAU, TIMEOUT_S, moldau
from tests.fixtures import unique_topic

DEADLINE_S = 30


def first_message(consumer: Consumer, deadline: float) -> str:
    while time.monotonic() < deadline:
        msg = consumer.poll(0.1)
        if msg is not None and not msg.error():
            return msg.value().decode()
    raise AssertionError("no record arrived")


def test_produce_sends_each_line_as_it_arrives(broker):
    topic = unique_topic("cli-stream")
    moldau("topic", "create", topic, "--partitions", "1", "-b", broker.bootstrap_servers)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": unique_topic("g"),
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    producer = subprocess.Popen([*MOLDAU, "produce", topic, "-b", broker.bootstrap_servers],
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert producer.stdin is not None
        # Given `tail -f`-like input: one line, then nothing for a while, stdin still open.
        for line in ("first line", "second line"):
            producer.stdin.write(line + "\n")
            producer.stdin.flush()
            sent_at = time.monotonic()
            # Then a consumer sees it while the producer is still waiting for more input.
            assert first_message(consumer, sent_at + DEADLINE_S) == line
            assert producer.poll() is None
        producer.stdin.close()
        assert producer.wait(TIMEOUT_S) == 0
        assert producer.stderr is not None and "Produced 2 record(s)" in producer.stderr.read()
    finally:
        consumer.close()
        if producer.poll() is None:
            producer.kill()
            producer.wait(10)


def test_fast_input_goes_out_in_batches_and_a_last_line_without_newline_counts(broker):
    topic = unique_topic("cli-batch")
    moldau("topic", "create", topic, "--partitions", "1", "-b", broker.bootstrap_servers)
    lines = "".join(f"line-{i}\n" for i in range(4999)) + "line-4999"  # no final newline, as `printf` writes
    assert "Produced 5000 record(s)" in moldau("produce", topic, "-b", broker.bootstrap_servers, stdin=lines).stderr
    with Client(broker.bootstrap_servers) as client:
        offset, batches = 0, 0
        while offset < 5000:
            data = bytes(client.fetch(topic, 0, offset).records or b"")
            for _, header in iter_batches(data):
                batches += 1
                offset = header.last_offset + 1
    # Lines that arrive together share batches (at most 500 records each), not one request per line.
    assert 10 <= batches <= 100, batches


def run_into_head(args: list[str]) -> tuple[int, str, str]:
    """`moldau ... | head -1`: moldau's exit status and stderr, and what head printed."""
    consume = subprocess.Popen([*MOLDAU, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=consume.stdout, stdout=subprocess.PIPE)
    assert consume.stdout is not None and consume.stderr is not None
    consume.stdout.close()  # only head reads it now, as in a shell pipeline
    try:
        printed, _ = head.communicate(timeout=TIMEOUT_S)
        status = consume.wait(TIMEOUT_S)
    finally:
        for process in (consume, head):
            if process.poll() is None:
                process.kill()
                process.wait(10)
    return status, consume.stderr.read().decode(), printed.decode()


def test_consume_into_head_exits_quietly(broker):
    topic = unique_topic("cli-pipe")
    bootstrap = ("-b", broker.bootstrap_servers)
    moldau("topic", "create", topic, "--partitions", "1", *bootstrap)
    # Enough records that moldau is still writing when head exits (the pipe holds 64 KiB).
    moldau("produce", topic, *bootstrap, stdin="".join(f"{i:08d}{'x' * 92}\n" for i in range(30000)))
    status, errors, printed = run_into_head(["consume", topic, "--from-beginning", *bootstrap])
    assert printed == f"{0:08d}{'x' * 92}\n"
    assert status in (0, 141) and errors == "", (status, errors)
    # And when head is gone while moldau waits for new records, it ends too instead of following forever.
    status, errors, printed = run_into_head(["consume", topic, "--offset", "29999", *bootstrap])
    assert printed.startswith("00029999") and status in (0, 141) and errors == "", (status, errors)


def test_exit_at_end_stops_after_the_last_record_of_every_partition(broker):
    topic = unique_topic("cli-end")
    bootstrap = ("-b", broker.bootstrap_servers)
    moldau("topic", "create", topic, "--partitions", "3", *bootstrap)
    moldau("produce", topic, "--partition", "1", *bootstrap, stdin="a\nb\nc\n")  # partitions 0 and 2 stay empty
    out = moldau("consume", topic, "--from-beginning", "--exit-at-end", *bootstrap, timeout=DEADLINE_S).stdout
    assert out.split() == ["a", "b", "c"]
    assert moldau("consume", topic, "-e", *bootstrap, timeout=DEADLINE_S).stdout == ""  # from the end: nothing


def run_with_terminal_stderr(args: list[str], stdin: Path, stdout: Path) -> tuple[int, bytes]:
    """Run moldau with stderr on a pseudo-terminal; its status and everything written to the terminal."""
    controller, terminal = pty.openpty()
    with stdin.open("rb") as source, stdout.open("wb") as sink:
        process = subprocess.Popen([*MOLDAU, *args], stdin=source, stdout=sink, stderr=terminal,
                                   env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(terminal)
    shown = bytearray()
    try:
        while True:
            try:
                chunk = os.read(controller, 1 << 16)
            except OSError:  # EIO: the process closed the terminal's last descriptor
                break
            if not chunk:
                break
            shown += chunk
        return process.wait(TIMEOUT_S), bytes(shown)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_progress_of_file_transfers_is_shown_on_a_terminal_only(broker, tmp_path):
    topic = unique_topic("cli-progress")
    bootstrap = ["-b", broker.bootstrap_servers]
    moldau("topic", "create", topic, "--partitions", "2", *bootstrap)
    records = tmp_path / "records.txt"
    records.write_text("".join(f"record-{i}\n" for i in range(20000)))
    empty, copy = tmp_path / "empty", tmp_path / "copy.txt"
    empty.write_bytes(b"")
    # Given stderr on a terminal, producing from a file shows progress, then the summary line.
    status, shown = run_with_terminal_stderr(["produce", topic, *bootstrap], records, tmp_path / "out")
    assert status == 0 and b"producing to" in shown and b"Produced 20000 record(s)" in shown
    # Consuming into a file shows how many records so far.
    status, shown = run_with_terminal_stderr(["consume", topic, "--from-beginning", "-e", *bootstrap], empty, copy)
    assert status == 0 and b"consuming" in shown and b"records" in shown
    assert sorted(copy.read_text().split()) == sorted(f"record-{i}" for i in range(20000))
    # When stderr is not a terminal (a log, CI), there is no progress output.
    with records.open() as source:
        result = subprocess.run([*MOLDAU, "produce", topic, *bootstrap], stdin=source, capture_output=True,
                                text=True, timeout=TIMEOUT_S, check=False)
    assert result.returncode == 0 and result.stderr == f"Produced 20000 record(s) to {topic}.\n"

"""Given a fresh broker, when a person types the README's "Using it" examples, then every one of them works and
ends by itself, and the "another port" example reaches a broker on that port."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

from tests.cli.runner import TIMEOUT_S, moldau, moldau_on_path
from tests.fixtures import PROCESS_START_TIMEOUT_S, free_port, wait_for_port

README = Path(__file__).resolve().parents[2] / "README.md"


def using_it_blocks() -> list[list[str]]:
    """The command lines of each ```sh block in the README's "Using it" section."""
    text = README.read_text()
    section = text[text.index("## Using it"):]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def run_line(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], env=env, cwd=cwd, text=True, capture_output=True,
                          timeout=TIMEOUT_S, check=False)


def test_every_example_works_on_a_fresh_broker_and_ends(broker, tmp_path):
    env = moldau_on_path(tmp_path / "bin")
    env["MOLDAU_BOOTSTRAP_SERVER"] = broker.bootstrap_servers
    examples = using_it_blocks()[0]
    assert any("group describe my-app" in line for line in examples)
    for line in examples:
        if line.startswith("moldau server"):
            continue  # the fixture is the server
        # A command that never ends fails here with TimeoutExpired: the README must not show one.
        result = run_line(line, env, tmp_path)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        assert "Traceback" not in result.stderr, line
        if "consume events --group my-app --from-beginning" in line:  # the group member reads both records
            assert sorted(result.stdout.split()) == ["hello", "world"], result.stdout
    # The group the README's consumer created was described and then reset to the start of the log.
    described = json.loads(moldau("group", "describe", "my-app", "--json", env=env).stdout)
    assert {p["partition"] for p in described["partitions"]} == {0, 1, 2}
    assert all(p["current_offset"] == 0 for p in described["partitions"])


def test_another_port_example_reaches_the_broker_on_that_port(tmp_path):
    env = moldau_on_path(tmp_path / "bin")
    env.pop("MOLDAU_BOOTSTRAP_SERVER", None)
    block = next(b for b in using_it_blocks() if any("listeners=" in line for line in b))
    documented_port = re.search(r"listeners=PLAINTEXT://localhost:(\d+)", block[0]).group(1)  # type: ignore[union-attr]
    port = str(free_port())
    server_line, *client_lines = (line.replace(documented_port, port) for line in block)
    assert server_line.startswith("moldau server")
    server = subprocess.Popen(["bash", "-c", f"exec {server_line}"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(int(port), PROCESS_START_TIMEOUT_S, server)
        moldau("topic", "create", "on-another-port", "-b", f"127.0.0.1:{port}")
        script = "set -e\n" + "\n".join(client_lines)
        result = run_line(script, env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "on-another-port" in result.stdout.split()
        # The alternative the README gives in a comment: -b on the command line.
        alternative = re.search(r"# or: (moldau .*)$", "\n".join(client_lines), flags=re.MULTILINE)
        assert alternative is not None
        result = run_line(alternative.group(1), env, tmp_path)
        assert result.returncode == 0 and "on-another-port" in result.stdout.split(), result.stderr
        # Without either, the command says where it tried and how to point it elsewhere.
        result = run_line("moldau topic list", {**env, "MOLDAU_BOOTSTRAP_SERVER": "127.0.0.1:1"}, tmp_path)
        assert result.returncode == 1 and "127.0.0.1:1" in result.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)

"""Given a mistake (no broker there, a bad time, level, directory or config value), when a person runs
`moldau`, then one line says what was wrong and how to fix it: no traceback."""

from __future__ import annotations

import os

import pytest

import moldau as moldau_package
from tests.cli.runner import moldau
from tests.fixtures import free_port, unique_topic


def one_line_error(result, status: int = 1) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_connection_refused_names_the_address_and_how_to_change_it():
    port = free_port()  # nothing listens there
    error = one_line_error(moldau("topic", "list", "-b", f"127.0.0.1:{port}", check=False))
    assert f"127.0.0.1:{port}" in error and "Connection refused" in error
    assert "--bootstrap-server" in error and "MOLDAU_BOOTSTRAP_SERVER" in error and "localhost:9092" in error
    from_env = moldau("group", "list", check=False, env={**os.environ, "MOLDAU_BOOTSTRAP_SERVER": f"127.0.0.1:{port}"})
    assert f"127.0.0.1:{port}" in one_line_error(from_env)


def test_times_and_levels_that_cannot_be_parsed_are_one_line(broker, tmp_path):
    error = one_line_error(moldau("consume", "events", "--timestamp", "yesterday", check=False), 2)
    assert "'yesterday'" in error and "ISO 8601" in error
    error = one_line_error(moldau("group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday",
                                  "-b", broker.bootstrap_servers, check=False), 2)
    assert "--to-datetime 'yesterday'" in error
    error = one_line_error(moldau("server", "--log-level", "LOUD", check=False), 2)
    assert "'LOUD'" in error and "DEBUG" in error


def test_an_unusable_log_dir_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    data_dir = blocker / "data"
    result = moldau("server", "--override", f"log.dirs={data_dir}", "--override",
                    f"listeners=PLAINTEXT://127.0.0.1:{free_port()}", check=False)
    error = one_line_error(result, 2)
    assert str(data_dir) in error and "log.dirs" in error


@pytest.mark.parametrize(("args", "message"), [
    (["--config", "retention.ms=abc"],
     "Invalid value abc for configuration retention.ms: Not a number of type LONG"),
    (["--replication-factor", "3"],
     ("Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached "
     "because only 1 broker(s) are registered.")),
])
def test_broker_refusals_use_kafkas_words(broker, args, message):
    result = moldau("topic", "create", unique_topic("bad"), *args, "-b", broker.bootstrap_servers, check=False)
    error = one_line_error(result)
    assert message in error and "invalid literal" not in error


def test_version():
    result = moldau("--version")
    assert result.stdout == f"moldau {moldau_package.__version__}\n"

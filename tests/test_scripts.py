"""Given scripts/test.sh on a machine without npm, kcat, a JDK or root, when it sets up the test suite, then
it installs the Python packages (into a virtualenv) and goes on, with one line for each client it skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP_TIMEOUT_S = 300  # pip install -e fetches the build backend: about 40 s here, more on a loaded machine


def bare_path(tmp_path: Path) -> str:
    """A PATH with bash, python3 and coreutils but no npm, node, kcat, javac, java, sudo or apt-get, where
    `id -u` says this is not root."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env", "cat", "rm", "mkdir", "uname", "ls"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    fake_id = bin_dir / "id"
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    return str(bin_dir)


@pytest.mark.timeout(SETUP_TIMEOUT_S + 60)
def test_setup_without_npm_kcat_jdk_or_root_goes_on_with_a_note_for_each(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=bare_path(tmp_path), MOLDAU_VENV=str(tmp_path / "venv"), MOLDAU_TEST_SETUP_ONLY="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(["bash", str(REPO / "scripts" / "test.sh")], check=False, env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("scripts/test.sh: ")]
    assert any("skipping the kcat tests" in n and "needs root" in n for n in notes), done.stderr
    assert any("skipping the kafkajs tests: npm is not installed" in n for n in notes), done.stderr
    assert any("skipping the Java client tests: no JDK" in n for n in notes), done.stderr
    assert notes[-1].endswith("not running pytest (MOLDAU_TEST_SETUP_ONLY=1)")
    # The Python packages went into the virtualenv, with moldau from this checkout.
    venv_python = tmp_path / "venv" / "bin" / "python"
    where = subprocess.run([str(venv_python), "-c", "import moldau, confluent_kafka; print(moldau.__file__)"],
                           check=False, capture_output=True, text=True, timeout=60, env={"PATH": env["PATH"]})
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(REPO / "src")

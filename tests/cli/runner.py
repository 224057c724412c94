"""Running the real `moldau` command as a subprocess, the way a person or a script does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 60
MOLDAU = [sys.executable, "-m", "moldau.cli.main"]


def moldau(*args: str, stdin: str = "", check: bool = True, env: dict[str, str] | None = None,
           timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*MOLDAU, *args], input=stdin, text=True, check=False, capture_output=True,
                            timeout=timeout, env=env)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def moldau_on_path(directory: Path) -> dict[str, str]:
    """An environment in which `moldau` runs this checkout's code (what `pip install .` provides)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "moldau"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m moldau.cli.main "$@"\n')
    script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{directory}{os.pathsep}{env.get('PATH', '')}"
    return env

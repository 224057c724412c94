"""`moldau server`: run a broker.

Parsed with argparse rather than typer: `moldau.cli.main` sends `server` here before loading the typer
app, so a broker starts without importing typer, pydantic, rich or the client, which took longer than
importing the broker itself (issue 9: startup time; `bench/startup_bench.py`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HELP = "Run a broker until SIGTERM/SIGINT (data in ./moldau-data and port 9092 unless configured)."


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage block: "error: ..." like every other command
        self.exit(2, f"error: {message}\n")


def _log_dirs_problem(log_dirs: list[str]) -> str | None:
    """Each of log.dirs must be a directory we can write, checked before the broker starts so that a bad
    path is one line naming it rather than a traceback (Kafka: "Failed to create or validate data directory")."""
    for directory in log_dirs:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            return f"cannot create log.dirs directory {str(directory)!r}: {exc.strerror or exc}"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"log.dirs directory {str(directory)!r} is not writable"
    return None


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="moldau server", description=HELP)
    p.add_argument("--config", "-c", type=Path, help="server.properties or .toml")
    p.add_argument("--override", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="key=value, Kafka's config names (repeatable)")
    p.add_argument("--log-level", type=_log_level, default="INFO", help=", ".join(LOG_LEVELS))
    return p


def main(argv: list[str]) -> int:
    """Run `moldau server ARGV...`; returns the exit code (2 for a bad option or config)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moldau.broker.config import ConfigError, load_config, parse_overrides

    try:
        broker_config = load_config(args.config, parse_overrides(args.override))
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = _log_dirs_problem([str(d) for d in broker_config.log_dirs])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from moldau.broker.server import run_broker

    run_broker(broker_config)
    return 0

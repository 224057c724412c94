"""The `moldau` command line: run a broker, manage topics, produce and consume.

`moldau server` goes straight to `cli/server.py`; every other command loads the typer app (`cli/app.py`),
whose imports (typer, pydantic, rich, the client) would otherwise double a broker's startup time.
"""

from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str] | None = None) -> None:
    """The `moldau` command (`python -m moldau.cli.main` too)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["server"]:
        from moldau.cli.server import main as server_main

        sys.exit(server_main(args[1:]))
    from moldau.cli.app import app

    app(args=args, prog_name="moldau")


def __getattr__(name: str) -> Any:
    # `from moldau.cli.main import app` (tests, older installed `moldau` scripts) still finds the typer app.
    if name == "app":
        from moldau.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()

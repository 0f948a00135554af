"""The ``custodes`` command: a thin layer over the packages (DESIGN.md §9).

``custodes run`` is a container's entrypoint, and its start-up time adds to every application start, so
:func:`main` hands it to :mod:`custodes.cli._run` before importing the rest of the CLI (typer, the CAS server, the
policy language, ...). ``app``, the full typer application, is imported on first access.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["run"]:
        from custodes.cli._run import main as run_main  # noqa: PLC0415

        raise SystemExit(run_main(sys.argv[2:]))
    from custodes.cli._app import main as app_main  # noqa: PLC0415

    app_main()


def __getattr__(name: str) -> Any:
    if name == "app":
        from custodes.cli._app import app  # noqa: PLC0415

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

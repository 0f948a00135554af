"""What every command shares: one-line errors with a stable code, and the CAS connection options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from custodes.clock import require_utc
from custodes.errors import CustodesError
from custodes.policy import parse_duration

__all__ = ["CasCertOption", "CasOption", "die", "duration_option", "handles_errors"]

F = TypeVar("F", bound=Callable[..., Any])

CasOption = Annotated[
    str | None, typer.Option("--cas", envvar="CUSTODES_CAS", help="CAS URL, e.g. https://127.0.0.1:8443")
]
CasCertOption = Annotated[
    Path | None,
    typer.Option("--cas-cert", envvar="CUSTODES_CAS_CERT", help="the CAS certificate to pin (DATA_DIR/cas-cert.pem)"),
]


def die(code: str, message: str, exit_code: int = 1) -> None:
    """Print one line to stderr and exit non-zero."""
    print(f"error: {code}: {message}", file=sys.stderr)
    raise typer.Exit(exit_code)


def duration_option(flag: str, text: str) -> timedelta:
    """A duration given on the command line ("30s", "15m", "1h30m"); a bad one is a one-line error."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        die("ARGUMENT_INVALID", f"{flag}: {exc}")
        raise  # unreachable: die exits


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)  # four-digit years, which every timestamp custodes writes has


def time_option(flag: str, text: str, *, code: str = "ARGUMENT_INVALID") -> datetime:
    """A time given on the command line: ISO 8601 with a zone (``Z`` or an offset), 1970 to 9998, in UTC; anything
    else is one error line."""
    try:
        when: datetime | None = require_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except (ValueError, OverflowError):
        when = None
    if when is None or not _EARLIEST <= when < _LATEST:
        die(code, f"{flag}: {text!r} is not an ISO 8601 time with a time zone, 1970 to 9998 (e.g. 2026-01-01T00:00Z)")
    return when  # type: ignore[return-value]  (die exits)


def handles_errors(func: F) -> F:
    """Turn custodes errors (and file errors) into one line on stderr and exit code 1; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CustodesError as exc:
            die(exc.code, exc.message.splitlines()[0] if exc.message else exc.code)
        except OSError as exc:
            die("FILE_ERROR", f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except UnicodeDecodeError:  # a safety net: inputs are decoded where they are read, naming the file
            die("ARGUMENT_INVALID", "an input is not valid UTF-8")
        return None

    return wrapper  # type: ignore[return-value]

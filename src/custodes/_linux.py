"""Linux process controls (``prctl``) used by the CAS's supervisor and by ``custodes run``. One place, loaded once."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["become_subreaper", "die_with_parent", "prctl"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc: ctypes.CDLL | None = None


def prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (Linux), loaded once; None where it does not exist."""
    global _libc  # noqa: PLW0603  (a cache)
    if not sys.platform.startswith("linux"):
        return None
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        call = _libc.prctl
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    call.restype = ctypes.c_int
    return call  # type: ignore[no-any-return]


def become_subreaper() -> bool:
    """Ask Linux to re-parent orphaned descendants to this process (``PR_SET_CHILD_SUBREAPER``), so it can reap them
    even when it is not PID 1. Returns False where that is not available."""
    call = prctl()
    return call is not None and call(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def die_with_parent(parent: int, exit_code: int, call: Callable[..., int] | None = None) -> None:
    """In a child: have the kernel SIGKILL this process when ``parent`` dies (``PR_SET_PDEATHSIG``), and exit with
    ``exit_code`` at once if it already has (the child was re-parented before the request took effect, so no signal
    would ever come). ``call``: :func:`prctl`, looked up before a fork where nothing may be loaded after it."""
    call = call or prctl()
    if call is not None:
        call(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(exit_code)

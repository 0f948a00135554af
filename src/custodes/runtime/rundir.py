"""The runtime's own directory: where ``custodes run`` keeps what it manages itself (not the policy's files).

Location, first that applies: ``--runtime-dir`` / ``CUSTODES_RUNTIME_DIR``; ``/run/custodes`` when it exists or can
be made (root in a container); ``$XDG_RUNTIME_DIR/custodes`` (a desktop or CI login); else
``<tmp>/custodes-<uid>``. Each instance gets its own ``<service>.<pid>`` directory (mode 0700) holding
``status.json`` (no secrets: state, lease id and expiry, renewal count, application pid) for probes and operators.
The instance directory is removed on exit.

The base must be a real directory (not a symbolic link) owned by this user (or root) that no other user can write to,
unless it is sticky (as ``/tmp`` is: then nobody else can rename what is in it). Otherwise another user could have
made it first (``<tmp>/custodes-<uid>`` is a predictable name in a shared directory) and swap the instance directory
for a link to one of this user's directories, whose files the runtime would then write and delete. The runtime
refuses such a base (``RUNTIME_DIR_UNWRITABLE``). It also never follows links inside its instance directory: status
writes and cleanup go through a descriptor of the directory it created.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custodes.errors import CustodesError

__all__ = ["RuntimeDir", "default_runtime_base"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def default_runtime_base(env: Mapping[str, str]) -> Path:
    """The base directory, by the rules in the module docstring."""
    explicit = env.get("CUSTODES_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    system = Path("/run/custodes")
    if os.access(system, os.W_OK) or (not system.exists() and os.access(system.parent, os.W_OK)):
        return system
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg) / "custodes"
    import tempfile  # noqa: PLC0415  (the last resort; not worth its import on every start)

    return Path(tempfile.gettempdir()) / f"custodes-{os.getuid()}"


def _unwritable(base: Path, why: str) -> CustodesError:
    return CustodesError("RUNTIME_DIR_UNWRITABLE", f"cannot use {base} as the runtime directory: {why}")


def _open_base(base: Path) -> int:
    """Make ``base`` if it is missing, then open it without following a link and check who can write to it.

    Raises:
        CustodesError: ``RUNTIME_DIR_UNWRITABLE``.
    """
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        pass  # a file, or a link: reported below
    except OSError as exc:
        raise _unwritable(base, exc.strerror or str(exc)) from None
    try:
        fd = os.open(base, _DIR_FLAGS)
    except OSError as exc:
        with contextlib.suppress(OSError):
            mode = os.lstat(base).st_mode
            if stat.S_ISLNK(mode):
                raise _unwritable(base, "it is a symbolic link") from None
            if not stat.S_ISDIR(mode):
                raise _unwritable(base, "it is not a directory") from None
        raise _unwritable(base, exc.strerror or str(exc)) from None
    st = os.fstat(fd)
    why = None
    if st.st_uid not in (os.geteuid(), 0):
        why = f"it belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        why = f"other users can write to it (mode {stat.S_IMODE(st.st_mode):04o})"
    if why is not None:
        os.close(fd)
        raise _unwritable(base, why)
    return fd


@dataclass
class RuntimeDir:
    """An instance directory. ``fd`` is a descriptor of it, opened when it was made (-1 once cleaned up): everything
    inside is done relative to it, so a directory renamed or swapped for a link afterwards is never followed."""

    path: Path
    fd: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)  # status vs cleanup

    @classmethod
    def create(cls, base: Path, service: str) -> RuntimeDir:
        """Make ``base/<service>.<pid>`` (0700).

        Raises:
            CustodesError: ``RUNTIME_DIR_UNWRITABLE`` (also for a base that is not a directory, is a symbolic link,
                belongs to another user or is writable by others).
        """
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", service)[:64] or "service"
        base_fd = _open_base(base)
        try:
            for candidate in (f"{name}.{os.getpid()}", f"{name}.{os.getpid()}.{secrets.token_hex(3)}"):
                try:
                    os.mkdir(candidate, 0o700, dir_fd=base_fd)
                except FileExistsError:
                    continue
                fd = os.open(candidate, _DIR_FLAGS, dir_fd=base_fd)
                return cls(base / candidate, fd)
            raise _unwritable(base, "the instance directory exists")
        except OSError as exc:
            raise _unwritable(base, exc.strerror or str(exc)) from None
        finally:
            os.close(base_fd)

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Replace ``status.json`` atomically. Failures are ignored: status is advisory, the lease is not."""
        temp = f".status.{secrets.token_hex(4)}"
        with self._lock, contextlib.suppress(OSError):
            if self.fd < 0:
                return
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=self.fd)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(dict(status), sort_keys=True) + "\n")
                os.replace(temp, "status.json", src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=self.fd)
                raise

    def cleanup(self) -> None:
        """Remove what is in the instance directory (never following a link) and the directory itself, if it is still
        the one this runtime made. Idempotent."""
        with self._lock:
            self._cleanup()

    def _cleanup(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            st = os.fstat(self.fd)
            for entry in os.listdir(self.fd):
                with contextlib.suppress(OSError):
                    os.unlink(entry, dir_fd=self.fd)
            here = os.lstat(self.path)
            if (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino):
                os.rmdir(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1

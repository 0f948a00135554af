"""The runtime's own directory: where ``custodes run`` keeps what it manages itself (not the policy's files).

Location, first that applies: ``--runtime-dir`` / ``CUSTODES_RUNTIME_DIR``; ``/run/custodes`` when it exists or can
be made (root in a container); ``$XDG_RUNTIME_DIR/custodes`` (a desktop or CI login); else
``<tmp>/custodes-<uid>``. Each instance gets its own ``<service>.<pid>`` directory (mode 0700) holding
``status.json`` (no secrets: state, lease id and expiry, renewal count, application pid) for probes and operators.
The instance directory is removed on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.errors import CustodesError

__all__ = ["RuntimeDir", "default_runtime_base"]


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


@dataclass(frozen=True)
class RuntimeDir:
    path: Path

    @classmethod
    def create(cls, base: Path, service: str) -> RuntimeDir:
        """Make ``base/<service>.<pid>`` (0700).

        Raises:
            CustodesError: ``RUNTIME_DIR_UNWRITABLE``.
        """
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", service)[:64] or "service"
        path = base / f"{name}.{os.getpid()}"
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.mkdir(mode=0o700)
        except FileExistsError:
            path = base / f"{name}.{os.getpid()}.{secrets.token_hex(3)}"
            path.mkdir(mode=0o700)
        except OSError as exc:
            raise CustodesError(
                "RUNTIME_DIR_UNWRITABLE", f"cannot create the runtime directory under {base}: {exc.strerror or exc}"
            ) from None
        return cls(path)

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Replace ``status.json`` atomically. Failures are ignored: status is advisory, the lease is not."""
        temp = self.path / f".status.{secrets.token_hex(4)}"
        with contextlib.suppress(OSError):
            temp.write_text(json.dumps(dict(status), sort_keys=True) + "\n")
            os.replace(temp, self.path / "status.json")

    def cleanup(self) -> None:
        for child in self.path.glob("*"):
            with contextlib.suppress(OSError):
                child.unlink()
        for child in self.path.glob(".status.*"):
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            self.path.rmdir()

"""Materialise a rendered config: the application's files and environment, before the application starts.

Files go to the policy's absolute paths with the policy's modes. Each is written to a fresh temporary name in its
directory and renamed into place, so the application never sees a half-written file, and every writer (two
instances side by side during a rolling update, say) owns a distinct inode. Cleanup removes a path only while it is
still the inode this runtime wrote, and removes only directories this runtime created and left empty, so an instance
that stops never deletes another instance's files.

Directories this runtime creates are ``0700``: the application runs as the runtime's user.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from custodes.config import RenderedConfig, RenderedFile
from custodes.errors import CustodesError

__all__ = ["MaterialisedFiles", "child_environment", "write_files"]

_DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class _Written:
    path: Path
    device: int
    inode: int


@dataclass
class MaterialisedFiles:
    """What :func:`write_files` wrote; :meth:`cleanup` undoes it (idempotent)."""

    files: list[_Written] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(w.path for w in self.files)

    def cleanup(self) -> None:
        for written in reversed(self.files):
            try:
                st = os.lstat(written.path)
                if (st.st_dev, st.st_ino) == (written.device, written.inode):
                    os.unlink(written.path)
            except OSError:
                continue
        for directory in reversed(self.created_dirs):
            with contextlib.suppress(OSError):  # not empty (someone else's files) or already gone
                os.rmdir(directory)
        self.files.clear()
        self.created_dirs.clear()


def _checked_path(raw: str) -> Path:
    pure = PurePosixPath(raw)
    if not pure.is_absolute() or "\x00" in raw or ".." in pure.parts or pure == PurePosixPath("/"):
        raise CustodesError("FILE_PATH_INVALID", f"file path {raw!r} is not a plain absolute path")
    return Path(raw)


def _make_parents(directory: Path, done: MaterialisedFiles) -> None:
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        os.mkdir(path, _DIR_MODE)
        done.created_dirs.append(path)


def _write_one(file: RenderedFile, done: MaterialisedFiles) -> None:
    path = _checked_path(file.path)
    try:
        _make_parents(path.parent, done)
    except OSError as exc:
        raise CustodesError(
            "FILE_PATH_UNWRITABLE", f"cannot create the directory for {path}: {exc.strerror or exc}"
        ) from None
    temp = path.parent / f".{path.name}.custodes-{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600)
    except OSError as exc:
        raise CustodesError("FILE_PATH_UNWRITABLE", f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(file.content)
            os.fchmod(fh.fileno(), file.mode)  # exactly the policy's mode, whatever the umask
        st = os.lstat(temp)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise CustodesError("FILE_PATH_UNWRITABLE", f"cannot write {path}: {exc.strerror or exc}") from None
    done.files.append(_Written(path, st.st_dev, st.st_ino))


def write_files(files: Sequence[RenderedFile]) -> MaterialisedFiles:
    """Write every file, or none: on the first failure, everything already written is removed again.

    Raises:
        CustodesError: ``FILE_PATH_INVALID`` (not a plain absolute path) or ``FILE_PATH_UNWRITABLE`` (a parent
            cannot be created, or the file cannot be written). Messages name the path, never the content.
    """
    done = MaterialisedFiles()
    try:
        for file in files:
            _write_one(file, done)
    except BaseException:
        done.cleanup()
        raise
    return done


def child_environment(config: RenderedConfig, parent: Mapping[str, str]) -> dict[str, str]:
    """The application's environment: the policy's variables, plus only those runtime variables that the policy's
    ``inherit_env`` names (the policy's own value wins). Nothing else of the runtime's environment leaks through."""
    env = {name: parent[name] for name in config.inherit_env if name in parent}
    env.update(config.environment)
    return env

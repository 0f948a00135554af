"""The storage root key: where the 32-byte secret that protects the store comes from.

A :class:`KeySealer` turns the root key into bytes that may rest on disk and back. In a TEE, a sealer binds those
bytes to the platform and measurement (SGX seal key, SEV-SNP derived key), so a copy of the file is useless
elsewhere. Outside a TEE there is nothing to bind to: :class:`UnsafeSimulationKeySealer` stores the key *in the
clear*, protected only by file permissions. It is for development and CI, and its name says so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from custodes.store._crypto import ROOT_KEY_LEN
from custodes.store.errors import StoreIOError, StoreKeyInvalidError

__all__ = ["KeySealer", "UnsafeSimulationKeySealer", "load_or_create_storage_key"]

_MAX_SEALED = 64 * 1024


@runtime_checkable
class KeySealer(Protocol):
    """Protects the storage root key at rest. Implementations raise StoreKeyInvalidError if unsealing fails."""

    @property
    def file_name(self) -> str:
        """The file in the data directory that holds the sealed key."""
        ...

    def seal(self, key: bytes) -> bytes:
        """Turn the root key into bytes that may be written to untrusted disk."""
        ...

    def unseal(self, sealed: bytes) -> bytes:
        """Recover the root key from :meth:`seal`'s output."""
        ...


class UnsafeSimulationKeySealer:
    """Keeps the root key in plain text in ``storage.key`` (mode 0600). Simulation only: no TEE binds it.

    It protects against other unprivileged users on the host (file mode, owner check) and against accidents
    (a truncated or wrong-length file is refused). It does not protect against root, a backup of the data
    directory, or anyone who can read the file: they get the key, and with it every record.
    """

    file_name = "storage.key"

    def seal(self, key: bytes) -> bytes:
        return key

    def unseal(self, sealed: bytes) -> bytes:
        if len(sealed) != ROOT_KEY_LEN:
            raise StoreKeyInvalidError(
                message=f"{self.file_name} has the wrong length (expected {ROOT_KEY_LEN} bytes)",
                reasons=["KEY_FILE_LENGTH"],
            )
        return sealed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    """Read a key file, refusing anything but a regular file owned by us with no group/world permissions."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise StoreKeyInvalidError(message=f"cannot open {path.name} (symlink or unreadable)",
                                   reasons=["KEY_FILE_UNREADABLE"]) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreKeyInvalidError(message=f"{path.name} is not a regular file", reasons=["KEY_FILE_TYPE"])
        if st.st_mode & 0o077:
            raise StoreKeyInvalidError(
                message=f"{path.name} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                "it must be 0600",
                reasons=["KEY_FILE_MODE"],
            )
        if st.st_uid != os.geteuid():
            raise StoreKeyInvalidError(message=f"{path.name} is owned by another user", reasons=["KEY_FILE_OWNER"])
        chunks = []
        total = 0
        while chunk := os.read(fd, _MAX_SEALED + 1 - total):
            chunks.append(chunk)
            total += len(chunk)
            if total > _MAX_SEALED:
                raise StoreKeyInvalidError(message=f"{path.name} is too large", reasons=["KEY_FILE_LENGTH"])
        return b"".join(chunks)
    finally:
        os.close(fd)


def _create_key_file(path: Path, sealed: bytes) -> None:
    """Write ``sealed`` to ``path`` atomically, unless another writer created the file first.

    The bytes go to a temporary file made with O_EXCL and mode 0600, are fsynced, and are then hard-linked to the
    final name (link fails if the name exists), so a crash never leaves a partly written key under that name.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(sealed)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_or_create_storage_key(data_dir: Path, sealer: KeySealer | None = None) -> bytes:
    """Return the storage root key kept in ``data_dir``, creating a fresh random one on first use.

    Args:
        data_dir: the CAS data directory (created with mode 0700 if absent).
        sealer: how the key is protected at rest; default :class:`UnsafeSimulationKeySealer` (no TEE).

    Returns:
        The 32-byte root key.

    Raises:
        StoreKeyInvalidError: the key file is unsafe (permissions, owner, type) or does not unseal to 32 bytes.
        StoreIOError: the directory or file cannot be created.
    """
    sealer = sealer if sealer is not None else UnsafeSimulationKeySealer()
    data_dir = Path(data_dir)
    path = data_dir / sealer.file_name
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists() and not path.is_symlink():
            # If a concurrent creator wins the race, its file is the key; either way we read back what is on disk.
            _create_key_file(path, sealer.seal(secrets.token_bytes(ROOT_KEY_LEN)))
    except StoreKeyInvalidError:
        raise
    except OSError as e:
        raise StoreIOError(message=f"cannot create {sealer.file_name} in the data directory") from e
    key = sealer.unseal(_read_key_file(path))
    if len(key) != ROOT_KEY_LEN:
        raise StoreKeyInvalidError(message="unsealed storage key has the wrong length", reasons=["KEY_FILE_LENGTH"])
    return key

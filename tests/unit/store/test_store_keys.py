"""The storage root key file (simulation sealer) and the KeySealer seam."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custodes.store import (
    KeySealer,
    SqliteStore,
    StoreKeyInvalidError,
    UnsafeSimulationKeySealer,
    load_or_create_storage_key,
)


def test_creates_a_random_32_byte_key_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "cas"
    key = load_or_create_storage_key(data_dir)
    path = data_dir / "storage.key"
    assert len(key) == 32
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert [p.name for p in data_dir.iterdir()] == ["storage.key"]  # no temporary file left behind


def test_second_call_returns_the_same_key(tmp_path: Path) -> None:
    assert load_or_create_storage_key(tmp_path) == load_or_create_storage_key(tmp_path)


def test_two_data_dirs_get_different_keys(tmp_path: Path) -> None:
    assert load_or_create_storage_key(tmp_path / "a") != load_or_create_storage_key(tmp_path / "b")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o602, 0o610])
def test_refuses_group_or_world_permissions(tmp_path: Path, mode: int) -> None:
    load_or_create_storage_key(tmp_path)
    (tmp_path / "storage.key").chmod(mode)
    with pytest.raises(StoreKeyInvalidError) as err:
        load_or_create_storage_key(tmp_path)
    assert err.value.reasons == ["KEY_FILE_MODE"]


def test_accepts_an_owner_only_read_only_key_file(tmp_path: Path) -> None:
    key = load_or_create_storage_key(tmp_path)
    (tmp_path / "storage.key").chmod(0o400)
    assert load_or_create_storage_key(tmp_path) == key


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_refuses_a_key_file_of_the_wrong_length(tmp_path: Path, length: int) -> None:
    path = tmp_path / "storage.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"\x01" * length)
    os.close(fd)
    with pytest.raises(StoreKeyInvalidError) as err:
        load_or_create_storage_key(tmp_path)
    assert err.value.reasons == ["KEY_FILE_LENGTH"]
    assert path.read_bytes() == b"\x01" * length  # never silently replaced


def test_refuses_a_symlinked_key_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"\x02" * 32)
    target.chmod(0o600)
    data_dir = tmp_path / "cas"
    data_dir.mkdir()
    (data_dir / "storage.key").symlink_to(target)
    with pytest.raises(StoreKeyInvalidError):
        load_or_create_storage_key(data_dir)


def test_refuses_a_directory_in_place_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "storage.key").mkdir(mode=0o700)
    with pytest.raises(StoreKeyInvalidError):
        load_or_create_storage_key(tmp_path)


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(6)
    keys: list[bytes] = []

    def load() -> None:
        barrier.wait()
        keys.append(load_or_create_storage_key(tmp_path))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 6
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["storage.key"]


def test_the_key_opens_the_store_it_created(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path / "s.db", load_or_create_storage_key(tmp_path)) as s:
        s.commit({"a": b"1"})
    with SqliteStore.open(tmp_path / "s.db", load_or_create_storage_key(tmp_path)) as s:
        assert s.get("a") == b"1"


class _WrappingSealer:
    """A stand-in for a TEE sealer: wraps the root key under a 'platform' key it never writes to disk."""

    file_name = "storage.sealed"

    def __init__(self, platform_key: bytes) -> None:
        self._aead = AESGCM(platform_key)

    def seal(self, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, b"custodes/test-sealer")

    def unseal(self, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], b"custodes/test-sealer")
        except InvalidTag as e:
            raise StoreKeyInvalidError(message="cannot unseal", reasons=["UNSEAL_FAILED"]) from e


def test_a_pluggable_sealer_keeps_no_plain_key_on_disk(tmp_path: Path) -> None:
    sealer = _WrappingSealer(b"\x07" * 32)
    assert isinstance(sealer, KeySealer)
    assert isinstance(UnsafeSimulationKeySealer(), KeySealer)
    key = load_or_create_storage_key(tmp_path, sealer)
    on_disk = (tmp_path / "storage.sealed").read_bytes()
    assert key not in on_disk
    assert not (tmp_path / "storage.key").exists()
    assert load_or_create_storage_key(tmp_path, sealer) == key


def test_a_sealed_key_does_not_unseal_on_another_platform(tmp_path: Path) -> None:
    load_or_create_storage_key(tmp_path, _WrappingSealer(b"\x07" * 32))
    with pytest.raises(StoreKeyInvalidError) as err:
        load_or_create_storage_key(tmp_path, _WrappingSealer(b"\x08" * 32))
    assert err.value.reasons == ["UNSEAL_FAILED"]

"""The soft state every worker process of one CAS must agree on: single-use nonces, leases, and the policy
generation.

A CAS serves from one or more worker processes (``custodes cas serve --workers N``) that accept on one listening
socket, so a challenge may be issued by one worker and answered on a connection another worker accepted; a lease
issued by one is renewed through another. The tables therefore live in anonymous ``MAP_SHARED`` memory that the
supervisor maps before it forks the workers, in fixed-size records. One ``flock`` on a lock file guards them.
A kernel lock is released when its holder dies, so a worker killed mid-operation (OOM killer, ``SIGKILL``) cannot
wedge the others, which a process-shared semaphore would.

Policies and secrets are durable and live in the store; the workers only cache them. A write bumps the shared
``generation`` after its commit, and every worker reloads its policy cache when it sees a new one. Writes are
serialised across workers by a second ``flock`` (:meth:`SharedState.write_lock`), held over the read-check-commit
of a policy update or a secret's first generation.

Nothing here is secret: nonces are public challenges, lease ids are bearer-free handles (renewing one needs fresh,
accepted evidence), and only hashes of policy and service names are stored. The memory dies with the processes;
that is the intended lifetime (DESIGN.md §4: nonces are short-lived, and a lease is re-established by re-attesting).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import fcntl
import functools
import hashlib
import hmac
import mmap
import os
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from custodes.protocol import NONCE_BYTES, b64e

__all__ = ["Consumed", "LeaseRecord", "NonceRing", "NonceStatus", "SharedState", "binding_of"]

_SEQ = struct.Struct(">Q")

# Header: generation, attestation-nonce sequence, read-nonce sequence, lease cursor (u64 each), clock floor and clock
# lead (f64 each).
_HEADER = struct.Struct("=QQQQdd")
_FLOOR_OFFSET = 32
_LEAD_OFFSET = 40
_HEADER_SIZE = 64

# A nonce record: the nonce, its expiry (epoch seconds), its state, and a hash of what it was issued for.
_NONCE = struct.Struct("=32sdB7x16s")
# A lease record (the expiry lives in a separate f64 array, so counting live leases is one pass over floats).
_LEASE = struct.Struct("=16s16sdI4x")
_LEASE_ID = struct.Struct(">I16s")

_EMPTY, _OUTSTANDING, _USED = 0, 1, 2


class NonceStatus(enum.Enum):
    """Why a nonce was or was not accepted; the service layer maps these to its error codes."""

    FRESH = "fresh"
    UNKNOWN = "unknown"
    REUSED = "reused"


@dataclass(frozen=True, slots=True)
class Consumed:
    status: NonceStatus
    binding: bytes = b""
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    id: str
    binding: bytes
    expires_at: float
    renew_after: float
    renewals: int


@functools.lru_cache(maxsize=4096)
def binding_of(*parts: str) -> bytes:
    """A 16-byte hash of what a nonce or lease was issued for (policy and service names, or a purpose)."""
    return hashlib.sha256("\0".join(parts).encode()).digest()[:16]


class NonceRing:
    """Nonces in issue order: the slot of nonce number ``seq`` is ``seq % capacity``, so lookup is one read.

    A slot is reused only once its previous nonce is past its expiry plus ``retain`` (kept that long so that a
    replay is named as one); if the oldest slot is still retained, every slot is, and issuing is refused.
    """

    def __init__(self, mem: mmap.mmap, offset: int, capacity: int, seq_field: int) -> None:
        self._mem, self._offset, self.capacity, self._seq_field = mem, offset, capacity, seq_field

    @property
    def size(self) -> int:
        return self.capacity * _NONCE.size

    def _slot(self, seq: int) -> int:
        return self._offset + (seq % self.capacity) * _NONCE.size

    def issue(self, binding: bytes, now: float, expires_at: float, retain: float) -> bytes | None:
        """Under the table lock. Returns the new nonce, or None if the ring is full of retained nonces."""
        seq = _HEADER.unpack_from(self._mem, 0)[self._seq_field] + 1
        at = self._slot(seq)
        _, old_expires, old_state, _ = _NONCE.unpack_from(self._mem, at)
        if old_state != _EMPTY and old_expires + retain > now:
            return None
        nonce = _SEQ.pack(seq) + secrets.token_bytes(NONCE_BYTES - _SEQ.size)
        _NONCE.pack_into(self._mem, at, nonce, expires_at, _OUTSTANDING, binding)
        struct.pack_into("=Q", self._mem, 8 * self._seq_field, seq)
        return nonce

    def consume(self, nonce: bytes) -> Consumed:
        """Under the table lock. Marks a fresh nonce used; the caller checks its expiry and binding."""
        if len(nonce) != NONCE_BYTES:
            return Consumed(NonceStatus.UNKNOWN)
        at = self._slot(_SEQ.unpack_from(nonce)[0])
        stored, expires_at, state, binding = _NONCE.unpack_from(self._mem, at)
        if state == _EMPTY or not hmac.compare_digest(stored, nonce):
            return Consumed(NonceStatus.UNKNOWN)
        if state == _USED:
            return Consumed(NonceStatus.REUSED, binding, expires_at)
        self._mem[at + 40] = _USED  # the state byte (offset 32 + 8 in the record)
        return Consumed(NonceStatus.FRESH, binding, expires_at)


class _LeaseTable:
    """Leases in fixed slots; a lease id names its slot and carries a random tag that must match."""

    def __init__(self, mem: mmap.mmap, offset: int, capacity: int) -> None:
        self._mem, self.capacity = mem, capacity
        self._expiry_offset = offset
        self._records_offset = offset + 8 * capacity

    @property
    def size(self) -> int:
        return self.capacity * (8 + _LEASE.size)

    def _expiry(self, slot: int) -> float:
        return struct.unpack_from("=d", self._mem, self._expiry_offset + 8 * slot)[0]

    def _set_expiry(self, slot: int, value: float) -> None:
        struct.pack_into("=d", self._mem, self._expiry_offset + 8 * slot, value)

    def _record(self, slot: int) -> tuple[bytes, bytes, float, int]:
        return _LEASE.unpack_from(self._mem, self._records_offset + slot * _LEASE.size)

    def issue(self, binding: bytes, now: float, expires_at: float, renew_after: float) -> LeaseRecord | None:
        """Under the table lock. Takes the next slot, round robin, whose lease has expired; None if all are live."""
        cursor = _HEADER.unpack_from(self._mem, 0)[3]
        for step in range(self.capacity):
            slot = (cursor + step) % self.capacity
            if self._expiry(slot) <= now:
                tag = secrets.token_bytes(16)
                _LEASE.pack_into(self._mem, self._records_offset + slot * _LEASE.size, tag, binding, renew_after, 0)
                self._set_expiry(slot, expires_at)
                struct.pack_into("=Q", self._mem, 24, slot + 1)
                return LeaseRecord(_lease_id(slot, tag), binding, expires_at, renew_after, 0)
        return None

    def find(self, lease_id: str) -> tuple[int, LeaseRecord] | None:
        """Under the table lock. The lease an id names, expired or not; None for an id that names no lease."""
        parsed = _parse_lease_id(lease_id)
        if parsed is None or parsed[0] >= self.capacity:
            return None
        slot, tag = parsed
        stored, binding, renew_after, renewals = self._record(slot)
        expires_at = self._expiry(slot)
        if expires_at == 0.0 or not hmac.compare_digest(stored, tag):
            return None
        return slot, LeaseRecord(lease_id, binding, expires_at, renew_after, renewals)

    def renew(self, slot: int, lease: LeaseRecord, expires_at: float, renew_after: float) -> LeaseRecord:
        at = self._records_offset + slot * _LEASE.size
        _LEASE.pack_into(self._mem, at, self._record(slot)[0], lease.binding, renew_after, lease.renewals + 1)
        self._set_expiry(slot, expires_at)
        return LeaseRecord(lease.id, lease.binding, expires_at, renew_after, lease.renewals + 1)

    def revoke(self, slot: int) -> None:
        self._set_expiry(slot, 0.0)

    def live(self, now: float) -> int:
        view = memoryview(self._mem)[self._expiry_offset : self._records_offset].cast("d")
        try:
            return sum(1 for expires_at in view if expires_at > now)
        finally:
            view.release()


def _lease_id(slot: int, tag: bytes) -> str:
    return b64e(_LEASE_ID.pack(slot, tag))


def _parse_lease_id(lease_id: str) -> tuple[int, bytes] | None:
    if len(lease_id) != 27:
        return None
    try:
        raw = base64.urlsafe_b64decode(lease_id + "=")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _LEASE_ID.size or _lease_id(*_LEASE_ID.unpack(raw)) != lease_id:
        return None  # only the canonical spelling (no spare bits set, no "+" or "/") names a lease
    return _LEASE_ID.unpack(raw)


class _Flock:
    """``with``: hold an exclusive ``flock`` on one descriptor. A class rather than ``@contextmanager``, which
    costs several times more on a path taken three times per attestation."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


class SharedState:
    """The shared tables of one CAS and the two locks that guard them. Map it before forking the workers; each
    worker then calls :meth:`attach` once, after the fork, to open its own lock-file descriptions."""

    def __init__(
        self,
        lock_dir: Path,
        *,
        nonce_capacity: int = 100_000,
        read_nonce_capacity: int = 10_000,
        lease_capacity: int = 1 << 17,
    ) -> None:
        self._lock_dir = lock_dir
        sizes = [nonce_capacity * _NONCE.size, read_nonce_capacity * _NONCE.size, lease_capacity * (8 + _LEASE.size)]
        self._mem = mmap.mmap(-1, _HEADER_SIZE + sum(sizes))  # anonymous and MAP_SHARED: inherited across fork
        offset = _HEADER_SIZE
        self.nonces = NonceRing(self._mem, offset, nonce_capacity, seq_field=1)
        offset += self.nonces.size
        self.read_nonces = NonceRing(self._mem, offset, read_nonce_capacity, seq_field=2)
        offset += self.read_nonces.size
        self.leases = _LeaseTable(self._mem, offset, lease_capacity)
        self._table_fd = -1
        self._write_fd = -1
        self._local_writer: asyncio.Lock | None = None

    def attach(self) -> SharedState:
        """Open this process's descriptions of the lock files (a ``flock`` held through one description does not
        exclude a process sharing that description, so every worker needs its own)."""
        self.detach()
        self._table_fd = os.open(self._lock_dir / ".tables.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._write_fd = os.open(self._lock_dir / ".writes.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._local_writer = None
        return self

    def detach(self) -> None:
        for fd in (self._table_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._table_fd = self._write_fd = -1

    def tables(self) -> _Flock:
        """Hold the table lock (microseconds: a few record reads and writes, no I/O, no awaits)."""
        return _Flock(self._table_fd)

    @contextlib.asynccontextmanager
    async def write_lock(self) -> AsyncIterator[None]:
        """Serialise a durable write (read, check, commit) against every other worker's.

        The ``flock`` is taken on a thread so the event loop keeps serving attestations meanwhile. If the waiting
        task is cancelled, the lock is released as soon as the thread obtains it.
        """
        if self._local_writer is None:
            self._local_writer = asyncio.Lock()
        local, fd = self._local_writer, self._write_fd
        await local.acquire()
        try:
            acquired = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            local.release()
            raise

        def undo(done: asyncio.Future[None]) -> None:
            # Keep the task lock until the abandoned flock is undone: a flock through this same description would
            # succeed at once, and this unlock would then end it.
            try:
                if not done.cancelled() and done.exception() is None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                local.release()

        try:
            await asyncio.shield(acquired)
        except BaseException:
            acquired.add_done_callback(undo)
            raise
        try:
            yield
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                local.release()

    @property
    def generation(self) -> int:
        """Bumped after every durable write that changes what workers cache (policies)."""
        return _HEADER.unpack_from(self._mem, 0)[0]

    @property
    def floor(self) -> float:
        """The newest signed timestamp any worker has seen (epoch seconds; 0.0 for none): the shared clock floor."""
        return struct.unpack_from("=d", self._mem, _FLOOR_OFFSET)[0]

    def raise_floor(self, value: float) -> None:
        if value <= self.floor:
            return
        with self.tables():
            if value > self.floor:
                struct.pack_into("=d", self._mem, _FLOOR_OFFSET, value)

    @property
    def lead(self) -> float:
        """The largest ``wall − monotonic`` any worker's clock has seen (0.0 for none): see custodes.clock."""
        return struct.unpack_from("=d", self._mem, _LEAD_OFFSET)[0]

    def raise_lead(self, value: float) -> None:
        """Without the lock: an 8-byte aligned store is atomic, and a raise lost to a concurrent one only leaves
        another worker's bound a moment behind until this worker's next request writes it again."""
        if value > self.lead:
            struct.pack_into("=d", self._mem, _LEAD_OFFSET, value)

    def bump_generation(self) -> int:
        with self.tables():
            value = self.generation + 1
            struct.pack_into("=Q", self._mem, 0, value)
            return value

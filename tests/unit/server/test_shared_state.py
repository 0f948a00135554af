"""The CAS's shared tables in one process: the single-use nonce rings, the generation counter, the lock files.

Leases are in ``test_shared_leases.py``; several processes in ``test_shared_processes.py``.

Times are plain epoch seconds (what the tables store); each test fixes its own instants, nothing reads the clock.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from custodes.protocol import NONCE_BYTES
from custodes.server.shared import Consumed, NonceRing, NonceStatus, SharedState, binding_of

T0 = 1_700_000_000.0
TTL = 60.0
B = binding_of("policy-a", "svc")
B2 = binding_of("policy-b", "svc")
CAPACITY = 8


def _state(lock_dir: Path, *, nonces: int = CAPACITY, reads: int = CAPACITY) -> SharedState:
    return SharedState(lock_dir, nonce_capacity=nonces, read_nonce_capacity=reads, lease_capacity=4).attach()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    state = _state(tmp_path)
    yield state
    state.detach()


def _issue(shared: SharedState, ring: NonceRing, now: float = T0, *, retain: float = TTL) -> bytes | None:
    with shared.tables():
        return ring.issue(B, now, now + TTL, retain)


def _consume(shared: SharedState, ring: NonceRing, nonce: bytes) -> Consumed:
    with shared.tables():
        return ring.consume(nonce)


# ------------------------------------------------------------------------------------------ binding_of


def test_binding_is_a_16_byte_hash_that_separates_its_parts() -> None:
    assert len(B) == 16
    assert binding_of("policy-a", "svc") == B
    assert binding_of("ab", "c") != binding_of("a", "bc")
    assert binding_of("a", "b") != binding_of("b", "a")


# ------------------------------------------------------------------------------------------ nonce rings


@pytest.mark.parametrize("ring_name", ["nonces", "read_nonces"])
def test_issued_nonce_is_fresh_once_then_reused(shared: SharedState, ring_name: str) -> None:
    ring = getattr(shared, ring_name)
    with shared.tables():
        nonce = ring.issue(B2, T0, T0 + 45.5, TTL)
    assert isinstance(nonce, bytes)
    assert len(nonce) == NONCE_BYTES
    assert _consume(shared, ring, nonce) == Consumed(NonceStatus.FRESH, B2, T0 + 45.5)
    assert _consume(shared, ring, nonce) == Consumed(NonceStatus.REUSED, B2, T0 + 45.5)
    assert _consume(shared, ring, nonce) == Consumed(NonceStatus.REUSED, B2, T0 + 45.5)


def test_issued_nonces_are_distinct(shared: SharedState) -> None:
    issued = [_issue(shared, shared.nonces) for _ in range(shared.nonces.capacity)]
    assert len(set(issued)) == shared.nonces.capacity
    assert all(_consume(shared, shared.nonces, n).status is NonceStatus.FRESH for n in issued)


def _flip(bit: int) -> Callable[[bytes], bytes]:
    def mutate(nonce: bytes) -> bytes:
        raw = bytearray(nonce)
        raw[bit // 8] ^= 0x80 >> (bit % 8)
        return bytes(raw)

    return mutate


def _same_slot_forged_sequence(nonce: bytes) -> bytes:
    """A nonce whose sequence number names the same slot one lap later, with the issued random part."""
    (seq,) = struct.unpack(">Q", nonce[:8])
    return struct.pack(">Q", seq + CAPACITY) + nonce[8:]


UNKNOWN_VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "first bit flipped": _flip(0),
    "last sequence bit flipped": _flip(63),
    "first random bit flipped": _flip(64),
    "last bit flipped": _flip(8 * NONCE_BYTES - 1),
    "truncated by one byte": lambda n: n[:-1],
    "one byte appended": lambda n: n + b"\0",
    "empty": lambda n: b"",
    "hex text instead of bytes": lambda n: n.hex().encode()[:NONCE_BYTES],
    "never issued": lambda n: os.urandom(NONCE_BYTES),
    "issued sequence, other random part": lambda n: n[:8] + os.urandom(NONCE_BYTES - 8),
    "same slot, forged sequence": _same_slot_forged_sequence,
    "all zero": lambda n: bytes(NONCE_BYTES),
}


@pytest.mark.parametrize("mutate", UNKNOWN_VARIANTS.values(), ids=UNKNOWN_VARIANTS.keys())
def test_altered_or_foreign_nonce_is_unknown_and_burns_nothing(
    shared: SharedState, mutate: Callable[[bytes], bytes]
) -> None:
    issued = [_issue(shared, shared.nonces) for _ in range(3)]
    target = issued[1]
    altered = mutate(target)
    assert altered != target
    assert _consume(shared, shared.nonces, altered) == Consumed(NonceStatus.UNKNOWN)
    assert _consume(shared, shared.nonces, altered) == Consumed(NonceStatus.UNKNOWN)
    # A failed lookup consumed nothing: every issued nonce is still fresh.
    assert [_consume(shared, shared.nonces, n).status for n in issued] == [NonceStatus.FRESH] * 3


@pytest.mark.parametrize("consumed_first", [False, True], ids=["outstanding", "used"])
def test_nonce_whose_slot_was_overwritten_is_unknown(tmp_path: Path, consumed_first: bool) -> None:
    shared = _state(tmp_path, nonces=4)
    first = _issue(shared, shared.nonces, T0)
    if consumed_first:
        assert _consume(shared, shared.nonces, first).status is NonceStatus.FRESH
    others = [_issue(shared, shared.nonces, T0) for _ in range(3)]
    later = T0 + TTL + TTL  # past the first nonce's expiry plus its retention
    replacement = _issue(shared, shared.nonces, later)
    assert replacement is not None
    assert _consume(shared, shared.nonces, first) == Consumed(NonceStatus.UNKNOWN)
    assert _consume(shared, shared.nonces, replacement) == Consumed(NonceStatus.FRESH, B, later + TTL)
    assert [_consume(shared, shared.nonces, n).status for n in others] == [NonceStatus.FRESH] * 3


@pytest.mark.parametrize("consumed_first", [False, True], ids=["outstanding", "used"])
def test_ring_refuses_while_oldest_nonce_is_retained_and_accepts_after(tmp_path: Path, consumed_first: bool) -> None:
    shared = _state(tmp_path, nonces=4)
    retain = 5.0
    with shared.tables():
        batch = [shared.nonces.issue(B, T0, T0 + 10.0, retain) for _ in range(4)]
    assert None not in batch
    if consumed_first:
        assert _consume(shared, shared.nonces, batch[0]).status is NonceStatus.FRESH
    for now in (T0, T0 + 10.0, T0 + 14.999):  # before expiry, at expiry, within retention
        with shared.tables():
            assert shared.nonces.issue(B, now, now + 10.0, retain) is None
    # Refusals change nothing: the whole batch is still in the ring, in its original state.
    expected_first = NonceStatus.REUSED if consumed_first else NonceStatus.FRESH
    assert _consume(shared, shared.nonces, batch[0]).status is expected_first
    with shared.tables():
        fifth = shared.nonces.issue(B2, T0 + 15.0, T0 + 25.0, retain)
    assert fifth is not None
    # The oldest slot was the one reused; the other three nonces are untouched.
    assert _consume(shared, shared.nonces, batch[0]) == Consumed(NonceStatus.UNKNOWN)
    assert [_consume(shared, shared.nonces, n).status for n in batch[1:]] == [NonceStatus.FRESH] * 3
    assert _consume(shared, shared.nonces, fifth) == Consumed(NonceStatus.FRESH, B2, T0 + 25.0)
    # The next slot holds batch[1] (expires T0 + 10, retained until T0 + 15): also reusable now, not before.
    with shared.tables():
        assert shared.nonces.issue(B, T0 + 14.0, T0 + 24.0, retain) is None
        assert shared.nonces.issue(B, T0 + 15.0, T0 + 25.0, retain) is not None


def test_read_ring_without_retention_reuses_a_slot_at_expiry(tmp_path: Path) -> None:
    shared = _state(tmp_path, reads=4)
    batch = [_issue(shared, shared.read_nonces, T0, retain=0.0) for _ in range(4)]
    assert _issue(shared, shared.read_nonces, T0 + TTL - 0.001, retain=0.0) is None
    assert _issue(shared, shared.read_nonces, T0 + TTL, retain=0.0) is not None
    assert _consume(shared, shared.read_nonces, batch[0]) == Consumed(NonceStatus.UNKNOWN)


def test_attestation_and_read_rings_are_independent(tmp_path: Path) -> None:
    shared = _state(tmp_path, nonces=4, reads=4)
    # Same issue order in both rings, so both first nonces sit in slot 1 of their ring.
    attest = _issue(shared, shared.nonces)
    read = _issue(shared, shared.read_nonces)
    assert _consume(shared, shared.nonces, read) == Consumed(NonceStatus.UNKNOWN)
    assert _consume(shared, shared.read_nonces, attest) == Consumed(NonceStatus.UNKNOWN)
    assert _consume(shared, shared.nonces, attest).status is NonceStatus.FRESH
    assert _consume(shared, shared.read_nonces, read).status is NonceStatus.FRESH
    # Filling one ring does not fill the other.
    for _ in range(3):
        assert _issue(shared, shared.read_nonces) is not None
    assert _issue(shared, shared.read_nonces) is None
    assert _issue(shared, shared.nonces) is not None


# ------------------------------------------------------------------------------------------ generation and locks


def test_generation_starts_at_zero_and_counts_bumps(shared: SharedState) -> None:
    assert shared.generation == 0
    assert shared.bump_generation() == 1
    assert shared.bump_generation() == 2
    assert shared.generation == 2


def test_tables_refuse_before_attach_and_after_detach(tmp_path: Path) -> None:
    """Unlocked access to the tables must fail, not proceed unguarded."""
    shared = SharedState(tmp_path, nonce_capacity=4, read_nonce_capacity=4, lease_capacity=4)
    with pytest.raises((OSError, ValueError)), shared.tables():
        pytest.fail("entered the tables without a lock")
    shared.attach()
    with shared.tables():
        pass
    shared.detach()
    with pytest.raises((OSError, ValueError)):
        shared.bump_generation()
    assert shared.generation == 0


def test_attach_creates_private_lock_files(tmp_path: Path) -> None:
    shared = _state(tmp_path)
    shared.detach()
    for name in (".tables.lock", ".writes.lock"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600

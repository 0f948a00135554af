"""The CAS's shared lease table in one process: issue, find, renew, revoke, expiry, capacity and lease-id parsing.

Times are plain epoch seconds (what the table stores); each test fixes its own instants, nothing reads the clock.
"""

from __future__ import annotations

import base64
import os
import string
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.server.shared import LeaseRecord, SharedState, binding_of

T0 = 1_700_000_000.0
B = binding_of("policy-a", "svc")
B2 = binding_of("policy-b", "svc")
URLSAFE = string.ascii_letters + string.digits + "-_"
CAPACITY = 8


def _state(lock_dir: Path, *, leases: int = CAPACITY) -> SharedState:
    return SharedState(lock_dir, nonce_capacity=4, read_nonce_capacity=4, lease_capacity=leases).attach()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    state = _state(tmp_path)
    yield state
    state.detach()


def _lease_id(slot: int, tag: bytes) -> str:
    """The wire spelling of a lease id (big-endian slot, 16-byte tag, unpadded URL-safe base64)."""
    return base64.urlsafe_b64encode(struct.pack(">I16s", slot, tag)).rstrip(b"=").decode()


def _split_lease_id(lease_id: str) -> tuple[int, bytes]:
    return struct.unpack(">I16s", base64.urlsafe_b64decode(lease_id + "="))


def _issue_lease(shared: SharedState, now: float, expires_at: float, binding: bytes = B) -> LeaseRecord | None:
    with shared.tables():
        return shared.leases.issue(binding, now, expires_at, now + (expires_at - now) / 2)


def _find(shared: SharedState, lease_id: str) -> tuple[int, LeaseRecord] | None:
    with shared.tables():
        return shared.leases.find(lease_id)


def test_issued_lease_is_found(shared: SharedState) -> None:
    with shared.tables():
        lease = shared.leases.issue(B2, T0, T0 + 3600.0, T0 + 1800.0)
    assert lease is not None
    assert lease == LeaseRecord(lease.id, B2, T0 + 3600.0, T0 + 1800.0, 0)
    assert len(lease.id) == 27
    assert set(lease.id) <= set(URLSAFE)
    found = _find(shared, lease.id)
    assert found is not None
    assert found[1] == lease
    assert 0 <= found[0] < shared.leases.capacity


def test_renew_counts_and_moves_expiry(shared: SharedState) -> None:
    lease = _issue_lease(shared, T0, T0 + 100.0)
    other = _issue_lease(shared, T0, T0 + 100.0, B2)
    slot, current = _find(shared, lease.id)
    with shared.tables():
        renewed = shared.leases.renew(slot, current, T0 + 250.0, T0 + 175.0)
    assert renewed == LeaseRecord(lease.id, B, T0 + 250.0, T0 + 175.0, 1)
    assert _find(shared, lease.id) == (slot, renewed)
    with shared.tables():
        again = shared.leases.renew(slot, renewed, T0 + 400.0, T0 + 325.0)
    assert again == LeaseRecord(lease.id, B, T0 + 400.0, T0 + 325.0, 2)
    assert _find(shared, lease.id) == (slot, again)
    assert _find(shared, other.id)[1] == other  # a neighbour is untouched


def test_revoked_lease_is_gone_and_its_slot_free(tmp_path: Path) -> None:
    shared = _state(tmp_path, leases=1)
    lease = _issue_lease(shared, T0, T0 + 100.0)
    slot, _ = _find(shared, lease.id)
    assert _issue_lease(shared, T0, T0 + 100.0) is None
    with shared.tables():
        shared.leases.revoke(slot)
    assert _find(shared, lease.id) is None
    assert shared.leases.live(T0) == 0
    successor = _issue_lease(shared, T0, T0 + 100.0)
    assert successor is not None
    assert successor.id != lease.id
    assert _find(shared, lease.id) is None


def test_expired_lease_is_found_until_its_slot_is_reused(tmp_path: Path) -> None:
    shared = _state(tmp_path, leases=2)
    short = _issue_lease(shared, T0, T0 + 10.0)
    long = _issue_lease(shared, T0, T0 + 100.0)
    later = T0 + 20.0
    # Still named after expiry, so the caller can tell "expired" from "unknown".
    assert _find(shared, short.id)[1] == short
    assert short.expires_at <= later
    assert shared.leases.live(later) == 1
    successor = _issue_lease(shared, later, later + 100.0, B2)
    assert successor is not None
    assert _find(shared, short.id) is None
    assert _find(shared, successor.id)[1] == successor
    assert _find(shared, long.id)[1] == long
    assert _split_lease_id(successor.id)[0] == _split_lease_id(short.id)[0]


def test_capacity_exhaustion_then_reuse_of_an_expired_slot(tmp_path: Path) -> None:
    shared = _state(tmp_path, leases=4)
    expiries = [T0 + 50.0, T0 + 10.0, T0 + 50.0, T0 + 50.0]
    leases = [_issue_lease(shared, T0, e) for e in expiries]
    assert None not in leases
    assert _issue_lease(shared, T0, T0 + 50.0) is None
    assert _issue_lease(shared, T0 + 9.999, T0 + 50.0) is None
    # A refusal changes nothing.
    assert [_find(shared, x.id)[1] for x in leases] == leases
    fresh = _issue_lease(shared, T0 + 10.0, T0 + 60.0, B2)  # the second lease expires exactly now
    assert fresh is not None
    assert _find(shared, leases[1].id) is None
    assert [_find(shared, leases[i].id)[1] for i in (0, 2, 3)] == [leases[0], leases[2], leases[3]]
    assert _issue_lease(shared, T0 + 10.0, T0 + 60.0) is None
    assert shared.leases.live(T0 + 10.0) == 4


def test_live_counts_exactly_the_unexpired(tmp_path: Path) -> None:
    shared = _state(tmp_path, leases=8)
    assert shared.leases.live(T0) == 0
    expiries = [T0 + 5.0, T0 + 10.0, T0 + 10.0, T0 + 20.0, T0 + 30.0]
    leases = [_issue_lease(shared, T0, e) for e in expiries]
    assert shared.leases.live(T0) == 5
    assert shared.leases.live(T0 + 5.0) == 4  # expiring exactly now is not live
    assert shared.leases.live(T0 + 9.999) == 4
    assert shared.leases.live(T0 + 10.0) == 2
    assert shared.leases.live(T0 + 30.0) == 0
    with shared.tables():
        shared.leases.revoke(_find(shared, leases[4].id)[0])
    assert shared.leases.live(T0 + 25.0) == 0
    assert shared.leases.live(T0) == 4


def test_lease_ids_are_distinct(tmp_path: Path) -> None:
    shared = _state(tmp_path, leases=16)
    ids = [_issue_lease(shared, T0, T0 + 100.0).id for _ in range(16)]
    assert len(set(ids)) == 16
    assert len({_split_lease_id(i)[0] for i in ids}) == 16


def _tag_bit_flipped(lease_id: str) -> str:
    slot, tag = _split_lease_id(lease_id)
    return _lease_id(slot, bytes([tag[0] ^ 1]) + tag[1:])


BAD_IDS: dict[str, Callable[[str], str]] = {
    "empty": lambda i: "",
    "one char short": lambda i: i[:-1],
    "one char long": lambda i: i + "A",
    "padded": lambda i: i + "=",
    "non-alphabet char": lambda i: i[:5] + "!" + i[6:],
    "whitespace": lambda i: i[:5] + " " + i[6:],
    "non-ascii": lambda i: i[:5] + "é" + i[6:],
    "all non-ascii": lambda i: "é" * 27,
    "padding inside": lambda i: i[:25] + "==",
    "slot equal to capacity": lambda i: _lease_id(CAPACITY, _split_lease_id(i)[1]),
    "slot far beyond capacity": lambda i: _lease_id(2**32 - 1, _split_lease_id(i)[1]),
    "neighbour slot, same tag": lambda i: _lease_id(_split_lease_id(i)[0] + 1, _split_lease_id(i)[1]),
    "tag with one bit flipped": _tag_bit_flipped,
    "random tag": lambda i: _lease_id(_split_lease_id(i)[0], os.urandom(16)),
    "zero tag": lambda i: _lease_id(_split_lease_id(i)[0], bytes(16)),
    "empty slot, zero tag": lambda i: _lease_id(CAPACITY - 1, bytes(16)),
}


@pytest.mark.parametrize("mutate", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_malformed_or_foreign_lease_id_is_none(shared: SharedState, mutate: Callable[[str], str]) -> None:
    lease = _issue_lease(shared, T0, T0 + 100.0)
    bad = mutate(lease.id)
    assert bad != lease.id
    assert _find(shared, bad) is None
    assert _find(shared, lease.id)[1] == lease


def test_lease_id_is_accepted_only_in_its_issued_spelling(tmp_path: Path) -> None:
    """Base64 has several spellings of one value: the two spare bits of the last character, and the standard
    alphabet's ``+`` and ``/`` for ``-`` and ``_``. A lease id names one lease in exactly one spelling."""
    shared = _state(tmp_path, leases=64)
    leases = [_issue_lease(shared, T0, T0 + 100.0) for _ in range(64)]
    lease = next(x for x in leases if "-" in x.id[:-1] or "_" in x.id[:-1])
    last = URLSAFE.index(lease.id[-1])
    spellings = [lease.id[:-1] + URLSAFE[last ^ spare] for spare in (1, 2, 3)]
    spellings.append(lease.id[:-1].replace("-", "+").replace("_", "/") + lease.id[-1])
    for spelling in spellings:
        assert spelling != lease.id
        assert _find(shared, spelling) is None, spelling


@pytest.fixture(scope="module")
def issued_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[SharedState, dict[str, LeaseRecord]]:
    shared = _state(tmp_path_factory.mktemp("leases"), leases=8)
    leases = [_issue_lease(shared, T0, T0 + 100.0 * (k + 1)) for k in range(6)]
    return shared, {x.id: x for x in leases}


well_formed_ids = st.builds(_lease_id, st.integers(0, 10), st.binary(min_size=16, max_size=16))
any_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=URLSAFE + "=+/ \n", min_size=26, max_size=28),
    well_formed_ids,
    st.integers(0, 10).map(lambda slot: _lease_id(slot, bytes(16))),
)


@settings(max_examples=300, deadline=None)
@given(text=any_text)
def test_find_never_raises_and_names_only_issued_leases(
    issued_table: tuple[SharedState, dict[str, LeaseRecord]], text: str
) -> None:
    shared, issued = issued_table
    found = _find(shared, text)
    if text in issued:
        assert found is not None
        assert found[1] == issued[text]
    else:
        assert found is None


def test_find_names_every_issued_lease(issued_table: tuple[SharedState, dict[str, LeaseRecord]]) -> None:
    shared, issued = issued_table
    assert {lease_id: _find(shared, lease_id)[1] for lease_id in issued} == issued

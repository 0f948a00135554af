"""Property tests of the store's canonical encodings and strict parsers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.store._codec import (
    _BODY_MAGIC,
    _BUCKET_MAGIC,
    MAX_NAME_BYTES,
    BucketEntry,
    TxnBody,
    decode_body,
    decode_bucket,
    encode_body,
    encode_bucket,
    lp,
    record_ad,
)
from custodes.store.errors import StoreCorruptError

names = st.text(min_size=1, max_size=40).map(lambda s: s.encode()).filter(lambda b: 0 < len(b) <= MAX_NAME_BYTES)
hashes = st.binary(min_size=32, max_size=32)
u64s = st.integers(min_value=0, max_value=2**64 - 1)
entries = st.builds(BucketEntry, epoch=u64s, ver=u64s, ct_hash=hashes)
buckets = st.dictionaries(names, entries, max_size=20)


@st.composite
def bodies(draw: st.DrawFn) -> TxnBody:
    put_names = draw(st.lists(names, unique=True, max_size=10))
    del_names = draw(st.lists(names.filter(lambda n: n not in put_names), unique=True, max_size=10))
    return TxnBody(
        epoch=draw(u64s),
        ver=draw(u64s),
        puts=tuple(sorted((n, draw(hashes)) for n in put_names)),
        deletes=tuple(sorted(del_names)),
    )


@settings(max_examples=200)
@given(buckets)
def test_bucket_round_trip(bucket: dict[bytes, BucketEntry]) -> None:
    assert decode_bucket(encode_bucket(bucket)) == bucket


@settings(max_examples=200)
@given(bodies())
def test_body_round_trip(body: TxnBody) -> None:
    assert decode_body(encode_body(body)) == body


def _after(magic: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, most of them behind the right magic so the parser gets past its first check."""
    return st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: magic + b))


@settings(max_examples=300)
@given(_after(_BUCKET_MAGIC))
def test_bucket_parser_raises_only_corrupt(data: bytes) -> None:
    try:
        parsed = decode_bucket(data)
    except StoreCorruptError:
        return
    assert encode_bucket(parsed) == data  # whatever parses is canonical


@settings(max_examples=300)
@given(_after(_BODY_MAGIC))
def test_body_parser_raises_only_corrupt(data: bytes) -> None:
    try:
        parsed = decode_body(data)
    except StoreCorruptError:
        return
    assert encode_body(parsed) == data


@settings(max_examples=200)
@given(buckets, st.data())
def test_mutated_bucket_never_parses_to_something_else(bucket: dict[bytes, BucketEntry], data: st.DataObject) -> None:
    raw = encode_bucket(bucket)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    mutated = data.draw(
        st.sampled_from(["truncate", "flip", "append"]).map(
            lambda how: {
                "truncate": raw[:cut],
                "flip": raw[:cut] + bytes([raw[cut] ^ 0x80]) + raw[cut + 1 :],
                "append": raw + b"\x00",
            }[how]
        )
    )
    try:
        parsed = decode_bucket(mutated)
    except StoreCorruptError:
        return
    assert encode_bucket(parsed) == mutated
    assert parsed != bucket


def test_unsorted_or_duplicate_bucket_is_refused() -> None:
    e = BucketEntry(epoch=1, ver=1, ct_hash=b"\x00" * 32)
    raw = encode_bucket({b"a": e, b"b": e})
    swapped = raw.replace(b"\x00\x00\x00\x01a", b"\x00\x00\x00\x01c")  # "c" then "b": not sorted
    with pytest.raises(StoreCorruptError):
        decode_bucket(swapped)
    dup = raw.replace(b"\x00\x00\x00\x01b", b"\x00\x00\x00\x01a")
    with pytest.raises(StoreCorruptError):
        decode_bucket(dup)


def test_body_with_a_name_both_put_and_deleted_is_refused() -> None:
    raw = encode_body(TxnBody(epoch=1, ver=1, puts=((b"a", b"\x00" * 32),), deletes=(b"a",)))
    with pytest.raises(StoreCorruptError):
        decode_body(raw)


@given(st.lists(st.binary(max_size=8), max_size=4), st.lists(st.binary(max_size=8), max_size=4))
def test_length_prefixing_is_unambiguous(a: list[bytes], b: list[bytes]) -> None:
    if a != b:
        assert lp(*a) != lp(*b)


def test_record_ad_separates_name_from_version() -> None:
    assert record_ad(b"a", 1, 2) != record_ad(b"a\x00", 1, 2)
    assert record_ad(b"a", 1, 2) != record_ad(b"a", 2, 1)

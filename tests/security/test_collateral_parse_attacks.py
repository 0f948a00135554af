"""One test per attack on the parsers of untrusted or operator-supplied collateral; each asserts the exact refusal.

Every parser here documents one error type: ``PckInfo`` (read from a quote's PCK leaf before any signature is
checked) raises ``EvidenceError``, the bundle, CRL and simulated TCB info parsers raise ``CollateralError``.
Anything else escaping them (an exception of ``cryptography``'s, ``UnicodeEncodeError``, ``RecursionError``) would
be a 500 in the CAS instead of a refusal with a stable code. The properties at the end throw random input at them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from custodes.errors import CollateralError, CustodesError, EvidenceError
from custodes.evidence._bundles import DCAP_FIELDS, DcapCollateral
from custodes.evidence._dcap_quote import DcapQuote
from custodes.evidence._pck import SGX_EXTENSION_OID, PckInfo
from custodes.evidence._x509 import load_pem_chain
from custodes.evidence.collateral import CollateralStore, parse_bundle
from custodes.evidence.dcap import DcapVerifier
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.simulated import TCB_INFO_CONTEXT, verify_tcb_info
from vectors.vectorlib import SGX, TDX_V4, DcapCase, load_vector, rebuild_quote

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = 200_000  # far beyond the interpreter's recursion limit


def refusal(fn, kind: type[CustodesError]) -> str:
    """The code of the refusal ``fn`` raises; fails on any other exception type."""
    with pytest.raises(CustodesError) as err:
        fn()
    assert type(err.value) is kind
    return err.value.code


def refusal_or_none(fn, kind: type[CustodesError]) -> str | None:
    """Like :func:`refusal`, but ``fn`` may also succeed (random input that happens to parse)."""
    try:
        fn()
    except kind as exc:
        return exc.code
    return None


# -- a quote's PCK leaf, parsed before any signature check (CollateralStore.dcap_for_quote) -------------------
_START = datetime(2025, 1, 1, tzinfo=UTC)


def _real_chain() -> tuple[DcapQuote, x509.Certificate, x509.Certificate]:
    q = DcapQuote.from_bytes(SGX.quote)
    leaf, ca = load_pem_chain(q.qe.pck_chain_pem)[:2]
    return q, leaf, ca


def _leaf_builder(real_leaf: x509.Certificate) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
    """A self-made leaf with the real leaf's names and SGX extension (the attacker has no PCK CA key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sgx = real_leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(real_leaf.subject)
        .issuer_name(real_leaf.issuer)
        .public_key(key.public_key())
        .serial_number(12345)
        .not_valid_before(_START)
        .not_valid_after(_START + timedelta(days=365))
        .add_extension(sgx, critical=False)
    )
    return builder, key


def _quote_with_leaf(q: DcapQuote, leaf_der: bytes, ca: x509.Certificate) -> bytes:
    leaf = x509.load_der_x509_certificate(leaf_der)  # loads: extensions are only decoded on access
    pem = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    return rebuild_quote(q, pck_chain_pem=pem)


def _oid_der(dotted: str) -> bytes:
    """DER content of an OID under 1.2.840.113741.1.13 with a one-byte last arc."""
    return bytes.fromhex("2a864886f84d010d") + bytes([int(dotted.rsplit(".", 1)[1])])


def test_pck_leaf_with_duplicate_sgx_extension(tmp_path: Path) -> None:
    """cryptography raises x509.DuplicateExtension when the leaf's extensions are first read."""
    q, leaf, ca = _real_chain()
    builder, key = _leaf_builder(leaf)
    sgx = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
    twin = "1.2.840.113741.1.13.2"  # encodes to the SGX OID's length: patched into it below
    builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(twin), sgx.value), critical=False)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    assert der.count(_oid_der(twin)) == 1
    der = der.replace(_oid_der(twin), _oid_der(SGX_EXTENSION_OID))
    bad = _quote_with_leaf(q, der, ca)
    assert refusal(lambda: CollateralStore(tmp_path).dcap_for_quote(bad), EvidenceError) == "PCK_EXTENSION_INVALID"


def test_pck_leaf_with_x400_address_san(tmp_path: Path) -> None:
    """cryptography raises x509.UnsupportedGeneralNameType for an x400Address in a SubjectAltName."""
    q, leaf, ca = _real_chain()
    builder, key = _leaf_builder(leaf)
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("aaaa")]), critical=False)
    der = bytearray(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    i = bytes(der).index(b"\x82\x04aaaa")  # [2] dNSName "aaaa" -> [3] x400Address holding SEQUENCE { NULL }
    der[i] = 0xA3
    der[i + 2 : i + 6] = b"\x30\x02\x05\x00"
    bad = _quote_with_leaf(q, bytes(der), ca)
    assert refusal(lambda: CollateralStore(tmp_path).dcap_for_quote(bad), EvidenceError) == "PCK_EXTENSION_INVALID"


def test_pck_leaf_with_an_invalid_certificate_version(tmp_path: Path) -> None:
    """cryptography raises x509.InvalidVersion (not a ValueError) for a version field of 123."""
    q, leaf, ca = _real_chain()
    der = bytearray(leaf.public_bytes(serialization.Encoding.DER))
    i = bytes(der).index(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT INTEGER 2 (v3)
    der[i + 4] = 123
    pem = b"".join(_pem_block(bytes(block)) for block in (der, ca.public_bytes(serialization.Encoding.DER)))
    bad = rebuild_quote(q, pck_chain_pem=pem)
    assert refusal(lambda: CollateralStore(tmp_path).dcap_for_quote(bad), EvidenceError) == "PCK_CHAIN_INVALID"
    assert refusal(lambda: verify_sgx_quote(bad, SGX.collateral, now=SGX.now), EvidenceError) == "PCK_CHAIN_INVALID"


def _pem_block(der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


# -- DCAP CRLs whose issuer name holds an invalid string (decoded lazily by cryptography) ----------------------
def _crl_with_invalid_issuer_string(now: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "AAAAQQQQ")])
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now - timedelta(days=1))
        .next_update(now + timedelta(days=1))
    )
    crl = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    der = crl.public_bytes(serialization.Encoding.DER).replace(b"AAAAQQQQ", b"\xff\xfe\xff\xfeQQQQ")  # not UTF-8
    x509.load_der_x509_crl(der)  # still loads: the name is only decoded on access
    return der


@pytest.mark.parametrize("field", ["root_ca_crl", "pck_crl"])
@pytest.mark.parametrize("case", [SGX, TDX_V4], ids=["sgx", "tdx"])
def test_crl_issuer_with_invalid_string_at_verify(case: DcapCase, field: str) -> None:
    col = replace(case.collateral, **{field: _crl_with_invalid_issuer_string(case.now)})
    verify = lambda: DcapVerifier.intel().verify(case.quote, col, now=case.now, tee=case.tee)  # noqa: E731
    assert refusal(verify, CollateralError) == "COLLATERAL_MALFORMED"


def test_crl_issuer_with_invalid_string_at_import(tmp_path: Path) -> None:
    col = replace(SGX.collateral, root_ca_crl=_crl_with_invalid_issuer_string(SGX.now))
    data = json.dumps(col.to_dict()).encode()
    assert refusal(lambda: CollateralStore(tmp_path).import_bytes(data), CollateralError) == "COLLATERAL_MALFORMED"
    assert not list(tmp_path.rglob("*.json"))


# -- bundle JSON: lone surrogates ("\ud800" is valid JSON, but no UTF-8) and deep nesting ----------------------
def _sgx_bundle_text(field: str, prefix: str) -> str:
    text = load_vector(f"{SGX.set_path}/collateral.json").decode()
    obj = json.loads(text)
    obj[field] = prefix + obj[field]
    out = json.dumps(obj)  # ASCII: the surrogate travels as its \u escape
    assert "\\ud" in out
    return out


def test_dcap_bundle_with_lone_surrogate() -> None:
    text = _sgx_bundle_text("tcb_info", "\ud800")
    assert refusal(lambda: DcapCollateral.from_json(text), CollateralError) == "COLLATERAL_MALFORMED"
    assert refusal(lambda: parse_bundle(text.encode()), CollateralError) == "COLLATERAL_MALFORMED"


def test_dcap_bundle_with_lone_surrogate_in_issuer_chain() -> None:
    text = _sgx_bundle_text("qe_identity_issuer_chain", "\udfff")
    assert refusal(lambda: parse_bundle(text.encode()), CollateralError) == "COLLATERAL_MALFORMED"


@pytest.mark.parametrize(
    "doc",
    [b'{"vcek": "\\ud800-----BEGIN CERTIFICATE-----"}', b'{"vlek": "x", "chain": "\\udc00"}'],
    ids=["leaf", "chain"],
)
def test_snp_bundle_with_lone_surrogate(doc: bytes) -> None:
    assert refusal(lambda: parse_bundle(doc), CollateralError) == "COLLATERAL_MALFORMED"


def test_bundle_nested_too_deeply(tmp_path: Path) -> None:
    deep = b'{"tcb_info": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    assert refusal(lambda: parse_bundle(deep), CollateralError) == "COLLATERAL_MALFORMED"
    assert refusal(lambda: DcapCollateral.from_json(deep), CollateralError) == "COLLATERAL_MALFORMED"
    assert refusal(lambda: CollateralStore(tmp_path).import_bytes(deep), CollateralError) == "COLLATERAL_MALFORMED"


# -- simulated TCB info ------------------------------------------------------------------------------------------
_VENDOR = ec.generate_private_key(ec.SECP256R1())


def _sim_doc(text: str) -> bytes:
    r, s = decode_dss_signature(_VENDOR.sign(TCB_INFO_CONTEXT + text.encode(), ec.ECDSA(hashes.SHA256())))
    return json.dumps({"tcbInfo": text, "signature": (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()}).encode()


@pytest.mark.parametrize(
    "doc",
    [
        b'{"tcbInfo": "\\ud800", "signature": "' + b"00" * 64 + b'"}',
        b"[" * DEEP + b"]" * DEEP,
        _sim_doc("[" * DEEP + "]" * DEEP),  # signed by the vendor: the body parser must refuse it cleanly too
    ],
    ids=["surrogate", "nesting", "signed-nesting"],
)
def test_sim_tcb_info_malformed(doc: bytes) -> None:
    assert refusal(lambda: verify_tcb_info(doc, _VENDOR.public_key()), CollateralError) == "COLLATERAL_MALFORMED"


# -- properties: no input makes these parsers raise anything but their documented error type ------------------
# lone surrogates included (st.text leaves them out even when its alphabet has them)
_TEXT = st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=24).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_TEXT, kids, max_size=4),
    max_leaves=12,
)
_REAL_DCAP = SGX.collateral.to_dict()
_HEX = {"root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature"}
_DCAP_OBJECTS = st.fixed_dictionaries(  # real hex fields, so that the text fields are looked at
    {
        name: st.just(_REAL_DCAP[name]) if name in _HEX else st.just(_REAL_DCAP[name]) | _TEXT | _JSON
        for name in DCAP_FIELDS
    }
)
_SNP_OBJECTS = st.builds(
    lambda leaf, pem, rest: {leaf: pem, **rest},
    st.sampled_from(["vcek", "vlek"]),
    _TEXT | _JSON,
    st.fixed_dictionaries({}, optional={"chain": _TEXT | _JSON, "crl": st.just("00") | _TEXT}),
)


@FUZZ
@given(obj=_DCAP_OBJECTS | _SNP_OBJECTS | _JSON)
def test_property_bundle_json_raises_only_collateral_error(obj: object) -> None:
    data = json.dumps(obj).encode()
    for parse in (parse_bundle, DcapCollateral.from_json):
        assert refusal_or_none(lambda parse=parse: parse(data), CollateralError) in (None, "COLLATERAL_MALFORMED")


@FUZZ
@given(doc=st.binary(max_size=256) | _JSON.map(lambda obj: json.dumps(obj).encode()))
def test_property_sim_tcb_info_raises_only_collateral_error(doc: bytes) -> None:
    with pytest.raises(CollateralError):
        verify_tcb_info(doc, _VENDOR.public_key())


_REAL_LEAF_DER = _real_chain()[1].public_bytes(serialization.Encoding.DER)


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
@FUZZ
@given(data=st.data())
def test_property_mutated_pck_leaf_raises_only_evidence_error(data: st.DataObject) -> None:
    der = bytearray(_REAL_LEAF_DER)
    for _ in range(data.draw(st.integers(1, 3))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    try:
        leaf = x509.load_der_x509_certificate(bytes(der))
    except (ValueError, x509.InvalidVersion):
        assume(False)  # not a certificate at all: load_pem_chain's business, not PckInfo's
    assert refusal_or_none(lambda: PckInfo.from_certificate(leaf), EvidenceError) in (None, "PCK_EXTENSION_INVALID")

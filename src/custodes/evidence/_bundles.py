"""Collateral bundles: the vendor material a verifier needs, as immutable values (no verification here).

DCAP bundles use exactly the JSON layout of dcap-qvl's ``QuoteCollateralV3`` (the layout of the test vectors).
SEV-SNP bundles hold the VCEK/VLEK leaf, optionally the ASK/ASVK and ARK, and optionally AMD's ARK-signed CRL.
Both carry a ``digest`` over their content, which keys the verifiers' caches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from custodes.errors import CollateralError

__all__ = ["DCAP_FIELDS", "DcapCollateral", "SnpCollateral", "load_json", "pem_blocks"]

DCAP_FIELDS = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)
_HEX_FIELDS = frozenset({"root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature"})
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n(.*?)-----END CERTIFICATE-----", re.S)


def _malformed(message: str) -> CollateralError:
    return CollateralError("COLLATERAL_MALFORMED", message)


def load_json(data: str | bytes, what: str) -> Any:
    """``json.loads``, refusing with COLLATERAL_MALFORMED only (deep nesting raises RecursionError, not ValueError)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError includes UnicodeDecodeError
        raise _malformed(f"{what} is not valid JSON") from exc


def _utf8(text: str, what: str) -> bytes:
    """UTF-8 of a JSON string, which may hold a lone surrogate (``"\\ud800"`` is valid JSON, not valid Unicode)."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise _malformed(f"{what} is not valid Unicode") from exc


def pem_blocks(data: bytes) -> list[bytes]:
    """DER bytes of every CERTIFICATE block in a PEM text (decoded by us: AMD leaves have serial 0)."""
    out = []
    for match in _PEM_RE.finditer(data):
        try:
            out.append(base64.b64decode(b"".join(match.group(1).split()), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise _malformed("bad base64 in a PEM certificate") from exc
    if not out:
        raise _malformed("no PEM certificate found")
    return out


@dataclass(frozen=True, slots=True)
class DcapCollateral:
    """Intel DCAP collateral for one FMSPC, TEE and PCK CA (dcap-qvl ``QuoteCollateralV3``).

    ``tcb_info`` and ``qe_identity`` are the exact signed JSON texts; CRLs are DER; signatures raw r||s.
    """

    pck_crl_issuer_chain: str
    root_ca_crl: bytes
    pck_crl: bytes
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        for name in DCAP_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (str, bytes)):
                raise _malformed(f"{name} has the wrong type")
            raw = _utf8(value, name) if isinstance(value, str) else value
            h.update(len(raw).to_bytes(8, "big") + raw)
        if len(self.tcb_info_signature) != 64 or len(self.qe_identity_signature) != 64:
            raise _malformed("signatures must be 64 bytes (r||s)")
        object.__setattr__(self, "digest", h.digest())

    @classmethod
    def from_dict(cls, obj: Any) -> DcapCollateral:
        """From the dcap-qvl JSON object; every field is required and no other key is allowed."""
        if not isinstance(obj, dict):
            raise _malformed("DCAP collateral must be a JSON object")
        missing = [k for k in DCAP_FIELDS if k not in obj]
        extra = sorted(set(obj) - set(DCAP_FIELDS))
        if missing or extra:
            raise _malformed(f"DCAP collateral fields missing {missing} or unknown {extra}")
        values: dict[str, Any] = {}
        for name in DCAP_FIELDS:
            value = obj[name]
            if not isinstance(value, str):
                raise _malformed(f"{name} must be a string")
            try:
                values[name] = bytes.fromhex(value) if name in _HEX_FIELDS else value
            except ValueError as exc:
                raise _malformed(f"{name} is not hex") from exc
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> DcapCollateral:
        return cls.from_dict(load_json(text, "DCAP collateral"))

    def to_dict(self) -> dict[str, str]:
        """The dcap-qvl JSON object."""
        return {
            name: (getattr(self, name).hex() if name in _HEX_FIELDS else getattr(self, name)) for name in DCAP_FIELDS
        }


@dataclass(frozen=True, slots=True)
class SnpCollateral:
    """AMD SEV-SNP collateral: the VCEK or VLEK (DER), optionally its ASK/ASVK and ARK (DER), optionally a CRL.

    Without ``chain`` the pinned AMD chains are used; a supplied ARK must equal a pinned one anyway.
    """

    leaf: bytes
    chain: tuple[bytes, ...] = ()
    crl: bytes | None = None
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.leaf, bytes) or not self.leaf:
            raise _malformed("SNP collateral needs a VCEK or VLEK certificate")
        object.__setattr__(self, "chain", tuple(self.chain))
        if len(self.chain) > 2:
            raise _malformed("SNP chain holds at most the ASK/ASVK and the ARK")
        h = hashlib.sha256()
        for part in (self.leaf, *self.chain, self.crl or b""):
            h.update(len(part).to_bytes(8, "big") + part)
        object.__setattr__(self, "digest", h.digest())

    @classmethod
    def from_pem(cls, pem: bytes, *, crl: bytes | None = None) -> SnpCollateral:
        """The leaf first, then optionally ASK/ASVK and ARK (as in a KDS ``cert_chain`` appended to the VCEK)."""
        leaf, *chain = pem_blocks(pem)
        return cls(leaf, tuple(chain), crl)

    @classmethod
    def from_dict(cls, obj: Any) -> SnpCollateral:
        """``{"vcek": PEM, "chain": PEM?, "crl": hex-DER?}``; ``vlek`` may stand in place of ``vcek``."""
        if not isinstance(obj, dict) or not set(obj) <= {"vcek", "vlek", "chain", "crl"}:
            raise _malformed("SNP collateral must be an object with vcek|vlek, chain, crl")
        leaf_pem = obj.get("vcek", obj.get("vlek"))
        if not isinstance(leaf_pem, str) or ("vcek" in obj and "vlek" in obj):
            raise _malformed("SNP collateral needs exactly one of vcek, vlek (PEM)")
        chain_pem = obj.get("chain") or ""
        crl_hex = obj.get("crl")
        if not isinstance(chain_pem, str) or not isinstance(crl_hex, (str, type(None))):
            raise _malformed("chain must be PEM text and crl hex text")
        try:
            crl = bytes.fromhex(crl_hex) if crl_hex else None
        except ValueError as exc:
            raise _malformed("crl is not hex") from exc
        chain = tuple(pem_blocks(_utf8(chain_pem, "chain"))) if chain_pem else ()
        return cls(pem_blocks(_utf8(leaf_pem, "vcek/vlek"))[0], chain, crl)

    def to_dict(self) -> dict[str, str]:
        def pem(der: bytes) -> str:
            b64 = base64.b64encode(der).decode()
            lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
            return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"

        out = {"vcek": pem(self.leaf)}
        if self.chain:
            out["chain"] = "".join(pem(c) for c in self.chain)
        if self.crl:
            out["crl"] = self.crl.hex()
        return out

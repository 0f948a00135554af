"""Pinned vendor trust anchors, shipped in ``roots/`` and checked against hard-coded fingerprints.

The files are public: the Intel SGX Root CA (the only Intel anchor a DCAP verifier needs) and, per AMD product,
the ASK (VCEK signer) or ASVK (VLEK signer) followed by the ARK, as AMD KDS serves them. A file whose
fingerprint differs from the constant here is refused at load time (fail closed, tamper evident).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from cryptography import x509

from custodes.evidence._x509 import cert_fingerprint

__all__ = [
    "AMD_ARK_FINGERPRINTS",
    "INTEL_SGX_ROOT_CA_SHA256",
    "AmdChain",
    "amd_chains",
    "intel_sgx_root_ca",
]

#: SHA-256 of the DER of the Intel SGX Root CA (CN=Intel SGX Root CA, 2018-05-21..2049-12-31).
INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"

#: SHA-256 of the DER of each AMD Root Key, by product.
AMD_ARK_FINGERPRINTS = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}

_AMD_INTERMEDIATE_FINGERPRINTS = {
    ("Milan", "vcek"): "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
    ("Milan", "vlek"): "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    ("Genoa", "vcek"): "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
    ("Genoa", "vlek"): "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    ("Turin", "vcek"): "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
    ("Turin", "vlek"): "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
}


def _read(name: str) -> bytes:
    return resources.files("custodes.evidence").joinpath("roots", name).read_bytes()


@functools.cache
def intel_sgx_root_ca() -> x509.Certificate:
    """The pinned Intel SGX Root CA."""
    der = _read("intel_sgx_root_ca.der")
    if hashlib.sha256(der).hexdigest() != INTEL_SGX_ROOT_CA_SHA256:
        raise RuntimeError("packaged Intel SGX Root CA does not match its pinned fingerprint")
    return x509.load_der_x509_certificate(der)


@dataclass(frozen=True, slots=True)
class AmdChain:
    """A pinned AMD chain: ``key_type`` is ``vcek`` (ASK signs) or ``vlek`` (ASVK signs)."""

    product: str
    key_type: str
    intermediate: x509.Certificate
    ark: x509.Certificate


@functools.cache
def amd_chains() -> tuple[AmdChain, ...]:
    """All pinned AMD chains (Milan, Genoa, Turin; VCEK and VLEK)."""
    chains = []
    for (product, key_type), inter_fp in sorted(_AMD_INTERMEDIATE_FINGERPRINTS.items()):
        certs = x509.load_pem_x509_certificates(_read(f"amd_{product.lower()}_{key_type}.pem"))
        if len(certs) != 2:
            raise RuntimeError(f"packaged AMD chain {product}/{key_type} is malformed")
        inter, ark = certs
        if cert_fingerprint(inter) != inter_fp or cert_fingerprint(ark) != AMD_ARK_FINGERPRINTS[product]:
            raise RuntimeError(f"packaged AMD chain {product}/{key_type} does not match its pinned fingerprints")
        chains.append(AmdChain(product, key_type, inter, ark))
    return tuple(chains)

"""Generated (or imported) secret material, its placeholder formats, and its store encoding.

:class:`SecretMaterial` holds the secret parts in :class:`Secret` values and the public parts (certificates) as DER
bytes. Its ``repr`` names only the kind and expiry. ``to_bytes`` is JSON meant for the *encrypted* store only.

Errors carry the stable codes ``SECRET_MATERIAL_INVALID`` (malformed or inconsistent material) and
``SECRET_FORMAT_UNSUPPORTED`` (a format the kind does not have); their messages never contain secret bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from custodes.errors import CustodesError
from custodes.secrets._formats import FORMATS, SECRET_KINDS
from custodes.secrets._secret import Secret

__all__ = ["PrivateKey", "SecretMaterial", "load_private_key"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

_VALUE_KINDS = frozenset({"ascii", "binary", "explicit"})
_CERT_KINDS = frozenset({"x509-ca", "x509"})
_WIRE_FORMAT = "custodes-secret/v1"


def _invalid(message: str) -> CustodesError:
    return CustodesError("SECRET_MATERIAL_INVALID", message)


def load_private_key(der: bytes) -> PrivateKey:
    """Load an unencrypted PKCS#8 DER private key of a supported type, or raise ``SECRET_MATERIAL_INVALID``."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise _invalid("private key is not valid unencrypted PKCS#8 DER") from e
    if not isinstance(key, PrivateKey):
        raise _invalid("unsupported private key type")
    return key


def _pem_key(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _spki_der(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class SecretMaterial:
    """One secret's material.

    Args:
        kind: a secret kind (see :data:`custodes.secrets.SECRET_KINDS`).
        value: the secret bytes, for ``ascii``, ``binary`` and ``explicit``.
        key: the private key as unencrypted PKCS#8 DER, for ``private-key``, ``x509-ca`` and ``x509``.
        chain: DER certificates, the secret's own first, then its issuers up to the root (``x509-ca``, ``x509``).

    Raises:
        CustodesError: ``SECRET_MATERIAL_INVALID`` if the parts do not fit the kind or each other.
    """

    __slots__ = ("_certs", "_chain", "_key", "_kind", "_value")

    def __init__(
        self, kind: str, *, value: Secret | None = None, key: Secret | None = None, chain: Sequence[bytes] = ()
    ) -> None:
        if kind not in SECRET_KINDS:
            raise _invalid(f"unknown secret kind {kind!r}")
        wants_value = kind in _VALUE_KINDS
        if (value is not None) != wants_value:
            raise _invalid(f"{kind} material {'needs' if wants_value else 'takes no'} value")
        if (key is not None) == wants_value:
            raise _invalid(f"{kind} material {'takes no' if wants_value else 'needs a'} private key")
        if bool(chain) != (kind in _CERT_KINDS):
            raise _invalid(f"{kind} material {'needs' if kind in _CERT_KINDS else 'takes no'} certificate chain")
        certs: tuple[x509.Certificate, ...] = ()
        if key is not None:
            private = load_private_key(key.reveal())
            if chain:
                try:
                    certs = tuple(x509.load_der_x509_certificate(bytes(der)) for der in chain)
                    leaf_spki = certs[0].public_key().public_bytes(
                        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                    is_ca = _is_ca(certs[0])
                except (ValueError, TypeError, UnsupportedAlgorithm) as e:
                    raise _invalid("certificate chain is not valid DER") from e
                if leaf_spki != _spki_der(private):
                    raise _invalid("private key does not match the certificate")
                if is_ca != (kind == "x509-ca"):
                    raise _invalid(f"{kind} certificate has the wrong BasicConstraints")
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_chain", tuple(bytes(der) for der in chain))
        object.__setattr__(self, "_certs", certs)

    # -- accessors ---------------------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self._kind  # type: ignore[no-any-return]

    @property
    def chain(self) -> tuple[bytes, ...]:
        """The DER certificates (public): own certificate first, root last. Empty for other kinds."""
        return self._chain  # type: ignore[no-any-return]

    @property
    def certificate(self) -> x509.Certificate | None:
        """The secret's own certificate (public), if it has one."""
        return self._certs[0] if self._certs else None

    @property
    def not_after(self) -> datetime | None:
        """When the certificate expires (aware UTC); ``None`` for kinds without one. Used to re-issue in time."""
        return self._certs[0].not_valid_after_utc if self._certs else None

    def private_key(self) -> PrivateKey:
        """The private key object (x509-ca issuers sign with it). Raises for kinds without a key."""
        if self._key is None:
            raise _invalid(f"{self._kind} material has no private key")
        return load_private_key(self._key.reveal())

    def secret_value(self) -> Secret:
        """The raw secret bytes of ``ascii``, ``binary`` and ``explicit`` material."""
        if self._value is None:
            raise _invalid(f"{self._kind} material has no value")
        return self._value  # type: ignore[no-any-return]

    # -- formats -----------------------------------------------------------------------------------------------

    def format(self, fmt: str | None = None) -> str:
        """Render the material as a placeholder format (see :mod:`custodes.secrets._formats`).

        Raises:
            CustodesError: ``SECRET_FORMAT_UNSUPPORTED`` for a format the kind lacks, or the default format of an
                ``explicit`` value that is not text.
        """
        if fmt not in FORMATS[self._kind]:
            raise CustodesError("SECRET_FORMAT_UNSUPPORTED", f"{self._kind} secrets have no format {fmt!r}")
        if self._value is not None:
            raw = self._value.reveal()
            if fmt == "hex" or (fmt is None and self._kind == "binary"):
                return raw.hex()
            if fmt == "base64":
                return base64.b64encode(raw).decode("ascii")
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CustodesError(
                    "SECRET_FORMAT_UNSUPPORTED", f"{self._kind} value is not UTF-8 text: use :hex or :base64"
                ) from None
        private = self.private_key()
        if fmt == "public":
            return (
                private.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode("ascii")
            )
        if self._kind == "private-key" or fmt == "key":
            return _pem_key(private)
        certs = self._certs if fmt == "chain" else self._certs[:1]
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)

    # -- store encoding ----------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """JSON for the encrypted store. The output contains the secret: never log or send it unencrypted."""
        doc: dict[str, object] = {"format": _WIRE_FORMAT, "kind": self._kind}
        if self._value is not None:
            doc["value"] = base64.b64encode(self._value.reveal()).decode("ascii")
        if self._key is not None:
            doc["key"] = base64.b64encode(self._key.reveal()).decode("ascii")
        if self._chain:
            doc["chain"] = [base64.b64encode(der).decode("ascii") for der in self._chain]
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretMaterial:
        """Parse :meth:`to_bytes` output, checking it as strictly as freshly generated material.

        Raises:
            CustodesError: ``SECRET_MATERIAL_INVALID`` for anything malformed (the message never quotes the input).
        """
        try:
            doc = json.loads(data)
        except (ValueError, TypeError, RecursionError) as e:
            raise _invalid("secret material is not valid JSON") from e
        if not isinstance(doc, dict) or doc.get("format") != _WIRE_FORMAT:
            raise _invalid(f"secret material is not {_WIRE_FORMAT}")
        unknown = set(doc) - {"format", "kind", "value", "key", "chain"}
        if unknown:
            raise _invalid("secret material has unknown fields")
        kind = doc.get("kind")
        if not isinstance(kind, str):
            raise _invalid("secret material has no kind")
        chain = doc.get("chain", [])
        if not isinstance(chain, list):
            raise _invalid("secret material chain is not a list")
        value = doc.get("value")
        key = doc.get("key")
        return cls(
            kind,
            value=None if value is None else Secret(_b64(value)),
            key=None if key is None else Secret(_b64(key)),
            chain=[_b64(item) for item in chain],
        )

    # -- redaction -----------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        expiry = f", not_after={self.not_after.isoformat()}" if self._certs else ""
        return f"SecretMaterial(kind={self._kind!r}{expiry}, ***)"

    __str__ = __repr__

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("SecretMaterial is immutable")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("SecretMaterial is not picklable: use to_bytes() into an encrypted store")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretMaterial):
            return NotImplemented
        return (
            self._kind == other._kind
            and self._value == other._value
            and self._key == other._key
            and self._chain == other._chain
        )

    __hash__ = None  # type: ignore[assignment]


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise _invalid("secret material field is not a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error) as e:
        raise _invalid("secret material field is not valid base64") from e


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False

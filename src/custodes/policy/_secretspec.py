"""Secret declarations: one model per ``kind``. The material itself is made by :mod:`custodes.secrets`."""

from __future__ import annotations

import base64
import binascii
import string
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from custodes.policy._types import DnsName, Identifier, IpAddress, NonEmptyText, Text, duration, invalid

__all__ = [
    "AsciiSecret",
    "BinarySecret",
    "ExplicitSecret",
    "PrivateKeySecret",
    "SecretSpec",
    "X509CaSecret",
    "X509Secret",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")
DEFAULT_ALPHABET = string.ascii_letters + string.digits
KeyAlgorithm = Literal["ec-p256", "ec-p384", "ed25519", "rsa-3072"]


class _Base(BaseModel):
    model_config = _FROZEN
    name: Identifier


class AsciiSecret(_Base):
    """A random password drawn uniformly from ``alphabet``."""

    kind: Literal["ascii"]
    size: Annotated[int, Strict(), Field(ge=1, le=4096)] = 32
    alphabet: Text = DEFAULT_ALPHABET

    @field_validator("alphabet")
    @classmethod
    def _alphabet(cls, value: str) -> str:
        if any(not (" " <= ch <= "~") for ch in value):
            invalid("alphabet must contain only printable ASCII characters")
        if len(set(value)) != len(value):
            invalid("alphabet must not repeat characters (repeats would bias the choice)")
        if len(value) < 2:
            invalid("alphabet needs at least 2 distinct characters")
        return value


class BinarySecret(_Base):
    """Random bytes (keys for symmetric ciphers, tokens)."""

    kind: Literal["binary"]
    size: Annotated[int, Strict(), Field(ge=1, le=65536)] = 32


class PrivateKeySecret(_Base):
    """A private key without a certificate."""

    kind: Literal["private-key"]
    algorithm: KeyAlgorithm = "ec-p256"


class X509CaSecret(_Base):
    """A certificate authority: self-signed, or issued by another ``x509-ca`` secret."""

    kind: Literal["x509-ca"]
    common_name: NonEmptyText
    issuer: Identifier | None = None
    algorithm: KeyAlgorithm = "ec-p256"
    valid_for: Annotated[timedelta, duration(positive=True)] = timedelta(days=3650)


class X509Secret(_Base):
    """A leaf certificate issued by an ``x509-ca`` secret; ``per_instance`` makes a fresh one per attestation."""

    kind: Literal["x509"]
    issuer: Identifier
    common_name: NonEmptyText | None = None
    dns: tuple[DnsName, ...] = ()
    ip: tuple[IpAddress, ...] = ()
    valid_for: Annotated[timedelta, duration(positive=True)] = timedelta(days=90)
    usage: Annotated[tuple[Literal["server", "client"], ...], Field(min_length=1)] = ("server",)
    algorithm: KeyAlgorithm = "ec-p256"
    per_instance: Annotated[bool, Strict()] = False

    @model_validator(mode="after")
    def _unique(self) -> X509Secret:
        if not self.dns and not self.ip:
            invalid("x509 certificate needs at least one dns or ip entry (verifiers require a subjectAltName)")
        for field in ("dns", "ip", "usage"):
            values = getattr(self, field)
            if len(set(values)) != len(values):
                invalid(f"{field} lists a value twice")
        return self


class ExplicitSecret(_Base):
    """A value written into the policy (warned about: it belongs in an encrypted policy)."""

    kind: Literal["explicit"]
    value: Text
    encoding: Literal["utf-8", "hex", "base64"] = "utf-8"

    @model_validator(mode="before")
    @classmethod
    def _normalise_hex(cls, data: object) -> object:
        # Same bytes, same canonical hash: hex values are stored without spaces, in lower case.
        if isinstance(data, dict) and data.get("encoding") == "hex" and isinstance(data.get("value"), str):
            try:
                return {**data, "value": bytes.fromhex(data["value"]).hex()}
            except ValueError:
                return data
        return data

    @model_validator(mode="after")
    def _decodes(self) -> ExplicitSecret:
        # Messages never quote the value: it is a secret.
        try:
            self.decoded()
        except (ValueError, binascii.Error):
            invalid(f"value is not valid {self.encoding}")
        return self

    def decoded(self) -> bytes:
        """The value's bytes."""
        if self.encoding == "hex":
            return bytes.fromhex(self.value)
        if self.encoding == "base64":
            return base64.b64decode(self.value.encode("ascii"), validate=True)
        return self.value.encode("utf-8")

    def is_text(self) -> bool:
        """Whether the default placeholder format (the value as text) can render it."""
        try:
            return "\x00" not in self.decoded().decode("utf-8")
        except UnicodeDecodeError:
            return False


SecretSpec = Annotated[
    AsciiSecret | BinarySecret | PrivateKeySecret | X509CaSecret | X509Secret | ExplicitSecret,
    Field(discriminator="kind"),
]

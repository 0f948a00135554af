"""Secret kinds, generation and formats: ascii, binary, private keys, X.509 CAs and leaves, explicit values.

>>> from custodes.secrets import Secret
>>> Secret(b"hunter2")
Secret(***)

The policy language (:mod:`custodes.policy`) declares secrets; this package makes their material. Secret bytes live
in :class:`Secret` values whose ``repr``/``str`` are redacted; they leave custodes only through ``reveal()``,
``SecretMaterial.format()`` (rendering a service's config) and ``SecretMaterial.to_bytes()`` (the encrypted store).
"""

from custodes.secrets._formats import FORMATS, SECRET_KINDS, supported_formats
from custodes.secrets._generate import generate_secret
from custodes.secrets._material import SecretMaterial
from custodes.secrets._secret import Secret

__all__ = ["FORMATS", "SECRET_KINDS", "Secret", "SecretMaterial", "generate_secret", "supported_formats"]

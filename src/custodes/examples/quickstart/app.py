"""The quickstart's example application: a stand-in for a clinic's dosage service (standard library only).

It runs under ``custodes run`` and changes nothing for it: it reads its database password from the environment and
its config file, TLS certificate and key from the paths the environment names. It proves that it has them without
revealing them: it checks that the config file carries the same password and that the key and certificate are PEM,
then prints only lengths and SHA-256 prefixes. Then it serves (here: sleeps) until SIGTERM.
"""

import hashlib
import os
import signal
import sys
import time

VERSION = 1


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> int:
    password = os.environ.get("DB_PASSWORD", "")
    if not password or "APP_CONFIG" not in os.environ:
        print("dosage-app: no injected configuration: refusing to start", file=sys.stderr)
        return 2
    files = {}
    for name in ("APP_CONFIG", "TLS_CERT", "TLS_KEY"):
        with open(os.environ[name], "rb") as fh:
            files[name] = fh.read()
    if f":{password}@".encode() not in files["APP_CONFIG"]:
        print("dosage-app: the config file does not carry the database password", file=sys.stderr)
        return 3
    if not files["TLS_CERT"].startswith(b"-----BEGIN CERTIFICATE-----") or b"PRIVATE KEY-----" not in files["TLS_KEY"]:
        print("dosage-app: the TLS certificate or key is not PEM", file=sys.stderr)
        return 3
    proof = " ".join(f"{name}=sha256:{fingerprint(data)}" for name, data in sorted(files.items()))
    print(f"dosage-app v{VERSION}: DB_PASSWORD={len(password)} chars sha256:{fingerprint(password.encode())} {proof}")
    print(f"dosage-app v{VERSION}: ready (pid {os.getpid()})", flush=True)

    def stop(signum: int, frame: object) -> None:
        print(f"dosage-app v{VERSION}: signal {signum}, shutting down", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())

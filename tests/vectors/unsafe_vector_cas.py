"""TEST ONLY. A real CAS process that replays recorded hardware evidence from ../shared/testvectors.

Recorded quotes cannot bind a fresh nonce, and their collateral is valid only in a past window. This script runs
the ordinary CAS (`custodes.server.serve.serve`) with two test-only parts that exist nowhere in the package:

* a clock fixed at the vectors' `now` (floored as usual), and
* `UnsafeTestOnlyVectorBinding`, which accepts evidence whose SHA-256 is on an explicit allow-list instead of
  checking that report_data binds the nonce and public key.

Production cannot enable either: `serve()` takes them only as Python arguments, and no flag, environment variable,
file or API call of the `custodes` command selects anything but the strict binding (custodes.server.binding).

    python tests/vectors/unsafe_vector_cas.py --data-dir D --at 2025-07-04T10:28:44Z --allow SHA256 [--allow ...]
"""

from __future__ import annotations

import argparse
import hashlib
from datetime import datetime
from pathlib import Path

from custodes.clock import FixedClock, FlooredClock
from custodes.evidence.claims import Claims
from custodes.server.serve import ServeOptions, serve


class UnsafeTestOnlyVectorBinding:
    """Accepts evidence on an allow-list of SHA-256 digests, whatever its report_data."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed

    def binds(self, claims: Claims, evidence: bytes, expected_report_data: bytes) -> bool:
        return hashlib.sha256(evidence).hexdigest() in self.allowed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--at", required=True, help="the fixed CAS time (ISO 8601)")
    parser.add_argument("--allow", action="append", default=[], help="SHA-256 of evidence to accept unbound")
    args = parser.parse_args()
    at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
    serve(
        ServeOptions(data_dir=args.data_dir, host="127.0.0.1", port=0),
        clock=FlooredClock(FixedClock(at)),
        binding=UnsafeTestOnlyVectorBinding(set(args.allow)),
    )


if __name__ == "__main__":
    main()

"""The workload side: evidence providers, attestation, (later) injection and supervision."""

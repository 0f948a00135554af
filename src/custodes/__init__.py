"""custodes: attested configuration and secrets for confidential, safety-critical workloads."""

__version__ = "0.1.0"

__all__ = ["__version__"]

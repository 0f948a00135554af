"""Appraisal: is verified evidence acceptable for this policy and service, now? Pure functions."""

from custodes.appraisal.appraise import REASONS, Verdict, appraise, measurement_matches

__all__ = ["REASONS", "Verdict", "appraise", "measurement_matches"]

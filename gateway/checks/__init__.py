"""Detectors: small single-purpose classes behind one protocol and one registry."""

"""Situate: a policy-governed, OpenAI-compatible model gateway."""

from gateway.version import __version__

__all__ = ["__version__"]

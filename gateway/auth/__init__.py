"""Callers: API keys bound to deployment contexts."""

"""The gateway's version, stamped on every exchange record."""

__version__ = "0.1.0"

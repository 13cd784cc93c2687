"""The tamper-evident record: a hash chain of exchanges and events, signed checkpoints
over it, and its verifier (docs/audit.md)."""

"""The chain's two secrets, in ``audit.keys_dir``: ``hmac.key`` (32 random bytes, as hex
text), the key of the commitments to content, and ``signing.key`` (Ed25519, PEM PKCS 8), the
checkpoints' signer. Both are made on the first start when missing (mode 0600); an operator
mounts their own in production. A file that is there but cannot be read, or is not a key, is
an error naming the file: a gateway never makes a new key over one it could not read."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.audit.canonical import stored_canonical
from gateway.audit.checkpoint_files import fsync_folder
from gateway.config import ConfigError
from gateway.config.observe import AuditConfig

log = logging.getLogger("gateway.audit.keys")

HMAC_FILE = "hmac.key"
SIGNING_FILE = "signing.key"
HMAC_BYTES = 32


class AuditKeyError(ConfigError):
    """A key file is unreadable or malformed; the message names it and says why."""


@dataclass(frozen=True)
class AuditKeys:
    hmac_key: bytes
    signing_key: Ed25519PrivateKey
    name: str

    def commit(self, value: Any) -> str | None:
        """The commitment to a content value (a request or response body, a decision): hex
        HMAC-SHA256 over its canonical JSON as the database gives it back; None for None."""
        if value is None:
            return None
        data = stored_canonical(value)
        return hmac.digest(self.hmac_key, data, "sha256").hex()

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @classmethod
    def load(cls, config: AuditConfig, *, create: bool) -> AuditKeys:
        """The keys in ``config.keys_dir``; with ``create``, the missing ones are made."""
        folder = config.keys_dir
        hmac_path, signing_path = folder / HMAC_FILE, folder / SIGNING_FILE
        if create:
            _folder(folder)
            _create(hmac_path, lambda: secrets.token_hex(HMAC_BYTES).encode() + b"\n")
            _create(signing_path, _new_signing_key)
        return cls(_read_hmac(hmac_path), _read_signing(signing_path), config.key_name)


def _new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _folder(folder: Path) -> None:
    if folder.is_dir():  # mounted read-only, perhaps: nothing to make
        return
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror
        raise AuditKeyError(f"{folder}: cannot make the audit keys' folder: {why}") from exc


def _create(path: Path, make: Any) -> None:
    """Write a new key file, readable by its owner only, unless one is there. Whole or not at
    all: written to a temporary file beside it (0600) and fsynced, then linked to its name,
    which fails when another process (a replica on the same volume) linked its key first:
    that one stands. A crash leaves a stray temporary file, never an empty key."""
    if path.exists():
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(make())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
            fsync_folder(path.parent)
        finally:
            temporary.unlink(missing_ok=True)
    except FileExistsError:  # linked by another process meanwhile: its key stands
        return
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot create the audit key: {exc.strerror}") from exc


def _read(path: Path) -> bytes:
    try:
        _warn_when_shared(path)
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise AuditKeyError(f"{path}: no audit key there (the gateway makes one on start)") from exc
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot read the audit key: {exc.strerror}") from exc


def _warn_when_shared(path: Path) -> None:
    """A key file its group or others may read (or write) is logged: it should be 0600."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s: the audit key's mode is %04o, readable beyond its owner: chmod 600 it",
                    path, mode)


def _read_hmac(path: Path) -> bytes:
    text = _read(path).strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AuditKeyError(
            f"{path}: not an HMAC key (expected {HMAC_BYTES * 2} hex digits)"
        ) from exc
    if len(key) != HMAC_BYTES:
        raise AuditKeyError(
            f"{path}: not an HMAC key (expected {HMAC_BYTES * 2} hex digits, got {len(text)})"
        )
    return key


def _read_signing(path: Path) -> Ed25519PrivateKey:
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(
            f"{path}: not an unencrypted PEM (PKCS 8) private key: {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: the signing key must be Ed25519, not {type(key).__name__}")
    return key

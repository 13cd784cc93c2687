"""Signed checkpoints: the C2SP signed-note and tlog-checkpoint formats, with Ed25519.

A checkpoint's body is three lines, ``origin``, the tree's size in decimal and its root in
base64 (c2sp.org/tlog-checkpoint); the signed note is that body, a blank line and one
signature line per signer, ``— <name> <base64(key id || signature)>`` (c2sp.org/signed-note).
The signature covers the body with its final newline. The key id is the first four bytes of
SHA-256(name || 0x0A || 0x01 || public key), 0x01 being Ed25519's signature type; a verifier
key (vkey) is ``<name>+<hex key id>+<base64(0x01 || public key)>``, the text an operator
publishes so anyone can check a checkpoint with nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.merkle import HASH_SIZE

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]*)$")
_MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note or checkpoint refused, and why: malformed, not signed by the key, bad
    signature, or a verifier key that is not one."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature checked out: what it says, and the note as signed."""

    origin: str
    size: int
    root: bytes
    text: str


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """``origin\\nsize\\nbase64(root)\\n``: the text a checkpoint signs."""
    if not origin or "\n" in origin or origin != origin.strip():
        raise NoteError("an origin is one non-empty line without surrounding spaces")
    if size < 0 or len(root) != HASH_SIZE:
        raise NoteError("a checkpoint has a size of at least 0 and a 32-byte root")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def _public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise NoteError(f"a signer's name is non-empty, without spaces or '+': {name!r}")


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    data = name.encode() + b"\n" + bytes([ED25519]) + _public_bytes(public)
    return hashlib.sha256(data).digest()[:4]


def vkey(name: str, public: Ed25519PublicKey) -> str:
    """The verifier key: ``name+hex(key id)+base64(0x01 || public key)``."""
    _check_name(name)
    encoded = base64.b64encode(bytes([ED25519]) + _public_bytes(public)).decode()
    return f"{name}+{key_id(name, public).hex()}+{encoded}"


def _check_text(body: str) -> None:
    if not body.endswith("\n") or "\n\n" in body:
        raise NoteError("a note's text ends with a newline and has no blank line")
    if any(ord(char) < 0x20 and char != "\n" for char in body):
        raise NoteError("a note's text has no control characters but newlines")


def sign(body: str, name: str, key: Ed25519PrivateKey) -> str:
    """The signed note: ``body``, a blank line and this key's signature line."""
    _check_name(name)
    _check_text(body)
    signature = key.sign(body.encode())
    line = base64.b64encode(key_id(name, key.public_key()) + signature).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{name} {line}\n"


@dataclass(frozen=True)
class Verifier:
    """A verifier key, parsed: the signer's name, key id and public key."""

    name: str
    id: bytes
    public: Ed25519PublicKey

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """The verifier of ``vkey``'s text; NoteError when it is not one."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]) or not re.fullmatch(r"[0-9a-f]{8}",
                                                                             parts[1]):
            raise NoteError("a verifier key is name+8 hex digits+base64")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise NoteError("a verifier key's public key is not base64") from exc
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("a verifier key here is an Ed25519 key (type 0x01, 32 bytes)")
        public = Ed25519PublicKey.from_public_bytes(raw[1:])
        if key_id(parts[0], public) != bytes.fromhex(parts[1]):
            raise NoteError("a verifier key's id does not match its name and public key")
        return cls(parts[0], bytes.fromhex(parts[1]), public)


def _split_note(text: str) -> tuple[str, list[str]]:
    """The signed text and its signature lines, each checked for shape."""
    cut = text.rfind("\n\n")
    if cut < 0 or not text.endswith("\n"):
        raise NoteError("malformed note: no blank line before signatures, or no final newline")
    body, lines = text[:cut + 1], text[cut + 2:-1].split("\n")
    _check_text(body)
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError("malformed note: more than 100 signatures")
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX) or len(line.split(" ")) != 3:
            raise NoteError(f"malformed signature line: {line!r}")
    return body, lines


def _signature_of(line: str) -> tuple[str, bytes, bytes]:
    _, name, encoded = line.split(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise NoteError(f"malformed signature line (not base64): {line!r}") from exc
    if len(raw) < 5:
        raise NoteError(f"malformed signature line (too short): {line!r}")
    return name, raw[:4], raw[4:]


def open_note(text: str, verifier: Verifier) -> str:
    """The note's text when the verifier's key signed it; NoteError why not."""
    body, lines = _split_note(text)
    for line in lines:
        name, found_id, signature = _signature_of(line)
        if name != verifier.name or found_id != verifier.id:
            continue
        try:
            verifier.public.verify(signature, body.encode())
        except InvalidSignature as exc:
            raise NoteError(f"bad signature by {name}: the note was changed after signing "
                            "or signed by another key") from exc
        return body
    raise NoteError(f"no signature by {verifier.name}+{verifier.id.hex()} on this note")


def parse_body(body: str) -> tuple[str, int, bytes]:
    """A tlog-checkpoint body's origin, size and root (extension lines may follow)."""
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or not lines[0]:
        raise NoteError("malformed checkpoint: origin, size and root lines expected")
    if not _SIZE.match(lines[1]):
        raise NoteError(f"malformed checkpoint: size {lines[1]!r} is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise NoteError("malformed checkpoint: the root is not base64") from exc
    if len(root) != HASH_SIZE:
        raise NoteError("malformed checkpoint: the root is not 32 bytes")
    return lines[0], int(lines[1]), root


def open_checkpoint(text: str, vkey: str) -> Checkpoint:
    """The checkpoint in ``text`` if the key ``vkey`` names signed it; NoteError why not."""
    origin, size, root = parse_body(open_note(text, Verifier.parse(vkey)))
    return Checkpoint(origin=origin, size=size, root=root, text=text)

"""Signed notes and checkpoints: Go's sumdb/note test vector, and tampering refused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.merkle import leaf_hash
from gateway.audit.note import (
    NoteError,
    Verifier,
    checkpoint_body,
    key_id,
    open_checkpoint,
    open_note,
    sign,
    vkey,
)

# golang.org/x/mod/sumdb/note's example key and its signature of this text.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = GO_TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1"
                     "FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ROOT = leaf_hash(b"the root")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_the_go_vector() -> None:
    private = Ed25519PrivateKey.from_private_bytes(GO_SEED)
    assert vkey("PeterNeumann", private.public_key()) == GO_VKEY
    assert key_id("PeterNeumann", private.public_key()).hex() == "c74f20a3"
    assert sign(GO_TEXT, "PeterNeumann", private) == GO_NOTE
    assert open_note(GO_NOTE, Verifier.parse(GO_VKEY)) == GO_TEXT


def test_a_checkpoint_signed_here_opens(key: Ed25519PrivateKey) -> None:
    body = checkpoint_body("situate.local/audit/main", 1234, ROOT)
    assert body == f"situate.local/audit/main\n1234\n{base64.b64encode(ROOT).decode()}\n"
    text = sign(body, "situate", key)
    assert text.startswith(body + "\n\u2014 situate ")
    opened = open_checkpoint(text, vkey("situate", key.public_key()))
    assert (opened.origin, opened.size, opened.root, opened.text) == (
        "situate.local/audit/main", 1234, ROOT, text)


def test_other_signers_lines_are_passed_over(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    body = checkpoint_body("o", 1, ROOT)
    cosigned = sign(body, "witness", other) + sign(body, "situate", key).split("\n\n")[1]
    assert open_checkpoint(cosigned, vkey("situate", key.public_key())).size == 1
    assert open_checkpoint(cosigned, vkey("witness", other.public_key())).size == 1


def _tampered(text: str, what: str) -> str:
    body, signature = text.split("\n\n")
    origin, size, root = body.split("\n")
    if what == "size":
        return f"{origin}\n{int(size) + 1}\n{root}\n\n{signature}"
    if what == "root":
        other = base64.b64encode(leaf_hash(b"another root")).decode()
        return f"{origin}\n{size}\n{other}\n\n{signature}"
    if what == "origin":
        return f"{origin}x\n{size}\n{root}\n\n{signature}"
    prefix, encoded = signature.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    return f"{body}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


@pytest.mark.parametrize("what", ["size", "root", "origin", "signature"])
def test_a_tampered_checkpoint_is_refused(key: Ed25519PrivateKey, what: str) -> None:
    text = sign(checkpoint_body("situate.local/audit/main", 9, ROOT), "situate", key)
    with pytest.raises(NoteError, match="bad signature"):
        open_checkpoint(_tampered(text, what), vkey("situate", key.public_key()))


def test_another_key_finds_no_signature(key: Ed25519PrivateKey) -> None:
    text = sign(checkpoint_body("o", 9, ROOT), "situate", key)
    stranger = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(NoteError, match="no signature by situate"):
        open_checkpoint(text, vkey("situate", stranger))
    with pytest.raises(NoteError, match="no signature by other"):
        open_checkpoint(text, vkey("other", key.public_key()))


@pytest.mark.parametrize("text", [
    "o\n9\nroot\n",                                    # no signatures
    "o\n9\n" + base64.b64encode(ROOT).decode() + "\n\n- situate AAAA\n",
    "o\n9\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 situate AAAA",
    "o\n9\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 situate !!!\n",
    "o\n9\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 situate AAA=\n",
])
def test_a_malformed_note_is_refused(key: Ed25519PrivateKey, text: str) -> None:
    with pytest.raises(NoteError, match="malformed"):
        open_checkpoint(text, vkey("situate", key.public_key()))


@pytest.mark.parametrize("body", [
    "o\n09\n" + base64.b64encode(ROOT).decode() + "\n",
    "o\nnine\n" + base64.b64encode(ROOT).decode() + "\n",
    "o\n9\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
    "o\n9\n",
])
def test_a_signed_body_that_is_no_checkpoint_is_refused(key: Ed25519PrivateKey,
                                                       body: str) -> None:
    with pytest.raises(NoteError, match="malformed checkpoint"):
        open_checkpoint(sign(body, "situate", key), vkey("situate", key.public_key()))


@pytest.mark.parametrize("text", [
    "situate", "situate+c74f20a3", "situate+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3+AhpQ", "PeterNeumann+c74f20a3+not base64",
])
def test_a_verifier_key_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(NoteError, match="verifier key"):
        Verifier.parse(text)


def test_names_and_texts_that_cannot_be_signed(key: Ed25519PrivateKey) -> None:
    with pytest.raises(NoteError):
        sign("text\n", "two words", key)
    with pytest.raises(NoteError):
        sign("no final newline", "situate", key)
    with pytest.raises(NoteError):
        sign("a\n\nblank line\n", "situate", key)
    with pytest.raises(NoteError):
        checkpoint_body("two\nlines", 1, ROOT)

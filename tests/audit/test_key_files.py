"""The audit keys' files: made whole or not at all (a temporary file, fsynced, then linked),
the key another process linked first stands, and a key file its group or others may read is
logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gateway.audit import keys as key_files
from gateway.audit.keys import AuditKeys
from gateway.config.observe import AuditConfig


def test_a_write_that_fails_leaves_no_key_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash() -> bytes:
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(key_files, "_new_signing_key", crash)
    with pytest.raises(RuntimeError, match="killed"):
        AuditKeys.load(AuditConfig(keys_dir=tmp_path), create=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hmac.key"]  # no empty signing.key
    monkeypatch.undo()
    AuditKeys.load(AuditConfig(keys_dir=tmp_path), create=True)  # the next start makes it


def test_the_key_another_process_linked_first_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = "ab" * 32 + "\n"
    link = os.link

    def raced(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        if Path(target).name == "hmac.key":  # a replica on the same volume was quicker
            Path(target).write_text(theirs)
        link(source, target)

    monkeypatch.setattr(os, "link", raced)
    loaded = AuditKeys.load(AuditConfig(keys_dir=tmp_path), create=True)
    assert loaded.hmac_key == bytes.fromhex(theirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hmac.key", "signing.key"]


def test_a_key_file_readable_beyond_its_owner_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = AuditConfig(keys_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="gateway.audit.keys"):
        AuditKeys.load(config, create=True)
        assert not caplog.records  # made 0600
        (tmp_path / "signing.key").chmod(0o640)
        AuditKeys.load(config, create=False)
    (warned,) = caplog.records
    assert str(tmp_path / "signing.key") in warned.getMessage()
    assert "0640" in warned.getMessage()

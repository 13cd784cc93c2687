"""The audit keys are made by ``gateway serve`` and ``gateway audit key`` only: any other
command that needs them and finds none says so in one line and exits 2, rather than commit
content under a key of its own."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.servers import in_process


def _env(tmp_path: Path) -> dict[str, str | None]:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "backends": {"mock": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"test-small": {"backend": "mock", "model": "mock-small"}},
        "audit": {"keys_dir": str(tmp_path / "keys")},
    }))
    return {"GATEWAY_CONFIG": str(config),
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"}


def test_only_audit_key_makes_missing_keys_and_says_so(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for args in (["audit", "checkpoint"], ["keys", "revoke", "key_nope"]):
        refused = in_process(args, env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line == (f"error: {tmp_path / 'keys' / 'hmac.key'}: no audit key there "
                        "(the gateway makes one on start)")
    assert not (tmp_path / "keys").exists() or not any((tmp_path / "keys").iterdir())
    made = in_process(["audit", "key"], env)
    assert made.returncode == 0, made.stderr
    assert "made hmac.key and signing.key" in made.stderr
    again = in_process(["audit", "key"], env)
    assert again.returncode == 0 and again.stderr == ""
    assert again.stdout == made.stdout and made.stdout.startswith("situate+")

"""The live policies: one compiled snapshot per context, swapped whole when a file changes.

A broken edit never replaces a good revision: the last good one keeps serving and the error is
kept (for the log, ``/readyz`` and the admin API) until the file is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.checks.base import Registry
from gateway.checks.registry import default_registry
from gateway.config import GatewayConfig
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError, load_policy, policy_files

log = logging.getLogger("gateway.policy")

OnLoad = Callable[[CompiledPolicy], Awaitable[None]]
BUILTIN_POLICIES = Path(__file__).resolve().parent / "builtin"


@dataclass(frozen=True, slots=True)
class FileState:
    mtime_ns: int
    size: int


def _state(path: Path) -> FileState | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return FileState(stat.st_mtime_ns, stat.st_size)


class PolicyStore:
    def __init__(
        self, directories: Iterable[Path], registry: Registry, aliases: Iterable[str] | None = None
    ) -> None:
        self._directories = list(directories)
        self._registry = registry
        self._aliases = list(aliases) if aliases is not None else None
        self._policies: dict[str, CompiledPolicy] = {}
        self._files: dict[Path, FileState | None] = {}
        self._contexts_of: dict[Path, str] = {}
        self.errors: dict[Path, str] = {}

    def get(self, context: str) -> CompiledPolicy | None:
        return self._policies.get(context)

    @property
    def contexts(self) -> list[str]:
        return sorted(self._policies)

    def all(self) -> list[CompiledPolicy]:
        return [self._policies[c] for c in self.contexts]

    def files(self) -> list[Path]:
        return [
            path for folder in self._directories if folder.is_dir() for path in policy_files(folder)
        ]

    def refresh(self) -> list[CompiledPolicy]:
        """Load files that are new or changed since last time; return what was (re)compiled."""
        loaded = []
        current = self.files()
        for path in current:
            state = _state(path)
            if path in self._files and self._files[path] == state:
                continue
            self._files[path] = state
            compiled = self._load(path)
            if compiled is not None:
                loaded.append(compiled)
        for gone in set(self._files) - set(current):
            self._forget(gone)
        return loaded

    def _load(self, path: Path) -> CompiledPolicy | None:
        try:
            compiled = load_policy(path, self._registry, self._aliases)
        except PolicyError as exc:
            self.errors[path] = str(exc)
            serving = self._contexts_of.get(path)
            log.error(
                "policy %s refused%s:\n%s",
                path,
                f"; revision {self._policies[serving].short_revision} keeps serving"
                if serving in self._policies
                else "",
                exc,
            )
            return None
        self.errors.pop(path, None)
        other = self._policies.get(compiled.context)
        if other is not None and other.path != path:
            self.errors[path] = f"{path}: context {compiled.context!r} is defined twice"
            return None
        self._policies[compiled.context] = compiled
        self._contexts_of[path] = compiled.context
        log.info("policy %s at revision %s", compiled.context, compiled.short_revision)
        return compiled

    def _forget(self, path: Path) -> None:
        self._files.pop(path, None)
        self.errors.pop(path, None)
        context = self._contexts_of.pop(path, None)
        if context is not None:
            self._policies.pop(context, None)
            log.warning("policy file %s removed: context %s no longer served", path, context)

    async def watch(self, interval: float, on_load: OnLoad) -> None:
        """Poll the folders for changes until cancelled."""
        while True:
            await asyncio.sleep(interval)
            for compiled in self.refresh():
                await on_load(compiled)


def policy_store(config: GatewayConfig) -> PolicyStore:
    """The configured policies folder, or the built-in demo policy where there is none."""
    folder = config.policies_dir if config.policies_dir.is_dir() else BUILTIN_POLICIES
    return PolicyStore([folder], default_registry(), aliases=config.models.keys())

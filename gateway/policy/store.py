"""The live policies: one compiled snapshot per context, swapped whole when a file changes.

A broken edit never replaces a good revision: the last good one keeps serving and the error is
kept (for the log, ``/readyz`` and the admin API) until the file is fixed. A gateway (re)started
with a broken file has no good revision in memory: ``restore`` serves that context's last good
revision from the database instead, until the file is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.checks.base import Registry
from gateway.checks.classifier import DetectorRuntime
from gateway.checks.registry import default_registry
from gateway.config import GatewayConfig
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError, compile_policy, load_policy, policy_files

if TYPE_CHECKING:
    from gateway.policy.revisions import RevisionRepository

log = logging.getLogger("gateway.policy")

OnLoad = Callable[[CompiledPolicy], Awaitable[None]]
#: a refused edit of a served context's file: the revision that keeps serving, and why
OnRefuse = Callable[[CompiledPolicy, str], Awaitable[None]]
_PACKAGE = Path(__file__).resolve().parent.parent
#: the example policies that ship with the gateway: in the wheel, or in a source checkout
SHIPPED_POLICIES = next(
    (p for p in (_PACKAGE / "_policies", _PACKAGE.parent / "policies") if p.is_dir()),
    _PACKAGE / "_policies",
)


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
        self,
        directories: Iterable[Path],
        registry: Registry,
        aliases: Iterable[str] | None = None,
        fallback: Path | None = None,
    ) -> None:
        self._directories = list(directories)
        self._fallback = fallback  # served while the folders hold no policy file
        self._registry = registry
        self._aliases = list(aliases) if aliases is not None else None
        self._policies: dict[str, CompiledPolicy] = {}
        self._files: dict[Path, FileState | None] = {}
        self._contexts_of: dict[Path, str] = {}
        self._restored: set[str] = set()
        self._refusals: list[Path] = []
        self.errors: dict[Path, str] = {}

    def get(self, context: str) -> CompiledPolicy | None:
        return self._policies.get(context)

    @property
    def contexts(self) -> list[str]:
        return sorted(self._policies)

    def all(self) -> list[CompiledPolicy]:
        return [self._policies[c] for c in self.contexts]

    def served_from(self, context: str) -> str:
        """``file``, or ``database`` for a last good revision restored at start."""
        return "database" if context in self._restored else "file"

    def file_error(self, context: str) -> str | None:
        """Why the served context's file is refused, if it is."""
        policy = self._policies.get(context)
        return self.errors.get(policy.path) if policy is not None else None

    @property
    def restored(self) -> list[CompiledPolicy]:
        """Contexts served from the database because their file is broken."""
        return [self._policies[c] for c in sorted(self._restored)]

    def files(self) -> list[Path]:
        found = [
            path for folder in self._directories if folder.is_dir() for path in policy_files(folder)
        ]
        if not found and self._fallback is not None and self._fallback.is_dir():
            return policy_files(self._fallback)
        return found

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
        except Exception as exc:  # any failure to compile is this file's problem, no one else's
            self.errors[path] = compile_problem(path, exc)
            self._refusals.append(path)
            serving = self._contexts_of.get(path)
            log.error(
                "policy %s refused%s:\n%s",
                path,
                f"; revision {self._policies[serving].short_revision} keeps serving"
                if serving in self._policies
                else "",
                self.errors[path],
                exc_info=None if isinstance(exc, PolicyError) else exc,
            )
            return None
        self.errors.pop(path, None)
        other = self._policies.get(compiled.context)
        if other is not None and other.path != path:
            self.errors[path] = f"{path}: context {compiled.context!r} is defined twice"
            return None
        self._policies[compiled.context] = compiled
        self._contexts_of[path] = compiled.context
        self._restored.discard(compiled.context)
        log.info("policy %s at revision %s", compiled.context, compiled.short_revision)
        return compiled

    def _forget(self, path: Path) -> None:
        self._files.pop(path, None)
        self.errors.pop(path, None)
        context = self._contexts_of.pop(path, None)
        if context is not None:
            self._policies.pop(context, None)
            self._restored.discard(context)
            log.warning("policy file %s removed: context %s no longer served", path, context)

    async def restore(self, revisions: RevisionRepository) -> list[CompiledPolicy]:
        """Serve the last good stored revision of each context whose file is refused and that
        nothing serves (a start with a broken file); return what was restored."""
        restored = []
        for path in sorted(self.errors):
            context = path.stem  # a file that compiled was named after its context
            if context not in self._policies:
                compiled = await self._restore(path, context, revisions)
                if compiled is not None:
                    restored.append(compiled)
        return restored

    async def _restore(
        self, path: Path, context: str, revisions: RevisionRepository
    ) -> CompiledPolicy | None:
        try:
            stored = await revisions.last_good(context)
        except Exception as exc:  # the database may be down: the context stays unserved
            log.error("policy %s refused; no last good revision of %s: %s", path, context, exc)
            return None
        if stored is None:
            log.error("policy %s refused and %s has no stored revision: not served", path, context)
            return None
        try:
            compiled = compile_policy(path, stored.text, self._registry, self._aliases)
        except Exception as exc:  # as in _load: the context stays unserved, the others serve
            problem = compile_problem(path, exc)
            self.errors[path] += (
                f"\n(its last good revision {stored.revision[:12]} does not compile now:\n"
                f"{problem})"
            )
            log.error(
                "policy %s refused; revision %s fails too:\n%s", path, stored.revision, problem
            )
            return None
        self._policies[context] = compiled
        self._contexts_of[path] = context
        self._restored.add(context)
        log.error(
            "POLICY FILE BROKEN: %s; serving context %s at its last good revision %s "
            "from the database (first loaded %s from %s) until the file is fixed:\n%s",
            path,
            context,
            compiled.short_revision,
            stored.first_seen_at.isoformat(),
            stored.path,
            self.errors[path],
        )
        return compiled

    async def watch(
        self, interval: float, on_load: OnLoad, on_refuse: OnRefuse | None = None
    ) -> None:
        """Poll the folders for changes until cancelled. When ``on_load`` fails (the database
        is down), the files not yet handed over are forgotten so the next poll loads them
        again, and the error ends the watch for its supervisor to report and restart.
        ``on_refuse`` hears of each refused edit of a served context's file (the files
        refused before the watch began are ``restore``'s)."""
        self._refusals.clear()
        while True:
            await asyncio.sleep(interval)
            loaded = self.refresh()
            for done, compiled in enumerate(loaded):
                try:
                    await on_load(compiled)
                except Exception:
                    for unsaved in loaded[done:]:
                        self._files.pop(unsaved.path, None)
                    raise
            refused, self._refusals = self._refusals, []
            if on_refuse is not None:
                await self._tell_refused(refused, on_refuse)

    async def _tell_refused(self, refused: list[Path], on_refuse: OnRefuse) -> None:
        for path in refused:
            serving = self._policies.get(self._contexts_of.get(path, ""))
            if serving is not None and path in self.errors:
                await on_refuse(serving, self.errors[path])


def compile_problem(path: Path, exc: Exception) -> str:
    """What a refused file's error says (here, in ``/readyz`` and ``gateway policy check``):
    a PolicyError's own text (it names the file and line), anything else with its type, since
    it comes from code the policy named (a detector's model raising while it is built)."""
    if isinstance(exc, PolicyError):
        return str(exc)
    return f"{path}: cannot compile: {type(exc).__name__}: {exc}"


def policy_store(config: GatewayConfig, runtime: DetectorRuntime | None = None) -> PolicyStore:
    """The configured policies folder; the shipped examples (demo among them) while it is
    missing or empty. ``runtime``: the detector pool the policies' models run in (the
    lifespan's; without one, the registry's own)."""
    return PolicyStore(
        [config.policies_dir],
        default_registry(runtime),
        aliases=config.models.keys(),
        fallback=SHIPPED_POLICIES,
    )


def served_folder(config: GatewayConfig) -> Path:
    """The folder a gateway with this config serves its policies from now."""
    folder = config.policies_dir
    return folder if folder.is_dir() and policy_files(folder) else SHIPPED_POLICIES

"""What a verification found, chain by chain: the scanned ranges stitched together (each
range's first link, entries out of place told apart), the head row, the checkpoints and
receipts against the tree, sorted so that the first broken place comes first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.audit.leaf import ZERO_HASH
from gateway.audit.verify_diff import Problem
from gateway.audit.verify_notes import NoteSource, check_notes
from gateway.audit.verify_receipts import Held, check_held
from gateway.audit.verify_scan import RangeResult
from gateway.audit.verify_tree import Tree
from gateway.config.observe import AuditConfig

#: problems per chain in the report (the first is what matters)
KEEP = 20


@dataclass
class ChainReport:
    chain: str
    #: entries in the log (the highest seq + 1), as the head row says
    entries: int = 0
    head_size: int | None = None
    exchanges: int = 0
    events: int = 0
    #: exchanges the fast path left to the exact one (values outside plain JSON)
    rechecked: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain, "ok": not self.problems, "entries": self.entries,
            "head_size": self.head_size, "exchanges": self.exchanges, "events": self.events,
            "rechecked": self.rechecked,
            "checkpoints": self.checkpoints,
            "first": self.first.to_json() if self.first else None,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass
class Report:
    chains: list[ChainReport] = field(default_factory=list)
    #: problems of no one chain: exchange rows no chain has, checkpoints of no chain here
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(not c.problems for c in self.chains)

    @property
    def entries(self) -> int:
        return sum(c.entries for c in self.chains)

    def broken(self) -> list[Problem]:
        """The first broken place of each broken chain, then the problems of no chain."""
        return [c.problems[0] for c in self.chains if c.problems] + self.problems[:1]

    def to_json(self) -> dict[str, Any]:
        rate = self.entries / self.seconds if self.seconds > 0 else None
        return {
            "ok": self.ok, "entries": self.entries, "seconds": round(self.seconds, 3),
            "entries_per_second": round(rate) if rate else None,
            "chains": [c.to_json() for c in self.chains],
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class ChainState:
    chain_id: str
    head: tuple[int, str] | None
    #: the highest seq + 1 and the count of entries
    end: int
    count: int


def chain_report(audit: AuditConfig, key: str, chain: ChainState,
                 results: Sequence[RangeResult], notes: Sequence[NoteSource],
                 held: Sequence[Held]) -> ChainReport:
    """The chain's report from its scanned ranges, in order, and what is checked against
    the tree they make: the head, the checkpoints, the receipts."""
    report = ChainReport(chain.chain_id, chain.end, chain.head[0] if chain.head else None)
    tree = Tree(sorted(_sizes(notes)), [receipt.seq for receipt in held])
    problems: list[Problem] = []
    last: str | None = None
    for index, result in enumerate(results):
        report.exchanges += result.exchanges
        report.events += result.events
        report.rechecked += result.rechecked
        problems.extend(_link(chain.chain_id, result, last, index == 0))
        problems.extend(result.problems)
        tree.extend(result.hashes)
        last = result.last_hash if result.last_hash is not None else last
    _resolve_misplaced(problems, [m for r in results for m in r.misplaced])
    problems.extend(_head(chain, last))
    report.checkpoints = len(notes)
    problems.extend(check_notes(audit, key, chain.chain_id, tree, notes))
    problems.extend(check_held(chain.chain_id, tree, held))
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    report.problems = problems[:KEEP]
    return report


def _sizes(notes: Sequence[NoteSource]) -> set[int]:
    sizes = set()
    for note in notes:
        size = note.size()
        if size is not None:
            sizes.add(size)
    return sizes


def _link(chain: str, result: RangeResult, last: str | None, first: bool) -> list[Problem]:
    """The range's first entry names the hash of the entry before it (zeros for entry 0)."""
    if result.first_prev is None:
        return []
    expected = ZERO_HASH if first else last
    if expected is None or result.first_prev == expected:
        return []
    return [Problem("edited", chain, result.start, None,
                    "its prev is not the previous entry's hash (an entry before it was "
                    "rewritten, removed or put in)")]


def _resolve_misplaced(problems: list[Problem], misplaced: list[tuple[int, int]]) -> None:
    """A leaf naming another position is reordered when the entries out of place form a
    cycle through it (each at the place another names); else entries before it were removed
    (it names a later seq) or put in (an earlier one), and the rest renumbered."""
    names = dict(misplaced)
    for index, problem in enumerate(problems):
        if problem.kind != "reordered" or problem.seq is None:
            continue
        if _in_cycle(problem.seq, names):
            continue
        named = names.get(problem.seq)
        kind = "deleted" if named is not None and named > problem.seq else "inserted"
        why = ("entries before it were removed and the rest renumbered" if kind == "deleted"
               else "an entry was put in before it")
        problems[index] = Problem(kind, problem.chain, problem.seq, problem.exchange,
                                  f"{problem.detail}: {why}")


def _in_cycle(start: int, names: dict[int, int]) -> bool:
    place = names.get(start)
    for _ in range(len(names)):
        if place is None:
            return False
        if place == start:
            return True
        place = names.get(place)
    return False


def _head(chain: ChainState, last: str | None) -> list[Problem]:
    """The head row against the log: its size and its hash."""
    name = chain.chain_id
    if chain.head is None:
        return [Problem("head", name, None, None, "the chain has entries but no head row")]
    size, head = chain.head
    if size < chain.end:
        return [Problem("inserted", name, size, None,
                        f"{chain.end - size} entries beyond the head (it says {size})")]
    if size > chain.end:
        return [Problem("truncated", name, chain.end, None,
                        f"the head says {size} entries; the log has {chain.end}")]
    if head != (last or ZERO_HASH):
        return [Problem("head", name, max(size - 1, 0), None,
                        "the head row's hash is not the last entry's")]
    return []

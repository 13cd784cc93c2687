"""Reading judgments back: what leads must adjudicate, agreement, candidate tests, exports."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select

from gateway.db.models import Exchange, Judgment, Reviewer, ReviewItem
from gateway.db.session import Sessions
from gateway.errors import NotFound
from gateway.export.messages import tool_calls
from gateway.export.rows import ExportFilter, Omitted, PreferenceRow, ReviewerProfile
from gateway.policy.store import PolicyStore
from gateway.policy.tools import CALLED, DECLARED
from gateway.review.agreement import Rating, rule_alphas, verdict_alpha
from gateway.review.candidates import Candidates, candidates
from gateway.review.reviewers import ReviewerIdentity
from gateway.review.states import WITH_A_LEAD, ItemState, Preferred, Purpose, Verdict
from gateway.review.views import EMBEDDINGS, chat_bodies, recorded_content

Group = list[tuple[Judgment, ReviewItem, Exchange]]
#: a verdict as the exports' ``acceptable``: unsure is neither
_ACCEPTABLE: dict[str, bool] = {Verdict.ACCEPTABLE: True, Verdict.VIOLATION: False}


def _latest(judgments: list[Judgment]) -> list[Judgment]:
    """Each reviewer's standing review judgments: superseded ones drop out."""
    replaced = {j.supersedes for j in judgments if j.supersedes}
    return [j for j in judgments if j.id not in replaced and j.purpose == Purpose.REVIEW]


def answer_text(response: Any) -> str | None:
    """The first choice's text: the 'original' answer."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else None


def answer_calls(response: Any, decision: Any = None) -> list[dict[str, Any]]:
    """The tool calls of the first choice (the original answer's), as recorded, less those a
    ``tools.call`` outcome blocked (the client never got them): by the call's position where
    the evidence says it (``part``), else every call of the tool it names."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return []
    calls = tool_calls(choices[0].get("message"))
    blocked = _blocked_calls(decision)
    return [
        call
        for position, call in enumerate(calls)
        if position not in blocked and _call_name(call) not in blocked
    ]


def _blocked_calls(decision: Any) -> set[int | str]:
    """The first choice's calls a ``tools.call`` block took out: positions, or names."""
    outcomes = decision.get("outcomes") if isinstance(decision, dict) else None
    found: set[int | str] = set()
    for o in outcomes or []:
        if not isinstance(o, dict) or o.get("rule") != CALLED or o.get("enforced") != "block":
            continue
        for ev in o.get("evidence") or []:
            if isinstance(ev, dict) and ev.get("message") == 0:
                part = ev.get("part")
                name = str(ev.get("label", "")).partition(":")[2]
                found.add(part if isinstance(part, int) and part >= 0 else name)
    return found


def _call_name(call: dict[str, Any]) -> str:
    function = call.get("function")
    return str(function.get("name")) if isinstance(function, dict) else ""


def offered_tools(request: dict[str, Any], decision: Any) -> list[dict[str, Any]]:
    """The tools the model was offered: the request's (legacy ``functions`` as function
    tools), less those the tool scope removed before the model saw them (``tools.declared``
    evidence, at the tool's index in its list)."""
    outcomes = decision.get("outcomes") if isinstance(decision, dict) else None
    removed = {
        (ev.get("message"), str(ev.get("label", "")).partition(":")[2])
        for o in outcomes or []
        if isinstance(o, dict) and o.get("rule") == DECLARED and o.get("enforced") == "redact"
        for ev in o.get("evidence") or []
        if isinstance(ev, dict)
    }
    tools = request.get("tools")
    functions = request.get("functions")
    listed = list(enumerate(tools)) if isinstance(tools, list) else []
    if isinstance(functions, list):  # each list indexed on its own
        listed += [(i, {"type": "function", "function": f}) for i, f in enumerate(functions)]
    return [
        t for i, t in listed if isinstance(t, dict) and (i, _tool_name(t)) not in removed
    ]


def _tool_name(tool: dict[str, Any]) -> str:
    function = tool.get("function")
    return str(function.get("name")) if isinstance(function, dict) else ""


class RecordedContent:
    """``record.content`` of the policy revision that recorded each item's exchange, looked up
    once per (context, revision): an export reads it for every item, the revisions are few."""

    def __init__(self, sessions: Sessions, policies: PolicyStore) -> None:
        self._sessions = sessions
        self._policies = policies
        self._found: dict[tuple[str, str | None], str] = {}

    async def of(self, item: ReviewItem) -> str:
        key = (item.context, item.policy_revision)
        if key not in self._found:
            async with self._sessions() as session:  # not the session streaming the rows
                policy = self._policies.get(item.context)
                self._found[key] = await recorded_content(session, policy, item.policy_revision)
        return self._found[key]


class ReviewData:
    def __init__(self, sessions: Sessions, policies: PolicyStore) -> None:
        self._sessions = sessions
        self._policies = policies

    async def needing_lead(self, who: ReviewerIdentity) -> list[ReviewItem]:
        query = select(ReviewItem).where(ReviewItem.state.in_(WITH_A_LEAD))
        async with self._sessions() as session:
            items = list(await session.scalars(query.order_by(ReviewItem.created_at).limit(500)))
        return [i for i in items if who.may_see(i.context, i.queue)]

    async def ratings(self, context: str, queue: str | None = None) -> list[Rating]:
        query = (
            select(Judgment)
            .join(ReviewItem, ReviewItem.id == Judgment.item_id)
            .where(ReviewItem.context == context)
        )
        if queue is not None:
            query = query.where(ReviewItem.queue == queue)
        async with self._sessions() as session:
            judgments = list(await session.scalars(query.order_by(Judgment.created_at)))
        return [
            Rating(j.item_id, j.reviewer_id, j.verdict, dict(j.rule_verdicts or {}))
            for j in _latest(judgments)
        ]

    async def agreement(self, who: ReviewerIdentity, context: str, queue: str) -> dict[str, Any]:
        if not who.may_see(context, queue):
            raise NotFound(f"No queue '{context}/{queue}' for you.", code="queue_not_found")
        ratings = await self.ratings(context, queue)
        per_item = Counter(r.item_id for r in ratings)
        items, multiple = set(per_item), sum(1 for n in per_item.values() if n > 1)
        return {
            "context": context,
            "queue": queue,
            "judgments": len(ratings),
            "items": len(items),
            "items_with_several_reviewers": multiple,
            "verdict_alpha": verdict_alpha(ratings),
            "rule_alpha": rule_alphas(ratings),
        }

    async def candidate_cases(self, who: ReviewerIdentity, context: str) -> Candidates:
        """Reviewers' verdicts as test cases that fail on the current policy
        (``gateway/review/candidates.py``); a lead sees only their own queues' content."""
        query = (
            select(Judgment, ReviewItem, Exchange)
            .join(ReviewItem, ReviewItem.id == Judgment.item_id)
            .join(Exchange, Exchange.id == ReviewItem.exchange_id)
            .where(ReviewItem.context == context)
            .order_by(Judgment.created_at)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        mine = [(j, i, e) for j, i, e in rows if who.may_see(i.context, i.queue)]
        return candidates(mine, self._policies.get(context))

    async def reviewers(self) -> dict[str, ReviewerProfile]:
        async with self._sessions() as session:
            rows = await session.scalars(select(Reviewer))
            return {
                r.id: ReviewerProfile(
                    r.pseudonym, r.role, r.organisation, r.locale, list(r.languages or [])
                )
                for r in rows
            }

    def _judgments(self, flt: ExportFilter) -> Select[Judgment, ReviewItem, Exchange]:
        query = (
            select(Judgment, ReviewItem, Exchange)
            .join(ReviewItem, ReviewItem.id == Judgment.item_id)
            .join(Exchange, Exchange.id == ReviewItem.exchange_id)
        )
        if flt.context is not None:
            query = query.where(ReviewItem.context == flt.context)
        if flt.queue is not None:
            query = query.where(ReviewItem.queue == flt.queue)
        if flt.since is not None:
            query = query.where(Judgment.created_at >= flt.since)
        if flt.until is not None:
            query = query.where(Judgment.created_at < flt.until)
        if not flt.include_partial:  # what is left out is counted in review/exporting.py
            query = query.where(
                or_(ReviewItem.state == ItemState.DONE, Judgment.purpose == Purpose.ADJUDICATION)
            )
        return query.order_by(ReviewItem.id, Judgment.created_at)

    async def preference_rows(
        self,
        flt: ExportFilter,
        alphas: dict[tuple[str, str], float | None],
        pseudonyms: dict[str, str],
    ) -> AsyncIterator[PreferenceRow | Omitted]:
        """Streams rows item by item; an adjudication, where there is one, speaks for the item.
        A judgment no format can carry comes as ``Omitted``, with why, for the card to count."""
        group: Group = []
        kept = RecordedContent(self._sessions, self._policies)
        async with self._sessions() as session:
            result = await session.stream(self._judgments(flt).execution_options(yield_per=500))
            async for judgment, item, exchange in result:
                if group and group[0][1].id != item.id:
                    content = await kept.of(group[0][1])
                    for row in _rows(group, alphas, pseudonyms, content):
                        yield row
                    group = []
                group.append((judgment, item, exchange))
        if group:
            content = await kept.of(group[0][1])
            for row in _rows(group, alphas, pseudonyms, content):
                yield row


def _rows(
    group: Group,
    alphas: dict[tuple[str, str], float | None],
    pseudonyms: dict[str, str],
    content: str,
) -> list[PreferenceRow | Omitted]:
    """The judgments that speak for one item, as rows; ``content`` is how the revision that
    recorded its exchange kept content (full, redacted or none)."""
    judgments = [j for j, _, _ in group]
    replaced = {j.supersedes for j in judgments if j.supersedes}
    adjudicated = [
        j for j in judgments if j.purpose == Purpose.ADJUDICATION and j.id not in replaced
    ]
    chosen = adjudicated[-1:] or _latest(judgments)
    _, item, exchange = group[0]
    omitted = _omission(exchange)
    if omitted is not None:
        return [Omitted(omitted, item.id) for _ in chosen]
    agreement = alphas.get((item.context, item.queue))
    return [
        _row(j, item, exchange, agreement, pseudonyms.get(j.reviewer_id, "unknown"), content)
        for j in chosen
    ]


def _omission(exchange: Exchange) -> str | None:
    """Why no format can carry a judgment of this exchange (``OMISSIONS``), or None."""
    if exchange.endpoint == EMBEDDINGS:
        return "embeddings"  # vectors, not an answer: nothing to prefer, whatever was kept
    if exchange.erased_at is not None:
        return "erased"  # retention or a person's request: never an empty prompt or answer
    request, response = chat_bodies(exchange)
    if not isinstance(request, dict):
        return "no_content"
    answered = answer_text(response) is not None or answer_calls(response)
    return None if answered else "no_answer"


def _row(
    j: Judgment,
    item: ReviewItem,
    exchange: Exchange,
    agreement: float | None,
    pseudonym: str,
    content: str,
) -> PreferenceRow:
    # _omission has made sure there are both (an Omitted stands for the judgment otherwise)
    request, response = chat_bodies(exchange)  # every endpoint read as chat
    request = request if isinstance(request, dict) else {}
    original = answer_text(response) or ""
    preferred = original if j.preferred_source == Preferred.ORIGINAL else j.preferred_text
    return PreferenceRow(
        row_id=j.id,
        exchange_id=exchange.id,
        context=item.context,
        queue=item.queue,
        prompt=list(request.get("messages") or []),
        original=original,
        preferred=preferred,
        preferred_source=j.preferred_source,
        acceptable=_ACCEPTABLE.get(j.verdict),
        severity=j.severity,
        policy_revision=item.policy_revision,
        rule_ids=list(item.rule_ids or []),
        reason=item.reason,
        guideline_revision=j.guideline_revision,
        guideline_path=item.guideline_path,
        reviewer_pseudonym=pseudonym,
        judged_by=j.kind,
        agreement=agreement,
        judged_at=j.created_at
        if isinstance(j.created_at, datetime)
        else datetime.fromisoformat(str(j.created_at)),
        redacted=content == "redacted",
        tools=offered_tools(request, exchange.decision),
        original_calls=answer_calls(response, exchange.decision),
        item_state=item.state,
        item_judgments=item.judgments_done,
        reviewers_per_item=item.reviewers_needed,
    )

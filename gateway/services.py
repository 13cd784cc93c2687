"""Everything a request needs, built once in the lifespan and closed there.

It sits below the HTTP surfaces: the web page's own state (its sign-in sessions) is the web
layer's, carried beside this in the lifespan state (``gateway.web.deps.WebState``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import AuditChain
from gateway.audit.checkpoints import Checkpointer
from gateway.auth.authenticator import Authenticator
from gateway.auth.keys import KeyService
from gateway.config import GatewayConfig
from gateway.db.session import InSession, Sessions
from gateway.detectors.pool import DetectorPool
from gateway.pipeline.alternatives import ask_alternative
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.revisions import RevisionRepository
from gateway.policy.store import PolicyStore
from gateway.quota.limiter import Limiter
from gateway.records.recorder import ExchangeRecorder
from gateway.records.repository import ExchangeRepository
from gateway.records.responses import RecentResponses
from gateway.review.data import ReviewData
from gateway.review.judging import JudgingService
from gateway.review.queue import QueueService
from gateway.review.reviewers import ReviewerService
from gateway.supervise import Shutdown, Supervisor
from gateway.telemetry.metrics import Metrics
from gateway.upstream.client import UpstreamClient
from gateway.upstream.router import ModelRouter


@dataclass(frozen=True, slots=True)
class Services:
    config: GatewayConfig
    sessions: Sessions
    keys: KeyService
    authenticator: Authenticator
    router: ModelRouter
    upstream: UpstreamClient
    recorder: ExchangeRecorder
    exchanges: ExchangeRepository
    admin_token: SecretStr | None
    started_at: int
    policies: PolicyStore
    revisions: RevisionRepository
    reviewers: ReviewerService
    queues: QueueService
    judging: JudgingService
    review_data: ReviewData
    #: the worker pool heavy policies are evaluated in and their models run in
    detectors: DetectorPool
    #: the background tasks (recorder, policy watcher) and how they fare, for /readyz
    supervisor: Supervisor
    #: rate limits and budgets: the counters (in process or in Redis) and the price table
    quota: Limiter
    #: the audit chain this replica appends its records and events to (``gateway.audit``)
    audit: AuditChain
    #: the server's shutdown: when a stream still running must be cut short
    shutdown: Shutdown = field(default_factory=Shutdown)
    #: the Responses API's recent answers, read before their records are written (issue 13, C)
    recent_responses: RecentResponses = field(default_factory=RecentResponses)
    #: the app's metrics (``GET /metrics``, OTLP); None only where no app built them
    metrics: Metrics | None = None
    #: signs the audit chain's checkpoints, and one now for a receipt; None: audit disabled
    checkpoints: Checkpointer | None = None

    async def ask_alternative(
        self, policy: CompiledPolicy, alias: str, request: dict[str, Any], item_id: str
    ) -> str | None:
        """A review item's alternative answer, asked through the request path and recorded."""
        return await ask_alternative(self, policy, alias, request, item_id)

    def in_unit(self, session: AsyncSession) -> Services:
        """These services with their stored side doing its work in ``session``: one unit of
        work, which its owner commits once or rolls back whole (a request's, see
        ``gateway.deps.UnitDep``). The rest (router, recorder, policies, caches) is shared."""
        sessions = InSession(session)
        queues = QueueService(sessions, timedelta(minutes=self.config.review.claim_lease_minutes))
        return replace(
            self,
            sessions=sessions,
            keys=KeyService(sessions, self.audit),
            exchanges=ExchangeRepository(sessions),
            revisions=RevisionRepository(sessions, self.audit),
            reviewers=ReviewerService(sessions, self.audit),
            queues=queues,
            judging=JudgingService(sessions, queues),
            review_data=ReviewData(sessions, self.policies),
        )

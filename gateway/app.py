"""The app factory. The lifespan is the only place resources are built and closed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import TypedDict

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import admin, health, metrics, openai, receipts, responses, review
from gateway.api import docs as api_docs
from gateway.audit.chain import AuditChain
from gateway.audit.checkpoints import Checkpointer
from gateway.auth.authenticator import Authenticator
from gateway.auth.keys import KeyService
from gateway.checks.classifier import DetectorRuntime
from gateway.config import GatewayConfig
from gateway.db.session import Sessions, create_engine, create_sessions
from gateway.deps import AppState
from gateway.detectors.catalog import load_model
from gateway.detectors.pool import DetectorPool, PoolSettings
from gateway.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from gateway.middleware import (
    BodySizeLimitMiddleware,
    BodyTimeoutMiddleware,
    RequestIdMiddleware,
)
from gateway.pipeline.request import param_path
from gateway.pipeline.run import Pipeline
from gateway.policy.revisions import RevisionRepository
from gateway.policy.store import PolicyStore, policy_store
from gateway.quota.limiter import Limiter
from gateway.records.recorder import Entry, ExchangeRecorder, Observer
from gateway.records.repository import ExchangeRepository
from gateway.records.retention import Retention
from gateway.review.data import ReviewData
from gateway.review.judging import JudgingService
from gateway.review.queue import QueueService
from gateway.review.reviewers import ReviewerService
from gateway.services import Services
from gateway.supervise import Shutdown, Supervisor
from gateway.telemetry.access import AccessLogMiddleware
from gateway.telemetry.asgi import TracingMiddleware
from gateway.telemetry.gauges import gauge_refresher
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.spans import ExchangeSpans
from gateway.telemetry.tracing import Tracing, tracing_for
from gateway.upstream.client import UpstreamClient, create_http_client
from gateway.upstream.router import ModelRouter
from gateway.version import __version__
from gateway.web.deps import WebState
from gateway.web.render import error_page, is_page
from gateway.web.sessions import WebSessions
from gateway.web.site import install as install_web

log = logging.getLogger("gateway")

DEMO_PREFIX = "/_demo"


class LifespanState(TypedDict):
    """What the lifespan yields: Starlette hands each request a copy, as its ``state``.
    The keys are ``gateway.deps.APP_STATE`` and ``gateway.web.deps.WEB_STATE``."""

    gateway: AppState
    web: WebState
    tracing: Tracing | None  # the key is gateway.telemetry.asgi.TRACING_STATE


def create_app(
    config: GatewayConfig,
    *,
    demo_base_url: str | None = None,
    shutdown: Shutdown | None = None,
    metric_readers: Sequence[MetricReader] = (),
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """Build the gateway. ``demo_base_url`` is where this server's own demo backend answers;
    ``shutdown`` is how the server tells the app its grace is ending (``gateway serve``);
    ``metric_readers``: more readers of its metrics (the tests' in-memory one);
    ``span_exporter``: where its spans go, whatever the config says (the tests' in-memory one)."""
    base_urls = _base_urls(config, demo_base_url)
    stopping = shutdown or Shutdown()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
        # The tracing outlives the services: the recorder's last writes still make spans.
        async with (
            tracing_for(config.telemetry, span_exporter) as tracing,
            _services(config, base_urls, stopping, metric_readers, tracing=tracing) as services,
        ):
            sign_ins = WebSessions(
                services.sessions,
                services.reviewers,
                timedelta(hours=config.review_page.session_hours),
            )
            yield LifespanState(
                gateway=AppState(services, Pipeline(services)),
                web=WebState(sign_ins),
                tracing=tracing,
            )

    app = FastAPI(
        title="Situate gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by api/docs.py from local assets instead of a CDN
        redoc_url=None,
        # The gateway's own telemetry (gateway/telemetry.py) says what happened to each
        # exchange; FastAPI's would look up the global providers on every request for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    api_docs.install(app)
    for module in (openai, responses, receipts, admin, health, metrics, review):
        app.include_router(module.router)
    install_web(app)
    _add_error_handlers(app)
    if any(b.kind == "demo" for b in config.backends.values()):
        from gateway.mock import MockUpstream
        from gateway.mock.demo import demo_script

        app.mount(DEMO_PREFIX, StripPrefix(MockUpstream(demo_script()), DEMO_PREFIX))
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(BodyTimeoutMiddleware, seconds=config.server.body_timeout)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(TracingMiddleware)  # outermost: the server span covers everything
    return app


@asynccontextmanager
async def _services(
    config: GatewayConfig,
    base_urls: dict[str, str],
    shutdown: Shutdown,
    metric_readers: Sequence[MetricReader] = (),
    tracing: Tracing | None = None,
) -> AsyncIterator[Services]:
    """Every resource a request needs, built here and closed here, in reverse order."""
    audit = AuditChain.from_config(config.audit)  # its keys made on the first start
    engine = _engine(config)
    sessions = create_sessions(engine)
    http = create_http_client(config.upstream)
    router = ModelRouter(config, base_urls)
    spans = ExchangeSpans(tracing, base_urls, _kinds(config)) if tracing is not None else None
    measured = Metrics(config.telemetry, metric_readers, aliases=router.aliases)
    recorder = ExchangeRecorder(
        sessions,
        config.recording,
        [*([_observer(spans)] if spans is not None else []), _measure(measured)],
        chain=audit,
    )
    detectors = DetectorPool(PoolSettings.of(config.detectors, warm=True))
    policies = policy_store(config, DetectorRuntime(detectors, load_model))
    revisions = RevisionRepository(sessions, audit)
    for compiled in policies.refresh():
        await revisions.save(compiled)
    # a context whose file is broken: its last good revision (an event on the chain too)
    for compiled in await policies.restore(revisions):
        await revisions.save(compiled, refused=policies.file_error(compiled.context))
    services = _assemble(
        config,
        sessions,
        router,
        UpstreamClient(http, router.secrets()),
        recorder,
        policies,
        revisions,
        detectors,
        Supervisor(),
        Limiter(config.limits, config.pricing),
        shutdown,
        audit,
    )
    checkpoints = Checkpointer(audit, sessions, config.audit) if audit.enabled else None
    services = replace(services, metrics=measured, checkpoints=checkpoints)
    _start_background(config, services)
    try:
        yield services
    finally:
        # The watcher, then the recorder: it waits (bounded) for the exchanges still open,
        # whose hooks settle their limits as they end, and writes its queue. Only then the
        # limiter closes (and finishes the settlements those hooks began).
        await services.supervisor.stop()
        if checkpoints is not None:  # after the recorder's last writes: all of them signed
            await checkpoints.close()
        await services.quota.close()
        detectors.close()
        await asyncio.to_thread(measured.shutdown)  # a last OTLP export: not on the loop
        await http.aclose()
        await engine.dispose()


def _engine(config: GatewayConfig) -> AsyncEngine:
    pool = config.database  # the pool's sizes apply to PostgreSQL; SQLite has none
    return create_engine(
        config.database_url,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        connect_timeout=pool.connect_timeout,
        statement_timeout=pool.statement_timeout,
    )


def _start_background(config: GatewayConfig, services: Services) -> None:
    """The recorder's writer (fatal when it fails: records spill by the recorder's own logic),
    the policy watcher and the retention pass (restarted with backoff), under the supervisor."""
    recorder, policies, revisions = services.recorder, services.policies, services.revisions
    recorder.start()
    assert recorder.task is not None  # start() made it
    services.supervisor.fatal(
        recorder.task.get_name(), recorder.task, stop=partial(_stop_recorder, recorder)
    )
    services.supervisor.restarting(
        "policy-watch",
        lambda: policies.watch(config.policy_reload_seconds, revisions.save, revisions.refused),
    )
    retention = Retention.by_gateway(services.sessions, services.audit)
    services.supervisor.restarting(
        "retention", lambda: retention.run(config.audit.purge_seconds, policies)
    )
    if services.checkpoints is not None:
        services.supervisor.restarting("audit-checkpoints", services.checkpoints.run)
    if services.metrics is not None and services.metrics.active:
        refresher = gauge_refresher(
            services.metrics, services.sessions, recorder, services.router.health
        )
        every = config.telemetry.gauges_seconds
        services.supervisor.restarting("metrics-gauges", lambda: refresher.run(every))


async def _stop_recorder(recorder: ExchangeRecorder) -> None:
    """Write what is queued, then stop; when the writer had failed, a fresh one writes (or
    spills, by the recorder's own logic) what it left queued, so the shutdown drops nothing."""
    if recorder.task is not None and recorder.task.done():
        recorder.start()
    await recorder.stop()


def _assemble(
    config: GatewayConfig,
    sessions: Sessions,
    router: ModelRouter,
    upstream: UpstreamClient,
    recorder: ExchangeRecorder,
    policies: PolicyStore,
    revisions: RevisionRepository,
    detectors: DetectorPool,
    supervisor: Supervisor,
    quota: Limiter,
    shutdown: Shutdown,
    audit: AuditChain,
) -> Services:
    keys = KeyService(sessions, audit)
    queues = QueueService(sessions, timedelta(minutes=config.review.claim_lease_minutes))
    reviewers = ReviewerService(sessions, audit)
    return Services(
        config=config,
        sessions=sessions,
        keys=keys,
        authenticator=Authenticator(keys, config.auth.cache_seconds, config.auth.stale_seconds),
        router=router,
        upstream=upstream,
        recorder=recorder,
        exchanges=ExchangeRepository(sessions),
        admin_token=config.admin_token(),
        started_at=int(time.time()),
        policies=policies,
        revisions=revisions,
        reviewers=reviewers,
        queues=queues,
        judging=JudgingService(sessions, queues),
        review_data=ReviewData(sessions, policies),
        detectors=detectors,
        supervisor=supervisor,
        quota=quota,
        audit=audit,
        shutdown=shutdown,
    )


def _observer(spans: ExchangeSpans) -> Observer:
    """The recorder hands each entry to the tracer (its policy and attempt spans, off the
    request path)."""

    def observe(entry: Entry) -> None:
        spans.observe(entry.row, entry.decision, entry.span)

    return observe


def _kinds(config: GatewayConfig) -> dict[str, str]:
    return {name: backend.kind for name, backend in config.backends.items()}


def _measure(counted: Metrics) -> Observer:
    """The recorder hands each entry to the metrics too (counters and histograms)."""

    def observe(entry: Entry) -> None:
        counted.exchange(entry.row, entry.decision)

    return observe


def _base_urls(config: GatewayConfig, demo_base_url: str | None) -> dict[str, str]:
    urls = {}
    for name, backend in config.backends.items():
        if backend.kind == "demo":
            if demo_base_url is None:
                raise ValueError(f"backend {name!r} is the built-in demo: a demo URL is needed")
            urls[name] = demo_base_url
        else:
            assert backend.base_url is not None
            urls[name] = backend.base_url
    return urls


class StripPrefix:
    """Serve a mounted ASGI app as if it were at the root."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if path.startswith(self.prefix):
            scope = {**scope, "path": path[len(self.prefix) :] or "/", "root_path": ""}
        await self.app(scope, receive, send)


def _render(exc: GatewayError) -> Response:
    return Response(
        exc.body_bytes(),
        status_code=exc.status,
        headers=exc.headers(),
        media_type="application/json",
    )


def _add_error_handlers(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        if is_page(request):
            return await error_page(request, exc)
        return _render(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            error: GatewayError = NotFound(f"Unknown request URL: {where}.", code="unknown_url")
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"Method not allowed: {where}.")
        else:
            error = GatewayError(str(exc.detail), code=f"http_{exc.status_code}")
            error.status = exc.status_code
        return await error_page(request, error) if is_page(request) else _render(error)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first: Mapping[str, object] = exc.errors()[0]
        loc = tuple(p for p in first.get("loc", ()) if p not in ("body", "query", "path"))  # type: ignore[attr-defined]
        param = param_path(loc) or None
        error = InvalidRequest(f"Invalid value for '{param}': {first.get('msg')}.", param=param)
        return await error_page(request, error) if is_page(request) else _render(error)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)

"""The typed lifespan state and the dependencies that read it: every dependency and route on
the request path is ``async def`` (a plain ``def`` hops to the thread pool on every request),
each request sees the lifespan's state with its types checked, and nothing reads ``app.state``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request

from gateway.app import LifespanState, create_app
from gateway.config import default_config
from gateway.deps import APP_STATE, AppState, app_state
from gateway.pipeline.run import Pipeline
from gateway.services import Services
from gateway.telemetry.asgi import TRACING_STATE
from gateway.telemetry.tracing import Tracing
from gateway.web.deps import WEB_STATE, WebState, web_state
from gateway.web.sessions import WebSessions
from tests.inprocess import config_for, running, write_policy

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _routes() -> list[APIRoute]:
    app = create_app(default_config(), demo_base_url="http://127.0.0.1:9/_demo")
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            pending.extend(included.routes)
    return found


def test_every_route_and_dependency_is_async() -> None:
    routes = _routes()
    assert len(routes) > 40  # the API and the pages, not a router missed
    sync = [
        f"{route.path}: {call.__qualname__}"
        for route in routes
        for call in [route.endpoint, *_calls(route.dependant)]
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    ]
    assert sync == []


def test_the_lifespan_state_is_typed_and_its_keys_are_the_deps() -> None:
    hints = get_type_hints(LifespanState)
    assert hints == {APP_STATE: AppState, WEB_STATE: WebState, TRACING_STATE: Tracing | None}
    assert get_type_hints(AppState) == {"services": Services, "pipeline": Pipeline}
    assert get_type_hints(WebState) == {"sign_ins": WebSessions}


def test_a_request_sees_the_lifespans_state(tmp_path: Path) -> None:
    write_policy(tmp_path / "policies", "deps-context")
    with running(config_for(tmp_path)) as (client, state):
        assert state.pipeline is not None and state.services.policies.contexts == ["deps-context"]
        web = client.app_state[WEB_STATE]
        assert isinstance(web, WebState)
        assert web.sign_ins.lifetime.total_seconds() == 12 * 3600
        assert client.get("/readyz").status_code == 200


def _request(state: dict[str, Any]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "state": state})


def test_without_the_lifespan_the_error_says_so() -> None:
    with pytest.raises(RuntimeError, match="lifespan has not run"):
        app_state(_request({}))
    with pytest.raises(RuntimeError, match="lifespan has not run"):
        app_state(_request({APP_STATE: "not the state"}))  # the type is checked
    assert web_state(_request({})) is None


def test_nothing_reads_an_untyped_app_state() -> None:
    readers = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "app.state.services" in line or "app.state.pipeline" in line
    ]
    assert readers == []
    imports = [
        line
        for line in (PACKAGE / "services.py").read_text().splitlines()
        if line.startswith(("from gateway.web", "import gateway.web"))
    ]
    assert imports == []  # services sits below the web layer

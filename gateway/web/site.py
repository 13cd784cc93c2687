"""Installing the reviewers' web page on the app: its routers, static files and templates."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from gateway.web import admin_reviewers, items, lead, pages
from gateway.web.render import HERE, PREFIX, templates


def install(app: FastAPI) -> None:
    app.state.templates = templates()
    for module in (pages, items, lead, admin_reviewers):
        app.include_router(module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")

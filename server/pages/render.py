"""Rendering jinja2 templates with autoescaping; one environment per application."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web


def _web_dir() -> Path:
    # A checkout has web/ beside server/; an installed wheel carries it as server.web.
    checkout = Path(__file__).resolve().parent.parent.parent / "web"
    if (checkout / "templates").is_dir():
        return checkout
    import server.web

    return Path(server.web.__file__).resolve().parent


WEB_DIR = _web_dir()
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        enable_async=False,
    )


def render(request: web.Request, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
    html = request.app[TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)

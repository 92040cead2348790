"""The playground: one static page at ``/`` (HTML, CSS and a little JavaScript shipped in the package).

The page never checks an input itself: it sends what was typed to ``POST /v1/console`` and shows the
server's ``[ERROR]`` messages (the kata's) next to their fields.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# Everything the page loads comes from this server; nothing inline but the page's own form.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def mount_page(app: FastAPI) -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers=HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

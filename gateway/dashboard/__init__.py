"""``GET /dashboard``: one self-contained page over the gateway's own JSON APIs.

Everything it needs ships in this package (HTML, CSS, its script and Chart.js), so it works
offline and behind any firewall. The page holds no data and no secret: whoever opens it signs
in with the internal token or a key, which the browser keeps for its session only and sends as
a header to the same JSON endpoints any script would call. A gateway with neither keys nor an
internal token (the embedded default) has its figures open to anyone: the page then opens
without a sign-in.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from aiohttp import web

from gateway.errors import NotFound

PAGE = "index.html"
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "chart.umd.min.js": "text/javascript",
}
# Only the page's own files run; it talks only to this origin and cannot be framed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


class Dashboard:
    """`open_to_all`: whether this gateway has neither keys nor an internal token, so its
    figures are open to anyone (auth is off); the page then needs no sign-in."""

    def __init__(self, open_to_all: Callable[[], bool] = lambda: False) -> None:
        self._files = {name: _read(name) for name in (PAGE, *ASSETS)}
        self._open_page = self._files[PAGE].replace(b"<body>", b'<body data-auth="off">', 1)
        self._open_to_all = open_to_all

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/dashboard", self.page), web.get("/dashboard/{asset}", self.asset)]

    async def page(self, _request: web.Request) -> web.Response:
        body = self._open_page if self._open_to_all() else self._files[PAGE]
        return self._response(body, "text/html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["asset"]
        if name not in ASSETS:
            raise NotFound(f"no dashboard file {name!r}")
        return self._file(name, ASSETS[name])

    def _file(self, name: str, content_type: str) -> web.Response:
        return self._response(self._files[name], content_type)

    @staticmethod
    def _response(body: bytes, content_type: str) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)

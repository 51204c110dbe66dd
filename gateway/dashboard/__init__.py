"""``GET /dashboard``: one self-contained page over the gateway's own JSON APIs.

Everything it needs ships in this package (HTML, CSS, its script and Chart.js), so it works
offline and behind any firewall. The page holds no data and no secret: whoever opens it signs
in with the internal token or a key, which the browser keeps for its session only and sends as
a header to the same JSON endpoints any script would call.
"""

from __future__ import annotations

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
    def __init__(self) -> None:
        self._files = {name: _read(name) for name in (PAGE, *ASSETS)}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/dashboard", self.page), web.get("/dashboard/{asset}", self.asset)]

    async def page(self, _request: web.Request) -> web.Response:
        return self._file(PAGE, "text/html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["asset"]
        if name not in ASSETS:
            raise NotFound(f"no dashboard file {name!r}")
        return self._file(name, ASSETS[name])

    def _file(self, name: str, content_type: str) -> web.Response:
        return web.Response(
            body=self._files[name], content_type=content_type, charset="utf-8", headers=HEADERS
        )

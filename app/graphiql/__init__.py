"""GraphiQL, served by the service itself: the page at GET /graphql (a browser's Accept header) and its
scripts and style sheets below /graphiql/, so it works on networks that cannot reach a public CDN.

React, GraphiQL and its explorer plugin are vendored from their npm releases into static/ (refreshed by
`python -m app.graphiql.vendor`; assets.json records each file's package, version, tarball, the
tarball's npm integrity hash and the file's Subresource Integrity hash; static/licenses/ holds their
licences). The page carries each file's recorded hash in an `integrity` attribute, so a file that was
changed after vendoring is refused by the browser. scimgraph-graphiql.js and .css are ours.

Every asset is addressed by a digest of its content (/graphiql/{digest}/{name}), so a browser may keep it
for a year and still never run a stale one. The page links them by relative URLs, so it also works below
a reverse proxy's path prefix. The files are read, hashed and compressed on first use, not at start-up:
a server nobody opens GraphiQL on holds none of them in memory.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path
from string import Template

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.graphiql.vendor import MANIFEST, STATIC, sri

# In the order the page loads them: React before GraphiQL, GraphiQL before its plugin and our start-up.
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "graphiql-plugin-explorer.umd.js",
    "scimgraph-graphiql.js",
)
STYLES = ("graphiql.min.css", "graphiql-plugin-explorer.css", "scimgraph-graphiql.css")
PREFIX = "graphiql"  # below the root, beside /graphql
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    integrity: str  # as vendored (assets.json) for vendored files, of the body for ours

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]

    @functools.cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, compresslevel=6, mtime=0)

    @property
    def path(self) -> str:
        return f"{PREFIX}/{self.digest}/{self.name}"


def vendored_integrity() -> dict[str, str]:
    """Each vendored file's Subresource Integrity hash, as assets.json recorded it when vendoring."""
    manifest = json.loads(MANIFEST.read_text())
    return {name: file["integrity"] for package in manifest["packages"] for name, file in package["files"].items()}


@functools.cache
def assets() -> dict[str, Asset]:
    recorded = vendored_integrity()
    loaded = {}
    for name in (*SCRIPTS, *STYLES):
        body = (STATIC / name).read_bytes()
        loaded[name] = Asset(name, body, recorded.get(name) or sri(body))
    return loaded


@functools.cache
def page() -> bytes:
    """The GraphiQL page: no inline script or style, every file from here, each with its hash."""
    loaded = assets()

    def attrs(asset: Asset) -> str:
        return f'"{html.escape(asset.path)}" integrity="{asset.integrity}"'

    styles = "\n".join(f'    <link rel="stylesheet" href={attrs(loaded[name])}>' for name in STYLES)
    scripts = "\n".join(f"    <script src={attrs(loaded[name])}></script>" for name in SCRIPTS)
    template = Template((Path(__file__).with_name("page.html")).read_text())
    return template.substitute(styles=styles, scripts=scripts).encode()


def policy() -> str:
    """The page's Content-Security-Policy: scripts and styles from this origin only, requests to it only.

    GraphiQL's editor positions its pop-ups with inline style attributes and its dialogs add a small
    <style> element, so style-src allows 'unsafe-inline' (a style cannot run code); scripts are held to
    'self'. Fonts are data: URLs inside graphiql.min.css."""
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def page_response() -> Response:
    return Response(page(), media_type="text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    """GET /graphiql/{digest}/{name}: one of the page's files, only at its current digest."""
    found = assets().get(request.path_params["name"])
    if found is None or found.digest != request.path_params["digest"]:
        return Response(b"not found\n", status_code=404, media_type="text/plain; charset=utf-8")
    headers = {"cache-control": _IMMUTABLE, "vary": "accept-encoding"}
    body = found.body
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        # Compressed once per process, off the event loop: graphiql.min.js takes a tenth of a second.
        body = await run_in_threadpool(lambda: found.gzipped)
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=_MEDIA_TYPES[Path(found.name).suffix], headers=headers)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (or any coding, `*`) with a weight above 0."""
    for part in accept_encoding.split(","):
        coding, _, parameters = part.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        name, _, weight = parameters.strip().partition("=")
        if name.strip().lower() != "q":
            return True
        try:
            return float(weight) > 0
        except ValueError:
            return False
    return False

"""Response headers every answer carries, and the Content-Security-Policy of the GraphiQL page.

Every response: `X-Content-Type-Options: nosniff` (a browser never guesses a JSON body is HTML),
`Referrer-Policy: no-referrer`, and `Cache-Control: no-store` (SCIM and GraphQL answers carry user
data and must not sit in shared or browser caches; the probes and /openapi.json lose nothing by it).

HTML is only ever the GraphiQL page (GET /graphql with a browser's Accept header). Strawberry's page
loads React, GraphiQL and its explorer plugin (scripts and style sheets) from https://unpkg.com and
boots them with one inline script. The policy allows exactly that CDN, and the inline script by its
SHA-256 hash rather than 'unsafe-inline', so an injected script would not run. Styles do allow
'unsafe-inline': the page has an inline <style> block and GraphiQL's editor sets inline styles as it
renders (a hash would disable 'unsafe-inline' and break it), and a style cannot run code. The page
talks only to its own origin (connect-src 'self'), shows its favicon from a data: URL, and may not be
framed by anyone (frame-ancestors 'none', X-Frame-Options for older browsers).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from strawberry.http.ides import get_graphql_ide_html

GRAPHIQL_CDN = "https://unpkg.com"

ALWAYS: tuple[tuple[bytes, bytes], ...] = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
NO_STORE = (b"cache-control", b"no-store")

# A <script> element without a src attribute: its text is what the browser hashes.
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions ('sha256-…') for each inline script of `html`."""
    hashes = []
    for script in _INLINE_SCRIPT.findall(html):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return hashes


@functools.cache
def graphiql_policy() -> str:
    """The Content-Security-Policy for the GraphiQL page strawberry serves, hashed from its template."""
    scripts = " ".join([GRAPHIQL_CDN, *inline_script_hashes(get_graphql_ide_html("graphiql"))])
    directives = [
        "default-src 'none'",
        f"script-src {scripts}",
        f"style-src {GRAPHIQL_CDN} 'unsafe-inline'",
        f"font-src {GRAPHIQL_CDN} data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def html_headers() -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", graphiql_policy().encode()), (b"x-frame-options", b"DENY")]

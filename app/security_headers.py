"""Response headers every answer carries, and the Content-Security-Policy of the GraphiQL page.

Every response: `X-Content-Type-Options: nosniff` (a browser never guesses a JSON body is HTML),
`Referrer-Policy: no-referrer`, and `Cache-Control: no-store` (SCIM and GraphQL answers carry user
data and must not sit in shared or browser caches; the probes and /openapi.json lose nothing by it).
GraphiQL's scripts and style sheets alone say otherwise: they are addressed by their content's digest
and may be cached for good.

HTML is only ever the GraphiQL page (GET /graphql with a browser's Accept header); it gets the
Content-Security-Policy of app/graphiql (every script and style sheet from this origin, requests to this
origin only) and may not be framed by anyone (frame-ancestors 'none', X-Frame-Options for older browsers).
"""

from __future__ import annotations

from app import graphiql

ALWAYS: tuple[tuple[bytes, bytes], ...] = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
NO_STORE = (b"cache-control", b"no-store")

_PAGE_POLICY = graphiql.policy().encode()


def html_headers() -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", _PAGE_POLICY), (b"x-frame-options", b"DENY")]

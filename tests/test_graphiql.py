"""GraphiQL's page and files as the service serves them, without a browser (tests/test_graphiql_browser.py
has one): every file from here, each with the hash recorded when it was vendored, cached for good at a
content address, and nothing of it when GRAPHQL_IDE is off."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import graphiql
from app.graphiql.vendor import MANIFEST, PACKAGES, STATIC, sri
from app.main import create_app
from app.settings import Settings

PAGE = {"Accept": "text/html"}


def _linked(page: str) -> dict[str, str]:
    """Each script and style sheet of the page: its URL and its integrity attribute."""
    pattern = r'<(?:script src|link rel="stylesheet" href)="([^"]+)" integrity="([^"]+)"'
    return dict(re.findall(pattern, page))


async def test_the_page_loads_only_files_of_this_service_each_with_its_hash(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers=PAGE)
    assert response.status_code == 200
    linked = _linked(response.text)
    assert len(linked) == len(graphiql.SCRIPTS) + len(graphiql.STYLES)
    assert "<script>" not in response.text and "<style" not in response.text and "unpkg" not in response.text
    for url, integrity in linked.items():
        # Relative, so the page also works below a reverse proxy's path prefix.
        assert url.startswith("graphiql/"), url
        asset = await client.get("/" + url)
        assert asset.status_code == 200, url
        assert sri(asset.content) == integrity, url


async def test_the_page_policy_allows_scripts_from_this_origin_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers=PAGE)
    policy = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY"
    assert "https:" not in response.headers["content-security-policy"]


async def test_files_are_cached_for_good_at_their_content_address_and_compressed(client: httpx.AsyncClient) -> None:
    page = (await client.get("/graphql", headers=PAGE)).text
    url = next(u for u in _linked(page) if u.endswith("/graphiql.min.js"))
    compressed = await client.get("/" + url, headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert compressed.headers["content-type"] == "text/javascript; charset=utf-8"
    assert int(compressed.headers["content-length"]) < len(compressed.content) / 3
    plain = await client.get("/" + url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == compressed.content == (STATIC / "graphiql.min.js").read_bytes()
    assert gzip.decompress(graphiql.assets()["graphiql.min.js"].gzipped) == plain.content


@pytest.mark.parametrize(
    ("header", "takes"),
    [("gzip", True), ("br, gzip;q=0.5", True), ("GZIP", True), ("*", True), ("gzip;q=0", False), ("identity", False), ("", False)],
)
def test_gzip_only_where_the_client_takes_it(header: str, takes: bool) -> None:
    assert graphiql.accepts_gzip(header) is takes


@pytest.mark.parametrize(
    "path",
    ["/graphiql/0000000000000000/graphiql.min.js", "/graphiql/{digest}/licenses", "/graphiql/{digest}/../assets.json", "/graphiql/x"],
)
async def test_files_are_served_only_at_their_current_address(client: httpx.AsyncClient, path: str) -> None:
    digest = graphiql.assets()["graphiql.min.js"].digest
    response = await client.get(path.format(digest=digest))
    assert response.status_code == 404


@pytest.fixture
async def ide_off(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dataclasses.replace(settings, graphql_ide=False), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as client:
        yield client


async def test_with_the_ide_off_its_files_are_not_served_either(client: httpx.AsyncClient, ide_off: httpx.AsyncClient) -> None:
    page = (await client.get("/graphql", headers=PAGE)).text
    for url in _linked(page):
        assert (await ide_off.get("/" + url)).status_code == 404


def test_vendored_files_are_as_recorded_with_their_source_and_licence() -> None:
    manifest = json.loads(MANIFEST.read_text())
    recorded = {package["name"]: package for package in manifest["packages"]}
    assert set(recorded) == {package.name for package in PACKAGES}
    for package in PACKAGES:
        entry = recorded[package.name]
        assert entry["version"] == package.version
        assert entry["tarball"].startswith(f"https://registry.npmjs.org/{package.name}/-/")
        assert entry["tarballIntegrity"].startswith("sha512-")
        assert (STATIC / entry["licenseFile"]).read_text().startswith(("MIT License", "Copyright"))
        assert set(entry["files"]) == set(package.files)
        for name, file in entry["files"].items():
            assert sri((STATIC / name).read_bytes()) == file["integrity"], f"{name} differs from what was vendored"
    # What graphiql.min.js bundles, each with a licence that allows shipping it.
    bundled = recorded["graphiql"]["bundles"]["graphiql.min.js"]
    assert "codemirror" in bundled and set(bundled.values()) <= {"MIT", "BSD-2-Clause", "0BSD", "ISC", "Apache-2.0"}


def test_every_file_the_page_needs_ships_in_the_package(repo_root: Path) -> None:
    """pyproject.toml's package-data globs (as setuptools expands them) take every file of app/graphiql
    that is not Python, so an installed service serves the same page as a checkout."""
    patterns = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["app.graphiql"]
    root = STATIC.parent
    shipped = {path for pattern in patterns for path in root.glob(pattern) if path.is_file()}
    data = {path for path in root.rglob("*") if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts}
    assert shipped == data

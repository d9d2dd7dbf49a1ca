"""Refresh GraphiQL's vendored assets from the npm registry: `python -m app.graphiql.vendor`.

Developers run this, never the service: it needs npm. For each package of `PACKAGES` it downloads the
release tarball with `npm pack` (npm checks the tarball against the registry's integrity hash), copies the
files the page loads into static/, copies the licence, and rewrites assets.json with where each file
came from: the package, its version and tarball, npm's integrity hash of the tarball, and the
Subresource Integrity hash (SHA-384) the page puts on the file. graphiql.min.js bundles other packages;
assets.json lists them with the licence each declares on the registry.

To upgrade, change a version below, run this, and run the browser test (tests/test_graphiql_browser.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MANIFEST = HERE / "assets.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: dict[str, str]  # served name -> path inside the package
    licence: str | None = "LICENSE"  # path inside the package; None: it ships none (see `licence_from`)
    licence_from: str | None = None  # the package whose licence file covers it (same repository)
    bundles: list[str] = field(default_factory=list)  # served names whose bundled packages are listed


# GraphiQL 3 is the last line with a browser (UMD) build; it runs on React 18, whose last release is 18.3.1.
PACKAGES = [
    Package("react", "18.3.1", {"react.production.min.js": "umd/react.production.min.js"}),
    Package("react-dom", "18.3.1", {"react-dom.production.min.js": "umd/react-dom.production.min.js"}),
    Package(
        "graphiql", "3.8.3", {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"}, bundles=["graphiql.min.js"]
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        {"graphiql-plugin-explorer.umd.js": "dist/index.umd.js", "graphiql-plugin-explorer.css": "dist/style.css"},
        licence=None,
        licence_from="graphiql",
    ),
]

_BUNDLED = re.compile(rb"node_modules/((?:@[\w.-]+/)?[\w.-]+)/")


def sri(body: bytes) -> str:
    """The Subresource Integrity value of `body`, as the page's integrity attributes carry it."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def _npm(*args: str, cwd: Path) -> str:
    return subprocess.run(["npm", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _licence_name(package: Package) -> str:
    return package.name.replace("@", "").replace("/", "-") + ".LICENSE.txt"


def _vendor(package: Package, work: Path) -> dict[str, object]:
    spec = f"{package.name}@{package.version}"
    packed = json.loads(_npm("pack", spec, "--json", cwd=work))[0]
    tarball = json.loads(_npm("view", spec, "dist.tarball", "--json", cwd=work))
    declared = json.loads(_npm("view", spec, "license", "--json", cwd=work))
    entry: dict[str, object] = {
        "name": package.name,
        "version": package.version,
        "license": declared,
        "tarball": tarball,
        "tarballIntegrity": packed["integrity"],
    }
    files: dict[str, dict[str, str]] = {}
    with tarfile.open(work / packed["filename"]) as archive:

        def read(path: str) -> bytes:
            member = archive.extractfile(f"package/{path}")
            assert member is not None, f"{spec} has no {path}"
            return member.read()

        for served, path in package.files.items():
            body = read(path)
            (STATIC / served).write_bytes(body)
            files[served] = {"from": path, "integrity": sri(body)}
        if package.licence:
            (STATIC / "licenses").mkdir(exist_ok=True)
            (STATIC / "licenses" / _licence_name(package)).write_bytes(read(package.licence))
            entry["licenseFile"] = f"licenses/{_licence_name(package)}"
        else:
            covering = next(p for p in PACKAGES if p.name == package.licence_from)
            entry["licenseFile"] = f"licenses/{_licence_name(covering)}"
            entry["licenseNote"] = f"ships no licence file; declared {declared} and published from the repository of {covering.name}"
    entry["files"] = files
    if package.bundles:
        entry["bundles"] = {served: _bundled((STATIC / served).read_bytes(), work) for served in package.bundles}
    return entry


def _bundled(body: bytes, work: Path) -> dict[str, str]:
    """The packages webpack bundled into `body` (named by their node_modules paths), each with its licence."""
    names = sorted({m.decode() for m in _BUNDLED.findall(body)})
    return {name: json.loads(_npm("view", name, "license", "--json", cwd=work)) for name in names}


def main() -> None:
    STATIC.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        manifest = {"packages": [_vendor(package, Path(scratch)) for package in PACKAGES]}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {MANIFEST.name} and {len([f for p in PACKAGES for f in p.files])} files", file=sys.stderr)


if __name__ == "__main__":
    main()

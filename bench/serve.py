"""Serve the benchmark's own servers (the ceiling, the reference, the trivial endpoint) with the
service's uvicorn configuration, `app.serving.build_server`: same HTTP implementation, same
keep-alive, same timeouts. The ASGI app is all that differs."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp

from app.lifecycle import Readiness
from app.serving import build_server
from app.settings import Settings


def serve(app: ASGIApp, port: int) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    build_server(app, Settings(host="127.0.0.1", port=port, shutdown_readiness_grace_seconds=0.0), Readiness()).run()

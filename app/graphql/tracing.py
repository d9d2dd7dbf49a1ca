"""Strawberry's OpenTelemetry extension, minus the operation's text: a document's literals carry
emails and names (`ssoLoginPreflight(email: "…")`), which traces must not hold. Arguments are
dropped by the schema's `arg_filter`."""

from __future__ import annotations

from collections.abc import Generator

from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.extensions.tracing.opentelemetry import LifecycleStep


class Tracing(OpenTelemetryExtension):
    def on_operation(self) -> Generator[None, None, None]:
        steps = super().on_operation()
        next(steps)  # the operation's span has started, with the document as its "query" attribute
        span = self._span_holder.get(LifecycleStep.OPERATION)
        if span is not None:
            span.set_attribute("query", "(not recorded)")
        yield
        next(steps, None)

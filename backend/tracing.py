"""OpenTelemetry tracing, switched on by the standard ``OTEL_*`` variables.

``TRACING_ENABLED`` (backend/settings.py) is true when an exporter is named
(``OTEL_TRACES_EXPORTER``, other than ``none``) or an OTLP endpoint is set, and
``OTEL_SDK_DISABLED`` is not true. Then ``configure()`` (called by backend/asgi.py
before Django loads its middleware) sets up the SDK and Django's instrumentation
(a server span per request), and the schema adds Strawberry's extension
(schema/tracing.py: operation, parsing, validation and resolver spans). Otherwise
nothing of OpenTelemetry is imported.

The SDK reads its other variables itself (``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``...).
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)

_configured = False


def _exporters() -> list:
    names = [name.strip().lower() for name in settings.OTEL_TRACES_EXPORTER.split(",") if name.strip()]
    if not names:  # an endpoint without an exporter name: OTLP, the SDK's default
        names = ["otlp"]
    exporters = []
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS...
        elif name != "none":
            logger.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored (console, otlp or none)", name)
    return exporters


def configure() -> bool:
    """Set up tracing if the environment asks for it (once); whether it is on."""
    global _configured
    if not settings.TRACING_ENABLED:
        return False
    if _configured:
        return True
    from opentelemetry import trace
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.OTEL_SERVICE_NAME}))
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    _configured = True
    logger.info("OpenTelemetry tracing on (service %s)", settings.OTEL_SERVICE_NAME)
    return True

"""Emits the gateway's traces, metrics and logs through OpenTelemetry.

Where they go is decided once, on the first request (never at import): with
APPLICATIONINSIGHTS_CONNECTION_STRING, the Azure Monitor distro; else with OTEL_EXPORTER_OTLP_ENDPOINT,
the OTLP/HTTP exporters; else nowhere, and the API's no-op implementations cost next to nothing.
The instruments below come from the API's global providers, so they bind to whichever provider is
installed (tests install in-memory ones). Nothing emitted here carries a token: principals, model
names, outcomes, error codes and request ids only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace

from .settings import Settings

log = logging.getLogger("gateway.telemetry")

_api_tracer = trace.get_tracer("gateway")
_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)


class _Tracer:
    """The API's tracer, except that while no tracer provider is installed (no exporter configured, no
    test provider) a span is the shared no-op one: the API's own no-op path costs ~13 us a span (a
    generator context manager and a context attach/detach), five or six spans a request."""

    _on = False     # a real provider, once installed, stays for the life of the process

    @classmethod
    def _off(cls) -> bool:
        # `get_tracer_provider()` looks the environment up on every call while none is installed (five
        # or six times a request): the API's own global says the same without it. Its provider from
        # the environment (OTEL_PYTHON_TRACER_PROVIDER) is not one the gateway uses.
        if cls._on:
            return False
        if getattr(trace, "_TRACER_PROVIDER", None) is None:
            return True
        cls._on = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        return not cls._on

    def start_as_current_span(self, name: str, *args: object, **kwargs: object) -> Any:
        if self._off():
            return _NO_SPAN
        return _api_tracer.start_as_current_span(name, *args, **kwargs)  # type: ignore[arg-type]

    def start_span(self, name: str, *args: object, **kwargs: object) -> trace.Span:
        if self._off():
            return trace.INVALID_SPAN
        return _api_tracer.start_span(name, *args, **kwargs)  # type: ignore[arg-type]


tracer = _Tracer()
_meter = metrics.get_meter("gateway")

REQUESTS = _meter.create_counter(
    "gateway.requests", unit="{request}",
    description="Requests by route, model, identity and HTTP status")
REFUSALS = _meter.create_counter(
    "gateway.refusals", unit="{request}", description="Refused requests by error code and reason")
UPSTREAM_DURATION = _meter.create_histogram(
    "gateway.upstream.duration", unit="s",
    description="Time until an upstream answer starts, by model, account and status")
TIME_TO_FIRST_TOKEN = _meter.create_histogram(
    "gateway.upstream.time_to_first_token", unit="s",
    description="Time until the first streamed chunk, by model and account")
TOKENS = _meter.create_counter(
    "gateway.tokens", unit="{token}", description="Prompt and completion tokens by identity and model")
KEY_REFRESHES = _meter.create_counter(
    "gateway.jwks.refreshes", unit="{refresh}",
    description="Identity-provider key refreshes by provider and outcome")
CREDENTIAL_REFRESHES = _meter.create_counter(
    "gateway.credential.refreshes", unit="{refresh}",
    description="Upstream token refreshes by account and outcome")

_configured = False
_lock = threading.Lock()


def configure(settings: Settings) -> str:
    """Install the exporters the settings ask for, once per process; says where telemetry goes."""
    global _configured
    with _lock:
        if _configured:
            return "configured"
        _configured = True
        if settings.appinsights_connection_string:
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(connection_string=settings.appinsights_connection_string,
                                    logger_name="gateway", enable_live_metrics=False)
            return "azure-monitor"
        if settings.otlp_endpoint:
            _configure_otlp(settings.otlp_endpoint.rstrip("/"))
            return "otlp"
        return "none"


def _configure_otlp(endpoint: str) -> None:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "ai-gateway"})
    traces = TracerProvider(resource=resource)
    traces.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(traces)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))]))
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
    set_logger_provider(logs)
    logging.getLogger("gateway").addHandler(LoggingHandler(logger_provider=logs))


def identity_of(identities: frozenset[str] | None) -> str:
    """One low-cardinality label for metrics: the external identities, sorted, or 'none'."""
    return ",".join(sorted(identities)) if identities else "none"


def count_tokens(usage: Mapping[str, object] | None, *, identity: str, model: str) -> None:
    if not usage:
        return
    for kind, names in (("prompt", ("prompt_tokens", "input_tokens")),
                        ("completion", ("completion_tokens", "output_tokens"))):
        for name in names:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                TOKENS.add(value, {"gateway.token.type": kind, "gateway.identity": identity,
                                   "gateway.model": model})
                break

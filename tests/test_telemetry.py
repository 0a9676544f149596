"""Traces, metrics and logs of a successful, a refused and an upstream-failed request, read from
in-memory exporters, with the gateway served by a real uvicorn in this process; no token in any of it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import uvicorn
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sandbox.azurite import Azurite, free_port, port_open
from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared import runtime
from shared.server import build_app
from tests.harness import Tables, gateway_env, sandbox_config, unique_prefix

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def gateway(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
            loop: BackgroundLoop) -> Iterator[dict[str, Any]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[METRICS]))
    tables = Tables(azurite, unique_prefix())
    tables.apply(sandbox_config(idp, emulator))
    records = Records()
    logging.getLogger("gateway").addHandler(records)
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        for name, value in gateway_env(tables).items():
            env.setenv(name, value)
        server = uvicorn.Server(uvicorn.Config(build_app(timer_interval=3600), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        serving = asyncio.run_coroutine_threadsafe(server.serve(), loop.loop)
        while not port_open(port):
            assert not serving.done(), serving.exception()
        yield {"url": f"http://127.0.0.1:{port}", "idp": idp, "emulator": emulator, "records": records}
        server.should_exit = True
        serving.result(15)
    logging.getLogger("gateway").removeHandler(records)
    assert runtime._gateway is None, "the lifespan closed the gateway"


def post(gateway: dict[str, Any], token: str, model: str = "gpt-4o", stream: bool = False) -> int:
    async def go() -> int:
        async with aiohttp.ClientSession() as session, session.post(
                gateway["url"] + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                json={"model": model, "stream": stream,
                      "messages": [{"role": "user", "content": "hello there"}]}) as r:
            await r.read()
            return r.status
    return asyncio.run(go())


def request_spans() -> list[ReadableSpan]:
    return [s for s in SPANS.get_finished_spans() if s.kind == trace.SpanKind.SERVER]


def children(root: ReadableSpan) -> set[str]:
    return {s.name for s in SPANS.get_finished_spans()
            if s.parent is not None and s.parent.span_id == root.context.span_id}


def points(name: str) -> list[tuple[dict[str, Any], Any]]:
    data = METRICS.get_metrics_data()
    found = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return found


def everything_emitted(gateway: dict[str, Any]) -> str:
    spans = [json.loads(s.to_json()) for s in SPANS.get_finished_spans()]
    data = METRICS.get_metrics_data()
    logs = [r.getMessage() + json.dumps({k: str(v) for k, v in vars(r).items()})
            for r in gateway["records"].records]
    return json.dumps(spans) + (data.to_json() if data else "") + "".join(logs)


def test_a_successful_request(gateway: dict[str, Any]) -> None:
    SPANS.clear()
    token = gateway["idp"].mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    assert post(gateway, token) == 200
    [root] = request_spans()
    attributes = dict(root.attributes or {})
    assert attributes["gateway.principal"] == "user:dev/alice"
    assert attributes["gateway.model"] == "gpt-4o" and attributes["gateway.outcome"] == "ok"
    assert attributes["http.response.status_code"] == 200 and attributes["gateway.request_id"]
    assert {"authenticate", "authorize", "credential", "upstream"} <= children(root)
    upstream = next(s for s in SPANS.get_finished_spans() if s.name == "upstream")
    assert upstream.attributes["http.response.status_code"] == 200
    requests = [a for a, _ in points("gateway.requests") if a["http.response.status_code"] == 200]
    assert {"gateway.model": "gpt-4o", "gateway.identity": "developers"}.items() <= requests[0].items()
    tokens = {a["gateway.token.type"]: p.value for a, p in points("gateway.tokens")
              if a["gateway.model"] == "gpt-4o"}
    assert tokens["prompt"] >= 2 and tokens["completion"] >= 7
    assert points("gateway.upstream.duration")
    assert any(a.get("gateway.outcome") == "ok" for a, _ in points("gateway.jwks.refreshes"))
    line = [r for r in gateway["records"].records if getattr(r, "gateway.request_id", None)
            == attributes["gateway.request_id"]]
    assert line and getattr(line[0], "gateway.outcome") == "ok"


def test_a_stream_has_its_span_and_time_to_first_token(gateway: dict[str, Any]) -> None:
    SPANS.clear()
    token = gateway["idp"].mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    assert post(gateway, token, stream=True) == 200
    [root] = request_spans()
    stream = next(s for s in SPANS.get_finished_spans() if s.name == "stream")
    assert stream.parent is not None and stream.parent.span_id == root.context.span_id
    assert stream.attributes["gateway.stream.completed"] is True
    assert [e.name for e in stream.events] == ["first chunk"]
    assert points("gateway.upstream.time_to_first_token")


def test_a_refused_request(gateway: dict[str, Any]) -> None:
    SPANS.clear()
    token = gateway["idp"].mint("mallory", audience="api://somewhere-else")
    assert post(gateway, token) == 401
    [root] = request_spans()
    assert root.attributes["gateway.outcome"] == "refused"
    assert root.attributes["error.code"] == "invalid_token"
    assert "gateway.principal" not in root.attributes
    refusals = {(a["error.code"], a["gateway.reason"]) for a, _ in points("gateway.refusals")}
    assert ("invalid_token", "audience") in refusals
    line = [r for r in gateway["records"].records if getattr(r, "error.code", None) == "invalid_token"]
    assert line and "audience" in line[-1].getMessage()


def test_an_upstream_failure(gateway: dict[str, Any]) -> None:
    SPANS.clear()
    gateway["emulator"].faults.append(Fault(status=500, deployment="gpt-4o-dep"))
    token = gateway["idp"].mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    assert post(gateway, token) == 502
    [root] = request_spans()
    assert root.attributes["gateway.outcome"] == "failed"
    assert root.attributes["error.code"] == "upstream_error"
    assert root.status.status_code == trace.StatusCode.ERROR
    upstream = next(s for s in SPANS.get_finished_spans() if s.name == "upstream")
    assert upstream.attributes["http.response.status_code"] == 500
    assert any(a["http.response.status_code"] == 502 for a, _ in points("gateway.requests"))


def test_no_token_in_any_signal(gateway: dict[str, Any]) -> None:
    token = gateway["idp"].mint("zoe", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    bad = gateway["idp"].mint("zoe", audience="api://elsewhere")
    assert post(gateway, token) == 200 and post(gateway, bad) == 401
    emitted = everything_emitted(gateway)
    for jwt in (token, bad):
        for part in jwt.split("."):
            assert part not in emitted


class Collector:
    """An OTLP/HTTP receiver on loopback: records what each signal's endpoint was sent."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = {}
        self.url = ""

    async def start(self) -> None:
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            self.received.setdefault(request.path, []).append(await request.read())
            return web.Response(status=200, content_type="application/x-protobuf", body=b"")

        app = web.Application()
        app.router.add_post("/v1/{signal}", receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self._runner.cleanup()


def test_otlp_export_from_a_gateway_process(azurite: Azurite, idp: DevIdentityProvider,
                                            emulator: AzureOpenAIEmulator, loop: BackgroundLoop,
                                            tmp_path: Any) -> None:
    import time

    from tests.harness import GatewayProcess

    collector = Collector()
    loop.run(collector.start())
    tables = Tables(azurite, unique_prefix())
    tables.apply(sandbox_config(idp, emulator))
    gw = GatewayProcess(gateway_env(tables, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
                                    OTEL_METRIC_EXPORT_INTERVAL="300", OTEL_BSP_SCHEDULE_DELAY="100",
                                    OTEL_BLRP_SCHEDULE_DELAY="100"), tmp_path / "gateway.log")
    try:
        token = idp.mint("olga", claims={"groups": ["developers"]}, audience="api://ai-gateway")
        assert post({"url": gw.url}, token) == 200
        deadline = time.monotonic() + 20
        while {"/v1/traces", "/v1/metrics", "/v1/logs"} - set(collector.received):
            assert time.monotonic() < deadline, f"only {sorted(collector.received)} arrived"
            time.sleep(0.1)
        sent = b"".join(b for bodies in collector.received.values() for b in bodies)
        assert b"user:dev/olga" in sent and b"gateway.requests" in sent
        assert not any(part.encode() in sent for part in token.split("."))
    finally:
        gw.stop()
        loop.run(collector.stop())

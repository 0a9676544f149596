"""function_app.py (Azure Functions) and `python -m shared serve` register the very same handlers."""

from __future__ import annotations

import json

from starlette.routing import Route as StarletteRoute

from shared import prewarm, routes
from shared.server import build_app
from tests.harness import ROOT


def test_functions_app_and_local_server_share_the_route_functions() -> None:
    import function_app

    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    http = {name: f for name, f in functions.items() if f.get_trigger().type == "httpTrigger"}
    assert len(http) == len(routes.ROUTES)
    served = {r.endpoint: r for r in build_app().routes if isinstance(r, StarletteRoute)}
    for route in routes.ROUTES:
        fn = http[route.handler.__name__]
        assert fn.get_user_function() is route.handler
        trigger = fn.get_trigger()
        assert trigger.route == route.route
        assert [str(getattr(m, "value", m)) for m in trigger.methods] == list(route.methods)
        assert served[route.handler].path == route.path
        assert served[route.handler].methods >= set(route.methods)

    timer = functions["prewarm_timer"].get_trigger()
    assert timer.type == "timerTrigger" and timer.schedule == prewarm.SCHEDULE == "0 */5 * * * *"
    assert functions["warm_up"].get_trigger().type == "warmupTrigger"
    assert set(functions) == {*http, "prewarm_timer", "warm_up"}


def test_host_json_has_no_route_prefix() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""


def test_catch_all_operations_translate_to_starlette_paths() -> None:
    paths = {r.route: r.path for r in routes.ROUTES}
    assert paths["openai/deployments/{model}/{*operation}"] == "/openai/deployments/{model}/{operation:path}"


def test_the_local_host_serves_the_data_plane_as_raw_asgi() -> None:
    """The proxy routes, the model lists and /health skip Starlette locally; everything else keeps it."""
    raw = {r.name for r in routes.ROUTES if r.work is not None}
    assert raw == {"chat_completions", "completions", "embeddings", "responses", "images_generations",
                   "audio_speech", "list_models", "list_models_azure", "list_models_azure_v1",
                   "azure_deployment", "azure_responses", "azure_v1", "health"}

"""The host stand-in's route templates: which function a request reaches, with which route values."""

from __future__ import annotations

import pytest

from funchost.routing import RouteTable, parse

ALL = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
TABLE = RouteTable([   # registration order is deliberately not the order of specificity
    parse("fallback", "{*path}", ALL),
    parse("deployment", "openai/deployments/{model}/{*operation}", ["POST"]),
    parse("v1_any", "openai/v1/{*operation}", ["POST"]),
    parse("v1_models", "openai/v1/models", ["GET"]),
    parse("item", "manage/models/{name}", ["GET", "PUT", "DELETE"]),
    parse("list", "manage/models", ["GET"]),
    parse("status", "manage/status", ["GET"]),
    parse("user", "users/{id}", ["GET"]),
    parse("user_opt", "users/{id}/posts/{page?}", ["GET"]),
    parse("chat", "v1/chat/completions", ["POST"]),
    parse("me", "users/me", ["GET"]),
])


@pytest.mark.parametrize(("method", "path", "function", "params"), [
    ("POST", "/v1/chat/completions", "chat", {}),
    ("POST", "/V1/Chat/Completions", "chat", {}),                 # literals ignore case
    ("GET", "/v1/chat/completions", "fallback", {"path": "v1/chat/completions"}),   # method not allowed
    ("GET", "/manage/models", "list", {}),
    ("GET", "/manage/models/gpt-4o", "item", {"name": "gpt-4o"}),
    ("GET", "/manage/status", "status", {}),
    ("GET", "/users/me", "me", {}),                               # a literal beats a parameter
    ("GET", "/users/you", "user", {"id": "you"}),
    ("GET", "/manage/models/a%20b", "item", {"name": "a b"}),     # values are decoded
    ("POST", "/openai/deployments/gpt/chat/completions", "deployment",
     {"model": "gpt", "operation": "chat/completions"}),
    ("POST", "/openai/deployments/gpt", "deployment", {"model": "gpt"}),   # a catch-all may be empty
    ("GET", "/openai/v1/models", "v1_models", {}),                # a literal beats a catch-all
    ("POST", "/openai/v1/models", "v1_any", {"operation": "models"}),
    ("GET", "/users/7/posts", "user_opt", {"id": "7"}),
    ("GET", "/users/7/posts/2", "user_opt", {"id": "7", "page": "2"}),
    ("GET", "/users/7/posts/2/3", "fallback", {"path": "users/7/posts/2/3"}),
    ("GET", "/", "fallback", {}),
    ("GET", "/anything/at/all", "fallback", {"path": "anything/at/all"}),
])
def test_the_most_specific_route_wins(method: str, path: str, function: str, params: dict[str, str]) -> None:
    match = TABLE.find(method, path)
    assert match is not None
    assert (match.route.function, match.params) == (function, params)


@pytest.mark.parametrize("path", ["/admin", "/admin/functions/x", "/ADMIN/warmup"])
def test_admin_paths_are_the_hosts_own(path: str) -> None:
    assert TABLE.find("GET", path) is None


@pytest.mark.parametrize(("prefix", "path", "found"), [
    ("api", "/api/v1/chat/completions", True),
    ("api", "/v1/chat/completions", False),
    ("", "/v1/chat/completions", True),
    ("/gw/", "/gw/v1/chat/completions", True),
])
def test_the_route_prefix(prefix: str, path: str, found: bool) -> None:
    table = RouteTable([parse("chat", "v1/chat/completions", ["POST"], prefix)])
    assert (table.find("POST", path) is not None) is found


@pytest.mark.parametrize("template", ["{*rest}/tail", "a/{opt?}/b", "a/{id:int}", "a/x{id}", "a/{}", "a//b"])
def test_templates_it_cannot_route_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="route"):
        parse("f", template, ["GET"])


def test_a_required_parameter_needs_a_value() -> None:
    table = RouteTable([parse("item", "items/{name}", ["GET"])])
    assert table.find("GET", "/items") is None
    assert table.find("GET", "/items/") is None

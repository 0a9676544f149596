"""Settings are read in one place, and every one is documented where users look."""

from __future__ import annotations

import json

import pytest

from shared.settings import SETTINGS, SettingsError, load
from tests.harness import ROOT


def test_defaults() -> None:
    s = load({})
    assert (s.table_prefix, s.config_refresh_seconds, s.allow_http_loopback, s.jwt_leeway_seconds) == (
        "gw", 10.0, False, 60)
    assert s.max_body_bytes >= 20 * 1024 * 1024


@pytest.mark.parametrize(("name", "value"), [
    ("GATEWAY_TABLE_PREFIX", "gw-1"),
    ("GATEWAY_TABLE_PREFIX", "1gw"),
    ("GATEWAY_CONFIG_REFRESH_SECONDS", "soon"),
    ("GATEWAY_CONFIG_REFRESH_SECONDS", "0"),
    ("GATEWAY_DEV_ALLOW_HTTP_LOOPBACK", "maybe"),
    ("GATEWAY_JWT_LEEWAY_SECONDS", "1.5"),
    ("GATEWAY_MAX_BODY_BYTES", "-1"),
    ("GATEWAY_LOG_LEVEL", "LOUD"),
])
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load({name: value})


def test_admins_are_a_set_of_principals() -> None:
    assert load({"GATEWAY_ADMINS": " user:okta/a , identity:ops,"}).admins == {"user:okta/a", "identity:ops"}


def test_every_setting_is_in_the_sample_and_the_readme() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert setting.name in sample, f"{setting.name} missing from local.settings.sample.json"
        assert f"`{setting.name}`" in readme, f"{setting.name} missing from README.md"

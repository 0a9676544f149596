"""The app settings both stacks set are exactly the settings the code reads (shared/settings.py).

The list is derived from `SETTINGS`, never written down here: a setting added to the code with
in_azure=True must be added to both stacks, one with in_azure=False must never appear in a stack. Besides
the gateway's settings, a stack may only set the Functions host's own settings listed in HOST_SETTINGS.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from shared.settings import SETTINGS, SettingsError, load

# The Functions host's own settings: identity-based AzureWebJobsStorage, Application Insights with
# Entra authentication, and worker indexing for the HTTP streaming extension. Nothing else.
HOST_SETTINGS = frozenset({
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_ENABLE_INIT_INDEXING",
})

# Terraform only: azurerm 4.x writes a keyless AzureWebJobsStorage connection string for identity-based
# storage unless the setting is given empty (infra/terraform/functionapp.tf). Only that value is allowed.
TERRAFORM_WORKAROUNDS = {"AzureWebJobsStorage": ""}

# Never on Flex Consumption: the runtime lives in functionAppConfig / runtime_name.
FLEX_FORBIDDEN = frozenset({"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "AzureWebJobsStorage"})

IN_AZURE = {s.name: s for s in SETTINGS if s.in_azure}
NOT_IN_AZURE = {s.name for s in SETTINGS if not s.in_azure}

# Settings whose value is the stack's own resource or parameter, not a literal default.
DERIVED = {"GATEWAY_TABLES_ENDPOINT", "AZURE_CLIENT_ID", "GATEWAY_TABLE_PREFIX", "GATEWAY_ADMINS",
           "APPLICATIONINSIGHTS_CONNECTION_STRING", "GATEWAY_SEALING_KEY"}

# Secrets reach the app as Key Vault references only, never as values: the platform resolves the
# reference with the site's keyVaultReferenceIdentity and hands the gateway the secret.
SECRET_SETTINGS = {"GATEWAY_SEALING_KEY"}
KEY_VAULT_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(SecretUri=\$\{[\w.]+\}\)")


def setting_problems(settings: dict[str, Any], *, workarounds: dict[str, str] | None = None) -> list[str]:
    """Everything wrong with one stack's app settings (names only); [] when they match the code."""
    workarounds = workarounds or {}
    problems = []
    names = set(settings)
    for name in sorted(set(IN_AZURE) - names):
        problems.append(f"{name} is read by the gateway (in_azure=True) but not set")
    for name in sorted(names & NOT_IN_AZURE):
        problems.append(f"{name} must never be set in Azure (in_azure=False)")
    for name in sorted(names - set(IN_AZURE) - NOT_IN_AZURE - HOST_SETTINGS - set(workarounds)):
        problems.append(f"{name} is neither a gateway setting nor an allowed host setting")
    for name, value in workarounds.items():
        if name in settings and settings[name] != value:
            problems.append(f"{name} may only be set to {value!r}, got {settings[name]!r}")
    for name in sorted((names & FLEX_FORBIDDEN) - set(workarounds)):
        problems.append(f"{name} must not be set on Flex Consumption")
    return problems


def secret_problems(settings: dict[str, Any]) -> list[str]:
    """Secret settings whose value is anything but a Key Vault reference (Bicep may fall back to "")."""
    problems = []
    for name in sorted(SECRET_SETTINGS & set(settings)):
        value = str(settings[name])
        references = KEY_VAULT_REFERENCE.findall(value)
        rest = KEY_VAULT_REFERENCE.sub("", value)
        bicep_fallback = rest.startswith("<conditional ") and re.search(r"true_value=,", rest)
        if len(references) != 1 or (rest and not bicep_fallback):
            problems.append(f"{name} must be a Key Vault reference, got {value!r}")
    return problems


def literal_problems(settings: dict[str, Any]) -> list[str]:
    """Gateway settings with a literal value must carry the code's default."""
    problems = []
    for name, setting in IN_AZURE.items():
        if name in DERIVED or name not in settings:
            continue
        if settings[name] != setting.default:
            problems.append(f"{name} = {settings[name]!r}, the code's default is {setting.default!r}")
    return problems


@pytest.fixture(scope="module")
def bicep_settings(bicep, helpers) -> dict[str, Any]:
    return helpers.bicep_app_settings(bicep)


@pytest.fixture(scope="module")
def terraform_settings(terraform, helpers) -> dict[str, Any]:
    return helpers.terraform_app_settings(terraform)


def test_the_catalogue_has_settings_for_azure():
    assert IN_AZURE, "shared/settings.py lists no setting with in_azure=True"
    assert {"GATEWAY_TABLES_ENDPOINT", "AZURE_CLIENT_ID"} <= set(IN_AZURE)
    assert {"GATEWAY_TABLES_CONNECTION", "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK"} <= NOT_IN_AZURE


def test_bicep_sets_exactly_the_settings_the_code_reads(bicep_settings):
    assert setting_problems(bicep_settings) == []


def test_terraform_sets_exactly_the_settings_the_code_reads(terraform_settings):
    assert setting_problems(terraform_settings, workarounds=TERRAFORM_WORKAROUNDS) == []


def test_both_stacks_set_the_same_settings(bicep_settings, terraform_settings):
    assert set(bicep_settings) == set(terraform_settings) - set(TERRAFORM_WORKAROUNDS)


def test_literal_values_are_the_code_defaults(bicep_settings, terraform_settings):
    assert literal_problems(bicep_settings) == []
    assert literal_problems(terraform_settings) == []


def test_both_stacks_give_the_same_literal_values(bicep_settings, terraform_settings):
    literal = (set(IN_AZURE) - DERIVED) | {"PYTHON_ENABLE_INIT_INDEXING", "AzureWebJobsStorage__credential"}
    for name in sorted(literal):
        assert bicep_settings[name] == terraform_settings[name], name


def test_derived_settings_point_at_the_stack_resources(bicep, terraform, bicep_settings, terraform_settings):
    # Bicep: the module's own resources and parameters.
    assert bicep_settings["GATEWAY_TABLES_ENDPOINT"] == "storage.properties.primaryEndpoints.table"
    assert bicep_settings["AZURE_CLIENT_ID"] == "identity.properties.clientId"
    assert bicep_settings["AzureWebJobsStorage__clientId"] == "identity.properties.clientId"
    assert bicep_settings["AzureWebJobsStorage__accountName"] == "storage.name"
    assert bicep_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert bicep_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identity.properties.clientId};Authorization=AAD"
    )
    insights = "appInsights.properties.ConnectionString"
    assert bicep_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == insights
    assert bicep_settings["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    assert bicep_settings["GATEWAY_TABLE_PREFIX"] == "tablePrefix"
    assert bicep_settings["GATEWAY_ADMINS"] == "gatewayAdmins"
    assert bicep.parameter_default("main.bicep", "tablePrefix") == IN_AZURE["GATEWAY_TABLE_PREFIX"].default
    assert bicep.parameter_default("main.bicep", "gatewayAdmins") == IN_AZURE["GATEWAY_ADMINS"].default

    # Terraform: the same resources.
    client_id = "${azurerm_user_assigned_identity.gateway.client_id}"
    table_endpoint = "${azurerm_storage_account.main.primary_table_endpoint}"
    assert terraform_settings["GATEWAY_TABLES_ENDPOINT"] == table_endpoint
    assert terraform_settings["AZURE_CLIENT_ID"] == client_id
    assert terraform_settings["AzureWebJobsStorage__clientId"] == client_id
    assert terraform_settings["AzureWebJobsStorage__accountName"] == "${azurerm_storage_account.main.name}"
    assert terraform_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert terraform_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${azurerm_user_assigned_identity.gateway.client_id};Authorization=AAD"
    )
    assert terraform_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == (
        "${azurerm_application_insights.main.connection_string}"
    )
    assert terraform_settings["GATEWAY_TABLE_PREFIX"] == "${var.table_prefix}"
    assert terraform_settings["GATEWAY_ADMINS"] == "${var.gateway_admins}"
    assert terraform.variable_default("table_prefix") == IN_AZURE["GATEWAY_TABLE_PREFIX"].default
    assert terraform.variable_default("gateway_admins") == IN_AZURE["GATEWAY_ADMINS"].default


def test_the_deployed_settings_load(bicep_settings):
    """What a deployed app would see, with the derived values filled in, passes the code's own parser."""
    env = {name: value for name, value in bicep_settings.items() if name in IN_AZURE}
    env["GATEWAY_TABLES_ENDPOINT"] = "https://stexample.table.core.windows.net/"
    env["AZURE_CLIENT_ID"] = "11111111-1111-1111-1111-111111111111"
    env["GATEWAY_TABLE_PREFIX"] = IN_AZURE["GATEWAY_TABLE_PREFIX"].default
    env["GATEWAY_ADMINS"] = "user:okta/admin"
    key = bytes(range(32))
    env["GATEWAY_SEALING_KEY"] = base64.b64encode(key).decode()  # what the resolved reference holds
    try:
        settings = load(env)
    except SettingsError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"the stack's app settings do not load: {exc}")
    settings.require_tables()
    assert settings.tables_endpoint == "https://stexample.table.core.windows.net"
    assert not settings.allow_http_loopback
    assert settings.sealing_key == key


def test_both_stacks_reference_the_sealing_key_in_key_vault(bicep, terraform, bicep_settings,
                                                            terraform_settings, helpers):
    assert secret_problems(bicep_settings) == []
    assert secret_problems(terraform_settings) == []
    # Bicep: the reference only when the secret exists; the module's versionless URI from main.
    assert bicep_settings["GATEWAY_SEALING_KEY"] == (
        "<conditional condition=empty(sealingKeyUri), true_value=, "
        "false_value=@Microsoft.KeyVault(SecretUri=${sealingKeyUri})>"
    )
    call = bicep.main["modules"]["functionApp"]["config"]["params"]
    assert helpers.expression_text(call["sealingKeyUri"]) == "keyVault.outputs.sealingKeyUri"
    uri = helpers.expression_text(bicep.files["modules/keyvault.bicep"]["outputs"]["sealingKeyUri"]["value"])
    assert uri == "<conditional condition=createSealingKey, " \
                  "true_value=sealingKeySecret.properties.secretUri, false_value=>"  # secretUri: no version
    # Terraform: always, to the versionless URI of the secret it writes.
    assert terraform_settings["GATEWAY_SEALING_KEY"] == (
        "@Microsoft.KeyVault(SecretUri=${local.sealing_key_secret_uri})"
    )
    assert terraform.locals()["sealing_key_secret_uri"] == (
        "${azurerm_key_vault.main.vault_uri}secrets/${azapi_resource.sealing_key.name}"
    )


def test_a_secret_pasted_as_a_value_is_caught(bicep_settings, terraform_settings):
    pasted = base64.b64encode(bytes(32)).decode()
    for settings in (bicep_settings, terraform_settings):
        drifted = {**settings, "GATEWAY_SEALING_KEY": pasted}
        assert any("Key Vault reference" in p for p in secret_problems(drifted))
    with_suffix = {**terraform_settings,
                   "GATEWAY_SEALING_KEY": terraform_settings["GATEWAY_SEALING_KEY"] + pasted}
    assert secret_problems(with_suffix) != []


def test_an_unresolved_reference_stops_the_gateway():
    """When the platform cannot resolve the reference it passes the reference text on: the gateway must
    refuse it, naming the setting, rather than fall back to a key of its own per instance."""
    env = {"GATEWAY_SEALING_KEY": "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/"
                                  "gateway-sealing-key)"}
    with pytest.raises(SettingsError, match="GATEWAY_SEALING_KEY"):
        load(env)


# ---- the comparison fails for real when a stack drifts ------------------------------------------


def test_a_missing_setting_is_caught(bicep_settings, terraform_settings):
    for settings, workarounds in ((bicep_settings, None), (terraform_settings, TERRAFORM_WORKAROUNDS)):
        drifted = dict(settings)
        del drifted["GATEWAY_JWKS_TTL_SECONDS"]
        problems = setting_problems(drifted, workarounds=workarounds)
        assert any("GATEWAY_JWKS_TTL_SECONDS" in p and "not set" in p for p in problems), problems


def test_an_unknown_setting_is_caught(bicep_settings):
    drifted = {**bicep_settings, "GATEWAY_SOMETHING_NEW": "1"}
    assert any("GATEWAY_SOMETHING_NEW" in p for p in setting_problems(drifted))


def test_a_local_only_setting_is_caught(bicep_settings):
    drifted = {**bicep_settings, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true"}
    assert any("never be set" in p for p in setting_problems(drifted))


def test_the_worker_runtime_setting_is_caught(bicep_settings):
    drifted = {**bicep_settings, "FUNCTIONS_WORKER_RUNTIME": "python"}
    assert setting_problems(drifted) != []


def test_a_keyed_webjobs_storage_is_caught(terraform_settings):
    drifted = {**terraform_settings, "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountKey=x"}
    assert any("may only be set" in p for p in setting_problems(drifted, workarounds=TERRAFORM_WORKAROUNDS))
    assert any("AzureWebJobsStorage" in p for p in setting_problems(drifted))


def test_a_changed_default_is_caught(terraform_settings):
    drifted = {**terraform_settings, "GATEWAY_CONFIG_REFRESH_SECONDS": "60"}
    assert literal_problems(drifted) != []


def test_a_setting_removed_from_the_parsed_bicep_is_caught(bicep_copy, helpers):
    site = bicep_copy.resource("modules/functionapp.bicep", "site")
    body, _, _ = helpers.bicep_resource_body(site)
    entries = body["properties"]["siteConfig"]["appSettings"]
    body["properties"]["siteConfig"]["appSettings"] = [e for e in entries if e["name"] != "AZURE_CLIENT_ID"]
    assert any("AZURE_CLIENT_ID" in p for p in setting_problems(helpers.bicep_app_settings(bicep_copy)))


def test_a_setting_removed_from_the_parsed_terraform_is_caught(terraform_copy, helpers):
    app = terraform_copy.resource("azurerm_function_app_flex_consumption", "gateway")
    helpers.unwrap(app["app_settings"]).pop("GATEWAY_LOG_LEVEL")
    settings = helpers.terraform_app_settings(terraform_copy)
    problems = setting_problems(settings, workarounds=TERRAFORM_WORKAROUNDS)
    assert any("GATEWAY_LOG_LEVEL" in p for p in problems)


def test_terraform_keeps_overriding_the_providers_keyless_connection_string(terraform, helpers):
    """azurerm writes a keyless AzureWebJobsStorage on every create and update: only an explicit "" in
    app_settings, sent with every update, wins. Ignoring changes to it would stop sending it."""
    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    assert helpers.unwrap(app["app_settings"])["AzureWebJobsStorage"] == ""
    lifecycle = helpers.unwrap(app.get("lifecycle", [{}]))
    ignored = str(helpers.unwrap(lifecycle.get("ignore_changes", "")))
    assert "app_settings" not in ignored, "ignore_changes would let the keyless connection string back"

"""Both stacks declare the same resources, role assignments, tables, diagnostic settings, parameters and
outputs, and hold the invariants the gateway depends on (Flex Consumption for Python 3.13 with raised
HTTP concurrency, one managed identity for everything, keyless Azure OpenAI, optional Entra app and
Kubernetes federated credentials).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Every resource type of either stack, by what it is. A type missing here fails the test: a resource
# added to one stack must be mapped, and then added to the other.
BICEP_KINDS = {
    "Microsoft.Resources/resourceGroups": "resource group",
    "Microsoft.OperationalInsights/workspaces": "log analytics",
    "Microsoft.Insights/components": "application insights",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "managed identity",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials": "kubernetes credential",
    "Microsoft.Storage/storageAccounts": "storage account",
    "Microsoft.Storage/storageAccounts/blobServices": "(blob service settings)",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "deployment container",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "configuration tables",
    "Microsoft.CognitiveServices/accounts": "openai account",
    "Microsoft.CognitiveServices/accounts/deployments": "model deployment",
    "Microsoft.Web/serverfarms": "flex plan",
    "Microsoft.Web/sites": "function app",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "(basic publishing off)",
    "Microsoft.Insights/diagnosticSettings": "diagnostic setting",
    "Microsoft.Authorization/roleAssignments": "role assignment",
    "Microsoft.Graph/applications": "entra app",
    "Microsoft.Graph/applications/federatedIdentityCredentials": "entra app credential",
    "Microsoft.Graph/servicePrincipals": "entra service principal",
    "Microsoft.KeyVault/vaults": "key vault",
    "Microsoft.KeyVault/vaults/secrets": "sealing key secret",
}
TERRAFORM_KINDS = {
    "azurerm_resource_group": "resource group",
    "azurerm_log_analytics_workspace": "log analytics",
    "azurerm_application_insights": "application insights",
    "azurerm_user_assigned_identity": "managed identity",
    "azurerm_federated_identity_credential": "kubernetes credential",
    "azurerm_storage_account": "storage account",
    "azurerm_storage_container": "deployment container",
    "azapi_resource:Microsoft.Storage/storageAccounts/tableServices/tables": "configuration tables",
    "azapi_update_resource:Microsoft.Web/sites/basicPublishingCredentialsPolicies": "(basic publishing off)",
    "azurerm_cognitive_account": "openai account",
    "azurerm_cognitive_deployment": "model deployment",
    "azurerm_service_plan": "flex plan",
    "azurerm_function_app_flex_consumption": "function app",
    "azurerm_monitor_diagnostic_setting": "diagnostic setting",
    "azurerm_role_assignment": "role assignment",
    "azuread_application": "entra app",
    "azuread_application_federated_identity_credential": "entra app credential",
    "azuread_service_principal": "entra service principal",
    "azurerm_key_vault": "key vault",
    "azapi_resource:Microsoft.KeyVault/vaults/secrets": "sealing key secret",
    "random_bytes": "(the sealing key's bytes)",
    "azapi_resource_action:Microsoft.Web/sites": "(key vault reference identity)",
}
# Kinds in parentheses are settings of another resource (blob_properties, the basic publishing
# policies, the site's keyVaultReferenceIdentity) or Terraform's own state (the sealing key's random
# bytes, which Bicep takes as a parameter): checked below, not counted.

ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Azure AI User": "53ca6127-db72-4b80-b1b0-d745d6d5456d",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}
# (role, scope, principal, optional)
EXPECTED_ROLES = {
    ("Storage Blob Data Owner", "storage account", "managed identity", False),
    ("Storage Queue Data Contributor", "storage account", "managed identity", False),
    ("Storage Table Data Contributor", "storage account", "managed identity", False),
    ("Monitoring Metrics Publisher", "application insights", "managed identity", False),
    ("Cognitive Services OpenAI User", "openai account", "managed identity", False),
    # The Key Vault reference of GATEWAY_SEALING_KEY. The deployer gets nothing on the vault: the
    # secret is written through Resource Manager in both stacks.
    ("Key Vault Secrets User", "key vault", "managed identity", False),
    ("Cognitive Services OpenAI User", "openai account", "entra app", True),
    ("Storage Table Data Contributor", "storage account", "deployer", True),
    # The optional AI Foundry resource, for the identity and (when it exists) the app registration.
    ("Azure AI User", "foundry account", "managed identity", True),
    ("Cognitive Services OpenAI User", "foundry account", "managed identity", True),
    ("Azure AI User", "foundry account", "entra app", True),
    ("Cognitive Services OpenAI User", "foundry account", "entra app", True),
}

EXPECTED_TABLE_KINDS = [
    "identityproviders", "externalidentities", "teams", "accounts", "workspaces", "models", "mcpservers",
    "agents",
    "ratelimits", "budgets", "prices", "bindings", "meta", "usage", "audit", "health",
    "remotecalls",
    "oauthtokens",
    "objects",
]
DIAGNOSTIC_TARGETS = {"blob service", "queue service", "table service", "openai account", "function app",
                      "foundry account", "key vault"}


# ---- Bicep readers --------------------------------------------------------------------------------


def bicep_kinds(bicep, helpers) -> Counter:
    kinds: Counter = Counter()
    for name, symbol, resource in bicep.resources():
        rtype = helpers.bicep_resource_type(resource)
        assert rtype in BICEP_KINDS, f"{name}: {symbol} has unmapped type {rtype}"
        if not BICEP_KINDS[rtype].startswith("("):
            kinds[BICEP_KINDS[rtype]] += 1
    return kinds


def bicep_roles(bicep, helpers) -> set[tuple[str, str, str, bool]]:
    roles_file = "modules/roles.bicep"
    role_ids = bicep.variable(roles_file, "roles")
    by_id = {v: k for k, v in ROLE_IDS.items()}
    scopes = {
        symbol: BICEP_KINDS[helpers.bicep_resource_type(r)]
        for symbol, r in bicep.files[roles_file]["resources"].items()
        if r.get("existing")
    }
    principals = {
        "identityPrincipalId": "managed identity",
        "deployerPrincipalId": "deployer",
        "entraServicePrincipalId": "entra app",
    }
    found = set()
    for name, symbol, resource in bicep.resources():
        if helpers.bicep_resource_type(resource) != "Microsoft.Authorization/roleAssignments":
            continue
        if name == FOUNDRY_FILE:
            found |= bicep_foundry_roles(bicep, helpers, symbol, resource)
            continue
        assert name == roles_file, f"{name}: role assignment {symbol} outside roles.bicep"
        body, condition, _ = helpers.bicep_resource_body(resource)
        definition = helpers.expression_text(body["properties"]["roleDefinitionId"])
        match = re.fullmatch(
            r"subscription_resource_id\(Microsoft\.Authorization/roleDefinitions, roles\.(\w+)\)", definition
        )
        assert match, f"{symbol}: roleDefinitionId {definition}"
        role = by_id[role_ids[match.group(1)]]
        principal = principals[body["properties"]["principalId"]]
        found.add((role, scopes[body["scope"]], principal, condition is not None))
    return found


FOUNDRY_FILE = "modules/foundry.bicep"


def bicep_foundry_roles(bicep, helpers, symbol, resource) -> set[tuple[str, str, str, bool]]:
    """The optional module's roles on its own account, one per principal of its `principals` list."""
    body, _, is_loop = helpers.bicep_resource_body(resource)
    assert is_loop and body["scope"] == "account", symbol
    assert bicep.main["modules"]["foundry"]["config"]["condition"] == "createAiFoundry"
    definition = helpers.expression_text(body["properties"]["roleDefinitionId"])
    role_ids = bicep.variable(FOUNDRY_FILE, "roles")
    role = {v: k for k, v in ROLE_IDS.items()}[role_ids[definition.rsplit("roles.", 1)[1].rstrip(")")]]
    principals = str(helpers.expression_text(bicep.variable(FOUNDRY_FILE, "principals")))
    found = {(role, "foundry account", "managed identity", True)}
    if "entraServicePrincipalId" in principals:
        found.add((role, "foundry account", "entra app", True))
    return found


# ---- Terraform readers ----------------------------------------------------------------------------


def terraform_type_key(rtype: str, body: dict[str, Any], helpers) -> str:
    if rtype in ("azapi_resource", "azapi_update_resource", "azapi_resource_action"):
        return f"{rtype}:{helpers.unwrap(body['type']).split('@', 1)[0]}"
    return rtype


def terraform_kinds(terraform, helpers) -> Counter:
    kinds: Counter = Counter()
    for rtype, rname, body in terraform.resources():
        key = terraform_type_key(rtype, body, helpers)
        assert key in TERRAFORM_KINDS, f"{rtype}.{rname} has unmapped type {key}"
        if not TERRAFORM_KINDS[key].startswith("("):
            kinds[TERRAFORM_KINDS[key]] += 1
    return kinds


def terraform_roles(terraform, helpers) -> set[tuple[str, str, str, bool]]:
    role_ids = terraform.locals()["roles"]
    by_id = {v: k for k, v in ROLE_IDS.items()}
    found = set()
    for rtype, rname, body in terraform.resources():
        if rtype != "azurerm_role_assignment":
            continue
        definition = helpers.unwrap(body["role_definition_id"])
        match = re.fullmatch(r"\$\{local\.role_definition_prefix\}\$\{local\.roles\.(\w+)\}", definition)
        assert match, f"{rname}: role_definition_id {definition}"
        role = by_id[role_ids[match.group(1)]]
        scope_ref = helpers.unwrap(body["scope"])
        if scope_ref == "${azurerm_cognitive_account.foundry[0].id}":
            assert helpers.unwrap(body["for_each"]) == "${local.foundry_principals}", rname
            principals = str(terraform.locals()["foundry_principals"])
            for key, principal in (("identity", "managed identity"), ("entra_app", "entra app")):
                if f"'{key}'" in principals:  # a key of the merged map
                    found.add((role, "foundry account", principal, True))
            continue
        scope = re.fullmatch(r"\$\{(\w+)\.\w+\.id\}", scope_ref).group(1)
        principal_ref = helpers.unwrap(body["principal_id"])
        if "azurerm_user_assigned_identity" in principal_ref:
            principal = "managed identity"
        elif "var.principal_id" in principal_ref:
            principal = "deployer"
        elif "azuread_service_principal" in principal_ref:
            principal = "entra app"
        else:
            raise AssertionError(f"{rname}: unknown principal {principal_ref}")
        found.add((role, TERRAFORM_KINDS[scope], principal, "count" in body))
    return found


# ---- resources ------------------------------------------------------------------------------------


def test_both_stacks_declare_the_same_resources(bicep, terraform, helpers):
    assert bicep_kinds(bicep, helpers) == terraform_kinds(terraform, helpers)


def test_an_added_resource_is_caught(bicep_copy, terraform, helpers):
    bicep_copy.files["modules/monitoring.bicep"]["resources"]["extra"] = {
        "type": "Microsoft.OperationalInsights/workspaces", "config": {"name": "x"}, "existing": False,
    }
    assert bicep_kinds(bicep_copy, helpers) != terraform_kinds(terraform, helpers)


def test_an_unmapped_resource_type_is_caught(terraform_copy, helpers):
    # The data-plane secret resource: the stack writes the secret through Resource Manager instead.
    terraform_copy.files["main.tf"].setdefault("resource", []).append({"azurerm_key_vault_secret": {"s": {}}})
    with pytest.raises(AssertionError, match="unmapped"):
        terraform_kinds(terraform_copy, helpers)


def test_the_configuration_tables_are_the_same_everywhere(bicep, terraform):
    bicep_tables = bicep.variable("modules/storage.bicep", "tableKinds")
    terraform_tables = terraform.locals()["table_kinds"]
    assert bicep_tables == EXPECTED_TABLE_KINDS
    assert terraform_tables == EXPECTED_TABLE_KINDS


def test_the_tables_cover_what_the_code_uses(bicep):
    """Table suffixes the config store uses (shared/config), read from its source without importing it."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    suffixes: set[str] = set()
    kinds = ast.parse((root / "shared/config/kinds.py").read_text(encoding="utf-8"))
    store = ast.parse((root / "shared/config/store.py").read_text(encoding="utf-8"))
    for tree, name in ((kinds, "KIND_ROWS"), (store, "EXTRA_TABLES")):
        values = [
            ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            and name in [t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                         if isinstance(t, ast.Name)]
        ]
        assert values, f"{name} not found in shared/config: update this test"
        for item in values[0]:
            suffixes.add(item[1] if isinstance(item, tuple) else item)
    suffixes.discard(None)      # a kind that is not stored (the gateway itself)
    assert suffixes <= set(bicep.variable("modules/storage.bicep", "tableKinds"))


def test_tables_are_named_prefix_kind(bicep, terraform, helpers):
    tables = bicep.resource("modules/storage.bicep", "tables")
    body, _, is_loop = helpers.bicep_resource_body(tables)
    assert is_loop and body["name"] == "${tablePrefix}${kind}"
    table = terraform.resource("azapi_resource", "table")
    assert helpers.unwrap(table["name"]) == "${var.table_prefix}${each.value}"
    assert helpers.unwrap(table["parent_id"]) == "${azurerm_storage_account.main.id}/tableServices/default"


def test_diagnostic_settings_cover_the_same_resources(bicep, terraform, helpers):
    scope_kinds = {
        "blobService": "blob service", "queueService": "queue service", "tableService": "table service",
        "account": "openai account", "site": "function app", "vault": "key vault",
    }
    bicep_targets = set()
    for file, symbol, resource in bicep.resources():
        if helpers.bicep_resource_type(resource) == "Microsoft.Insights/diagnosticSettings":
            body, _, _ = helpers.bicep_resource_body(resource)
            kind = "foundry account" if file == FOUNDRY_FILE else scope_kinds[body["scope"]]
            bicep_targets.add(kind)
            assert body["properties"]["logs"] == [{"categoryGroup": "allLogs", "enabled": True}], symbol
    terraform_targets = set()
    for rtype, rname, body in terraform.resources():
        if rtype == "azurerm_monitor_diagnostic_setting":
            target = helpers.unwrap(body["target_resource_id"])
            kind = {
                "${azurerm_storage_account.main.id}/blobServices/default": "blob service",
                "${azurerm_storage_account.main.id}/queueServices/default": "queue service",
                "${azurerm_storage_account.main.id}/tableServices/default": "table service",
                "${azurerm_cognitive_account.openai.id}": "openai account",
                "${azurerm_cognitive_account.foundry[0].id}": "foundry account",
                "${azurerm_function_app_flex_consumption.gateway.id}": "function app",
                "${azurerm_key_vault.main.id}": "key vault",
            }[target]
            terraform_targets.add(kind)
            assert helpers.unwrap(helpers.unwrap(body["enabled_log"])["category_group"]) == "allLogs", rname
            workspace = helpers.unwrap(body["log_analytics_workspace_id"])
            assert workspace == "${azurerm_log_analytics_workspace.main.id}", rname
    assert bicep_targets == terraform_targets == DIAGNOSTIC_TARGETS


# ---- roles ----------------------------------------------------------------------------------------


def test_bicep_assigns_the_expected_roles(bicep, helpers):
    assert bicep_roles(bicep, helpers) == EXPECTED_ROLES


def test_terraform_assigns_the_expected_roles(terraform, helpers):
    assert terraform_roles(terraform, helpers) == EXPECTED_ROLES


def test_role_definition_ids_are_the_built_in_ones(bicep, terraform):
    bicep_ids = set(bicep.variable("modules/roles.bicep", "roles").values())
    bicep_ids |= set(bicep.variable(FOUNDRY_FILE, "roles").values())
    terraform_ids = set(terraform.locals()["roles"].values())
    assert bicep_ids == terraform_ids == set(ROLE_IDS.values())


def test_a_removed_role_assignment_is_caught(bicep_copy, helpers):
    del bicep_copy.files["modules/roles.bicep"]["resources"]["identityOpenAiUser"]
    assert bicep_roles(bicep_copy, helpers) != EXPECTED_ROLES


def test_a_role_on_the_wrong_scope_is_caught(terraform_copy, helpers):
    body = terraform_copy.resource("azurerm_role_assignment", "identity_table_contributor")
    body["scope"] = ["${azurerm_application_insights.main.id}"]
    assert terraform_roles(terraform_copy, helpers) != EXPECTED_ROLES


# ---- parameters and outputs -----------------------------------------------------------------------


def _normalized(name: str) -> str:
    return name.replace("_", "").lower()


def test_both_stacks_take_the_same_parameters_with_the_same_defaults(bicep, terraform, helpers):
    bicep_params = {_normalized(n): p.get("default") for n, p in bicep.main["parameters"].items()}
    terraform_vars = {
        _normalized(n): helpers.unwrap(v.get("default")) for n, v in terraform.variables().items()
    }
    terraform_vars.pop("subscriptionid")  # Terraform's provider needs it; Bicep deploys to a subscription
    bicep_params.pop("sealingkey")  # Terraform draws the key itself (random_bytes)
    assert set(bicep_params) == set(terraform_vars)
    for name, default in bicep_params.items():
        assert default == terraform_vars[name], name


def test_both_stacks_have_the_same_outputs(bicep, terraform):
    assert set(bicep.main["outputs"]) == set(terraform.outputs())


def test_optional_parts_are_off_by_default(bicep, terraform, helpers):
    assert bicep.parameter_default("main.bicep", "createEntraApp") is False
    assert terraform.variable_default("create_entra_app") is False
    assert bicep.parameter_default("main.bicep", "kubernetesIssuer") == ""
    assert terraform.variable_default("kubernetes_issuer") == ""
    assert bicep.parameter_default("main.bicep", "alwaysReadyInstanceCount") == 0
    assert terraform.variable_default("always_ready_instance_count") == 0
    entra = bicep.main["modules"]["entraApp"]["config"]
    assert helpers.expression_text(entra["condition"]) == "createEntraApp"
    k8s = bicep.resource("modules/identity.bicep", "kubernetes")
    assert helpers.bicep_resource_body(k8s)[1] is not None
    for rtype in ("azuread_application", "azuread_service_principal",
                  "azuread_application_federated_identity_credential"):
        for t, n, body in terraform.resources():
            if t == rtype:
                assert helpers.unwrap(body["count"]) == "${var.create_entra_app ? 1 : 0}", f"{t}.{n}"
    k8s_tf = terraform.resource("azurerm_federated_identity_credential", "kubernetes")
    assert "var.kubernetes_issuer" in helpers.unwrap(k8s_tf["count"])


# ---- the function app -----------------------------------------------------------------------------


# The deployed runtime: Python 3.13 with runtime versioning (requirements.txt pins azure-functions-runtime).
PYTHON_VERSION = "3.13"


def test_the_app_deploys_on_python_313_with_a_pinned_runtime_library():
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.split("#", 1)[0].strip() for line in requirements]
    assert any(re.fullmatch(r"azure-functions-runtime==\d+\.\d+\.\d+", pin) for pin in pins), (
        "runtime versioning on Python 3.13+ needs azure-functions-runtime pinned in requirements.txt"
    )


def test_flex_consumption_python_313_with_raised_concurrency(bicep, terraform, helpers):
    plan, _, _ = helpers.bicep_resource_body(bicep.resource("modules/functionapp.bicep", "plan"))
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site, _, _ = helpers.bicep_resource_body(bicep.resource("modules/functionapp.bicep", "site"))
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": PYTHON_VERSION}
    scale = config["scaleAndConcurrency"]
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "httpPerInstanceConcurrency"
    assert "alwaysReadyInstanceCount" in str(helpers.expression_text(scale["alwaysReady"]))
    assert bicep.parameter_default("main.bicep", "httpPerInstanceConcurrency") >= 16

    assert helpers.unwrap(terraform.resource("azurerm_service_plan", "main")["sku_name"]) == "FC1"
    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    assert helpers.unwrap(app["runtime_name"]) == "python"
    assert helpers.unwrap(app["runtime_version"]) == PYTHON_VERSION
    assert helpers.unwrap(app["http_concurrency"]) == "${var.http_per_instance_concurrency}"
    assert "always_ready" in helpers.unwrap(app["dynamic"])
    assert terraform.variable_default("http_per_instance_concurrency") >= 16


# What azurerm 4.58's Flex Consumption resource accepts; Bicep and Terraform validate the same.
SCALE_RANGES = [
    ("maximumInstanceCount", "maximum_instance_count", 1, 1000),
    ("httpPerInstanceConcurrency", "http_per_instance_concurrency", 1, 1000),
    ("alwaysReadyInstanceCount", "always_ready_instance_count", 0, 100),
]


@pytest.mark.parametrize(("bicep_name", "terraform_name", "low", "high"), SCALE_RANGES,
                         ids=[r[1] for r in SCALE_RANGES])
def test_scale_limits_are_validated_alike(bicep, terraform, helpers, bicep_name, terraform_name, low, high):
    decorators = {d["type"]: d.get("argument") for d in bicep.main["parameters"][bicep_name]["decorators"]}
    assert (decorators["min_value"], decorators["max_value"]) == (low, high)
    validation = helpers.unwrap(terraform.variables()[terraform_name]["validation"])
    condition = helpers.unwrap(validation["condition"])
    assert f"var.{terraform_name} >= {low}" in condition and f"var.{terraform_name} <= {high}" in condition


def test_one_user_assigned_identity_for_everything(bicep, terraform, helpers):
    site, _, _ = helpers.bicep_resource_body(bicep.resource("modules/functionapp.bicep", "site"))
    assert site["identity"]["type"] == "UserAssigned"
    assert list(site["identity"]["userAssignedIdentities"]) == ["'${identity.id}'"]  # pycep keeps the quotes
    auth = site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert auth["type"] == "UserAssignedIdentity"
    assert helpers.expression_text(auth["userAssignedIdentityResourceId"]) == "identity.id"

    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    identity = helpers.unwrap(app["identity"])
    assert helpers.unwrap(identity["type"]) == "UserAssigned"
    assert helpers.unwrap(identity["identity_ids"]) == "${azurerm_user_assigned_identity.gateway.id}"
    assert helpers.unwrap(app["storage_authentication_type"]) == "UserAssignedIdentity"
    identity_id = "${azurerm_user_assigned_identity.gateway.id}"
    assert helpers.unwrap(app["storage_user_assigned_identity_id"]) == identity_id


def test_the_function_app_is_locked_down(bicep, terraform, helpers):
    site, _, _ = helpers.bicep_resource_body(bicep.resource("modules/functionapp.bicep", "site"))
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["properties"]["siteConfig"]["ftpsState"] == "Disabled"
    policies = {
        helpers.bicep_resource_body(r)[0]["name"]: helpers.bicep_resource_body(r)[0]["properties"]["allow"]
        for _, _, r in bicep.resources()
        if helpers.bicep_resource_type(r) == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {"scm": False, "ftp": False}
    # azd finds the app to deploy to by this tag: azure.yaml's service is `api`.
    assert site["tags"]["function"]["parameters"]["arg_2"] == {"'azd-service-name'": "api"}

    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    assert helpers.unwrap(app["https_only"]) is True
    assert terraform_basic_publishing(terraform, helpers) == {"scm": False, "ftp": False}
    assert helpers.unwrap(helpers.unwrap(app["site_config"])["minimum_tls_version"]) == "1.2"
    assert "'azd-service-name': 'api'" in helpers.unwrap(app["tags"])


def terraform_basic_publishing(terraform, helpers) -> dict[str, bool]:
    """name -> allow of each basic publishing policy: SCM through azurerm's argument, FTP through azapi."""
    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    found = {"scm": helpers.unwrap(app["webdeploy_publish_basic_authentication_enabled"])}
    site_id = "${azurerm_function_app_flex_consumption.gateway.id}"
    for rtype, rname, body in terraform.resources():
        policy_type = "basicPublishingCredentialsPolicies" in helpers.unwrap(body.get("type", ""))
        if rtype == "azapi_update_resource" and policy_type:
            assert helpers.unwrap(body["parent_id"]) == site_id, rname
            found[helpers.unwrap(body["name"])] = helpers.unwrap(body["body"])["properties"]["allow"]
    return found


def test_ftp_left_on_in_terraform_is_caught(terraform_copy, helpers):
    body = terraform_copy.resource("azapi_update_resource", "ftp_basic_auth")
    body["body"] = [{"properties": {"allow": True}}]
    assert terraform_basic_publishing(terraform_copy, helpers) != {"scm": False, "ftp": False}
    for block in terraform_copy.files.values():
        for named in block.get("resource", []):
            named.pop("azapi_update_resource", None)
    assert terraform_basic_publishing(terraform_copy, helpers) == {"scm": False}


def test_storage_is_keyless(bicep, terraform, helpers):
    storage, _, _ = helpers.bicep_resource_body(bicep.resource("modules/storage.bicep", "storage"))
    props = storage["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    account = terraform.resource("azurerm_storage_account", "main")
    assert helpers.unwrap(account["shared_access_key_enabled"]) is False
    assert helpers.unwrap(account["allow_nested_items_to_be_public"]) is False
    assert helpers.unwrap(account["min_tls_version"]) == "TLS1_2"


def test_azure_openai_is_keyless_with_one_deployment(bicep, terraform, helpers):
    account, _, _ = helpers.bicep_resource_body(bicep.resource("modules/openai.bicep", "account"))
    assert account["kind"] == "OpenAI"
    assert account["properties"]["disableLocalAuth"] is True
    assert account["properties"]["customSubDomainName"] == "name"
    deployments = [r for _, _, r in bicep.resources()
                   if helpers.bicep_resource_type(r) == "Microsoft.CognitiveServices/accounts/deployments"]
    assert len(deployments) == 1

    openai = terraform.resource("azurerm_cognitive_account", "openai")
    assert helpers.unwrap(openai["kind"]) == "OpenAI"
    assert helpers.unwrap(openai["local_auth_enabled"]) is False
    assert helpers.unwrap(openai["custom_subdomain_name"]) == "${local.openai_name}"
    assert len([1 for t, _, _ in terraform.resources() if t == "azurerm_cognitive_deployment"]) == 1


def test_monitoring_accepts_entra_only(bicep, terraform, helpers):
    insights, _, _ = helpers.bicep_resource_body(bicep.resource("modules/monitoring.bicep", "appInsights"))
    assert insights["properties"]["DisableLocalAuth"] is True
    workspace, _, _ = helpers.bicep_resource_body(bicep.resource("modules/monitoring.bicep", "logAnalytics"))
    assert workspace["properties"]["features"]["disableLocalAuth"] is True
    insights_tf = terraform.resource("azurerm_application_insights", "main")
    assert helpers.unwrap(insights_tf["local_authentication_disabled"]) is True
    workspace_tf = terraform.resource("azurerm_log_analytics_workspace", "main")
    assert helpers.unwrap(workspace_tf["local_authentication_enabled"]) is False


# ---- federated credentials -----------------------------------------------------------------------


def test_the_entra_app_trusts_the_managed_identity(bicep, terraform, helpers):
    credential = bicep.resource("modules/entra.bicep", "app__managedIdentityCredential")
    body, _, _ = helpers.bicep_resource_body(credential)
    assert body["audiences"] == ["api://AzureADTokenExchange"]
    assert body["issuer"] == "${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0"
    assert body["subject"] == "managedIdentityPrincipalId"
    entra_call = bicep.main["modules"]["entraApp"]["config"]["config"]["params"]
    assert helpers.expression_text(entra_call["managedIdentityPrincipalId"]) == "identity.outputs.principalId"

    fic = terraform.resource("azuread_application_federated_identity_credential", "managed_identity")
    assert helpers.unwrap(fic["audiences"]) == "api://AzureADTokenExchange"
    assert helpers.unwrap(fic["issuer"]) == (
        "https://login.microsoftonline.com/${data.azurerm_client_config.current.tenant_id}/v2.0"
    )
    assert helpers.unwrap(fic["subject"]) == "${azurerm_user_assigned_identity.gateway.principal_id}"
    assert helpers.unwrap(fic["application_id"]) == "${azuread_application.gateway[0].id}"


def test_the_kubernetes_credential_names_the_service_account(bicep, terraform, helpers):
    body, _, _ = helpers.bicep_resource_body(bicep.resource("modules/identity.bicep", "kubernetes"))
    subject = "system:serviceaccount:${kubernetesNamespace}:${kubernetesServiceAccount}"
    assert body["properties"]["subject"] == subject
    assert body["properties"]["audiences"] == ["api://AzureADTokenExchange"]
    assert body["properties"]["issuer"] == "kubernetesIssuer"

    fic = terraform.resource("azurerm_federated_identity_credential", "kubernetes")
    assert helpers.unwrap(fic["subject"]) == (
        "system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"
    )
    assert helpers.unwrap(fic["audience"]) == "api://AzureADTokenExchange"
    assert helpers.unwrap(fic["parent_id"]) == "${azurerm_user_assigned_identity.gateway.id}"


# ---- the optional AI Foundry resource ------------------------------------------------------------


def test_ai_foundry_is_optional_keyless_and_allows_projects(bicep, terraform, helpers):
    assert bicep.parameter_default("main.bicep", "createAiFoundry") is False
    assert terraform.variable_default("create_ai_foundry") is False
    account, _, _ = helpers.bicep_resource_body(bicep.resource(FOUNDRY_FILE, "account"))
    assert account["kind"] == "AIServices"
    assert account["properties"]["disableLocalAuth"] is True
    assert account["properties"]["allowProjectManagement"] is True
    assert account["properties"]["customSubDomainName"] == "name"
    assert account["identity"]["type"] == "SystemAssigned"

    foundry = terraform.resource("azurerm_cognitive_account", "foundry")
    assert helpers.unwrap(foundry["count"]) == "${var.create_ai_foundry ? 1 : 0}"
    assert helpers.unwrap(foundry["kind"]) == "AIServices"
    assert helpers.unwrap(foundry["local_auth_enabled"]) is False
    assert helpers.unwrap(foundry["project_management_enabled"]) is True
    assert helpers.unwrap(foundry["custom_subdomain_name"]) == "${local.foundry_name}"
    assert helpers.unwrap(helpers.unwrap(foundry["identity"])["type"]) == "SystemAssigned"


def test_ai_foundry_endpoint_is_an_output_empty_when_off(bicep, terraform, helpers):
    output = helpers.expression_text(bicep.main["outputs"]["AZURE_AI_FOUNDRY_ENDPOINT"]["value"])
    assert "createAiFoundry" in str(output) and "foundry.outputs.endpoint" in str(output)
    value = helpers.unwrap(terraform.outputs()["AZURE_AI_FOUNDRY_ENDPOINT"]["value"])
    assert value == '${var.create_ai_foundry ? azurerm_cognitive_account.foundry[0].endpoint : ""}'


# ---- the sealing key in Key Vault ----------------------------------------------------------------

KEY_VAULT_FILE = "modules/keyvault.bicep"
SEALING_KEY_SECRET = "gateway-sealing-key"


def test_the_key_vault_is_rbac_only_and_recoverable(bicep, terraform, helpers):
    vault, _, _ = helpers.bicep_resource_body(bicep.resource(KEY_VAULT_FILE, "vault"))
    props = vault["properties"]
    assert props["enableRbacAuthorization"] is True
    assert "accessPolicies" not in props
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["softDeleteRetentionInDays"] == 7
    assert props["publicNetworkAccess"] == "Enabled"  # as the storage account and Azure OpenAI

    vault_tf = terraform.resource("azurerm_key_vault", "main")
    assert helpers.unwrap(vault_tf["rbac_authorization_enabled"]) is True
    assert "access_policy" not in vault_tf and "enable_rbac_authorization" not in vault_tf
    assert helpers.unwrap(vault_tf["purge_protection_enabled"]) is True
    assert helpers.unwrap(vault_tf["soft_delete_retention_days"]) == 7
    assert helpers.unwrap(vault_tf["public_network_access_enabled"]) is True
    assert helpers.unwrap(vault_tf["name"]) == "${local.key_vault_name}"
    assert terraform.locals()["key_vault_name"] == "kv-${local.resource_token}"
    call = bicep.main["modules"]["keyVault"]["config"]["params"]
    assert call["name"] == "kv-${resourceToken}"


def test_the_sealing_key_is_written_through_resource_manager(bicep, terraform, helpers):
    """Both stacks create the same secret with a control-plane write: the deployer needs no data role."""
    secret, condition, _ = helpers.bicep_resource_body(bicep.resource(KEY_VAULT_FILE, "sealingKeySecret"))
    assert condition == "createSealingKey"
    call = bicep.main["modules"]["keyVault"]["config"]["params"]
    assert helpers.expression_text(call["createSealingKey"]) == "<not bool_value=empty(sealingKey)>"
    assert bicep.variable(KEY_VAULT_FILE, secret["name"]) == SEALING_KEY_SECRET
    assert secret["parent"] == "vault"
    assert secret["properties"] == {"value": "sealingKey", "contentType": "base64"}
    assert call["sealingKey"] == "sealingKey"

    secret_tf = terraform.resource("azapi_resource", "sealing_key")
    assert helpers.unwrap(secret_tf["type"]).startswith("Microsoft.KeyVault/vaults/secrets@")
    assert helpers.unwrap(secret_tf["name"]) == SEALING_KEY_SECRET
    assert helpers.unwrap(secret_tf["parent_id"]) == "${azurerm_key_vault.main.id}"
    assert helpers.unwrap(secret_tf["body"])["properties"] == {
        "value": "${random_bytes.sealing_key.base64}", "contentType": "base64",
    }
    # 32 bytes: the least GATEWAY_SEALING_KEY accepts (shared/settings.py).
    assert helpers.unwrap(terraform.resource("random_bytes", "sealing_key")["length"]) == 32
    assert not [n for t, n, _ in terraform.resources() if t == "azurerm_key_vault_secret"]


def test_the_app_resolves_references_with_its_managed_identity(bicep, terraform, helpers):
    site, _, _ = helpers.bicep_resource_body(bicep.resource("modules/functionapp.bicep", "site"))
    assert helpers.expression_text(site["properties"]["keyVaultReferenceIdentity"]) == "identity.id"

    action = terraform.resource("azapi_resource_action", "key_vault_reference_identity")
    assert helpers.unwrap(action["resource_id"]) == "${azurerm_function_app_flex_consumption.gateway.id}"
    assert helpers.unwrap(action["method"]) == "PATCH"
    assert helpers.unwrap(action["type"]).startswith("Microsoft.Web/sites@")
    assert helpers.unwrap(action["body"]) == {
        "properties": {"keyVaultReferenceIdentity": "${azurerm_user_assigned_identity.gateway.id}"},
    }
    # The app waits for its read access, as it does for its storage roles.
    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    depends = str(helpers.unwrap(app["depends_on"]))
    assert "azurerm_role_assignment.identity_key_vault_secrets_user" in depends


def test_no_output_reads_the_sealing_key(bicep, terraform, helpers):
    for file, document in bicep.files.items():
        for name, spec in (document.get("outputs") or {}).items():
            assert not re.search(r"\bsealingKey\b", str(spec["value"])), f"{file}: output {name}"
    for name, spec in terraform.outputs().items():
        assert "random_bytes" not in str(helpers.unwrap(spec["value"])), name
    output = helpers.expression_text(bicep.main["outputs"]["AZURE_KEY_VAULT_NAME"]["value"])
    assert output == "keyVault.outputs.name"
    vault_name = helpers.unwrap(terraform.outputs()["AZURE_KEY_VAULT_NAME"]["value"])
    assert vault_name == "${azurerm_key_vault.main.name}"


def test_a_deployer_role_on_the_vault_is_caught(bicep_copy, helpers):
    roles = bicep_copy.files["modules/roles.bicep"]["resources"]
    extra = copy.deepcopy(roles["identityKeyVaultSecretsUser"])
    extra["config"]["properties"]["principalId"] = "deployerPrincipalId"
    roles["deployerKeyVaultSecretsUser"] = extra
    assert bicep_roles(bicep_copy, helpers) != EXPECTED_ROLES

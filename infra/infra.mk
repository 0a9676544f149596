# Offline checks of the infrastructure code, included by the Makefile (`include infra/infra.mk`).
#
#   make test-infra   terraform fmt -check (where terraform is installed), every .bicep file parsed,
#                     checkov on both stacks with custom policies and justified skips, and structural
#                     tests comparing the Bicep and Terraform stacks with each other and with
#                     shared/settings.py. See infra/README.md.
#
# checkov pins clash with the gateway's own dependencies, so everything runs in .venv-infra. A stamp
# file makes the install happen once, and again only when requirements-infra.txt or this file changes.
#
# The provider schemas (tests/infra/test_provider_schema.py): the pinned prebuilt provider packages of
# infra/provider-schemas.txt (~47 MB of wheels, hash-checked) are downloaded once, reduced to
# .venv-infra/provider-schemas/<provider>.json (~0.7 MB) and deleted; nothing is installed.

INFRA_VENV          ?= .venv-infra
INFRA_PYTHON        := $(INFRA_VENV)/bin/python
INFRA_STAMP         := $(INFRA_VENV)/.installed
INFRA_PYCEP_VERSION := 0.7.1
INFRA_PIP           := $(INFRA_PYTHON) -m pip --disable-pip-version-check
INFRA_SCHEMAS       := $(INFRA_VENV)/provider-schemas
INFRA_SCHEMA_STAMP  := $(INFRA_SCHEMAS)/.installed

.PHONY: test-infra infra-venv

# checkov 3.3.30 pins pycep-parser 0.5.1, which cannot parse Bicep's `extension` keyword: 0.7.1 is
# installed over it with --no-deps, after checkov.
$(INFRA_STAMP): requirements-infra.txt infra/infra.mk
	@test -x $(INFRA_PYTHON) || python3 -m venv $(INFRA_VENV)
	$(INFRA_PIP) install --quiet -r requirements-infra.txt
	$(INFRA_PIP) install --quiet --no-deps pycep-parser==$(INFRA_PYCEP_VERSION)
	@touch $@

$(INFRA_SCHEMA_STAMP): $(INFRA_STAMP) infra/provider-schemas.txt tests/infra/provider_schema.py
	rm -rf $(INFRA_SCHEMAS)
	$(INFRA_PIP) download --quiet --no-deps --require-hashes -r infra/provider-schemas.txt -d $(INFRA_SCHEMAS)/wheels
	$(INFRA_PYTHON) tests/infra/provider_schema.py $(INFRA_SCHEMAS)/wheels $(INFRA_SCHEMAS)
	rm -rf $(INFRA_SCHEMAS)/wheels
	@touch $@

infra-venv: $(INFRA_STAMP) $(INFRA_SCHEMA_STAMP)

# --confcutdir keeps pytest from loading tests/conftest.py, which needs the gateway's dependencies.
test-infra: $(INFRA_STAMP) $(INFRA_SCHEMA_STAMP)
	INFRA_PROVIDER_SCHEMAS=$(INFRA_SCHEMAS) $(INFRA_PYTHON) -m pytest tests/infra -q -p no:cacheprovider --confcutdir=tests/infra

# The two commands of the README, and a few more for people who run them by hand. `make` lists them.
PYTHON ?= .venv/bin/python
PYTEST ?= .venv/bin/pytest
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))
HOST_SHELL := $(shell find programs -name '*.sh' 2>/dev/null | sort)

.DEFAULT_GOAL := help
.PHONY: help sandbox sandbox-preview sandbox-ssh sandbox-down test test-fast lint typecheck bench policy plan plans plan-diff

help:  ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

sandbox:  ## set up what is missing, preview, apply what changed in Pulumi.sandbox.yaml, print the endpoints
	scripts/bootstrap
	$(PYTHON) -m offline.quickstart up

sandbox-preview:  ## what `make sandbox` would change on the running sandbox hosts
	$(PYTHON) -m offline.quickstart preview

sandbox-ssh:  ## a root shell on a sandbox host (HOST=client, mirror, registry or bastion)
	$(PYTHON) -m offline.quickstart ssh $(or $(HOST),client)

sandbox-down:  ## stop the sandbox hosts and the upstream fixture, forget the sandbox's state
	$(PYTHON) -m offline.quickstart down

test:  ## every test: renderers, stacks under mocks, end to end on sandbox hosts
	scripts/bootstrap
	$(PYTEST) -q

test-fast:  ## everything but the end-to-end tests
	$(PYTEST) -q -m "not e2e"

lint:  ## ruff over the Python, shellcheck over every program that runs on a host
	$(PYTHON) -m ruff check .
	$(if $(HOST_SHELL),shellcheck --norc $(HOST_SHELL))

typecheck:  ## mypy over every package, tests included
	$(PYTHON) -m mypy

bench:  ## benchmarks (on demand, not in CI)
	$(PYTHON) bench/registry_fill.py
	$(PYTHON) bench/mirror_update.py
	$(PYTHON) bench/bundle.py
	$(PYTHON) bench/discover.py

policy:  ## every policy over every shipped stack (or STACK=<env>); non-zero on a mandatory violation
	$(PYTHON) -m policy.offline $(STACK)

plan:  ## the deterministic plan of STACK=<env> (every resource and its inputs, secrets masked) to plans/
	@test -n "$(STACK)" || { echo "usage: make plan STACK=<env>  (one of: $(STACKS))"; exit 2; }
	$(PYTHON) -m review.plan $(STACK) --out plans/$(STACK).yaml
	@echo "plans/$(STACK).yaml"

plans:  ## regenerate every committed plan (plans/<env>.yaml); commit them with the change that moved them
	@for stack in $(STACKS); do $(PYTHON) -m review.plan $$stack --out plans/$$stack.yaml || exit 1; echo "plans/$$stack.yaml"; done

plan-diff:  ## Markdown diff of every stack's plan between BASE=<git ref> and the working tree
	@test -n "$(BASE)" || { echo "usage: make plan-diff BASE=<git ref>  [STACK=<env>]"; exit 2; }
	$(PYTHON) -m review.plan diff --base $(BASE) $(STACK)

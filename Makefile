# The two commands of the README, and a few more for people who run them by hand.
PYTHON ?= .venv/bin/python
PYTEST ?= .venv/bin/pytest

.PHONY: sandbox sandbox-down test test-fast bench policy plan plan-diff

sandbox:  ## set everything up, apply the sandbox stack to sandbox hosts, print the endpoints
	scripts/bootstrap
	$(PYTHON) -m tests.harness.quickstart up

sandbox-down:  ## stop the sandbox hosts and the upstream fixture
	$(PYTHON) -m tests.harness.quickstart down

test:  ## every test: renderers, stacks under mocks, end to end on sandbox hosts
	scripts/bootstrap
	$(PYTEST) -q

test-fast:  ## everything but the end-to-end tests
	$(PYTEST) -q -m "not e2e"

bench:  ## benchmarks (on demand, not in CI)
	$(PYTHON) bench/registry_fill.py
	$(PYTHON) bench/mirror_update.py
	$(PYTHON) bench/bundle.py

policy:  ## every policy over every shipped stack (or STACK=<env>); non-zero on a mandatory violation
	$(PYTHON) -m policy.offline $(STACK)

plan:  ## the deterministic plan of STACK=<env> (every resource and its inputs, secrets masked) to plans/
	@test -n "$(STACK)" || { echo "usage: make plan STACK=<env>  (one of: $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml)))"; exit 2; }
	$(PYTHON) -m review.plan $(STACK) --out plans/$(STACK).yaml
	@echo "plans/$(STACK).yaml"

plan-diff:  ## Markdown diff of every stack's plan between BASE=<git ref> and the working tree
	@test -n "$(BASE)" || { echo "usage: make plan-diff BASE=<git ref>  [STACK=<env>]"; exit 2; }
	$(PYTHON) -m review.plan diff --base $(BASE) $(STACK)

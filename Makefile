# The two commands of the README, and a few more for people who run them by hand.
PYTHON ?= .venv/bin/python
PYTEST ?= .venv/bin/pytest

.PHONY: sandbox sandbox-down test test-fast bench

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

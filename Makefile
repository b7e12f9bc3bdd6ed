# The front door. `make run` benchmarks the offline default; `make test` runs every test.
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= bench.yaml
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml scripts/install.sh | sha1sum | cut -c1-12)

.PHONY: install install-dev run test lint typecheck check clean stack-k8s dashboard stop

$(VENV)/.installed-%:
	EXTRAS=dev bash scripts/install.sh
	rm -f $(VENV)/.installed-*
	touch $@

install install-dev: $(STAMP)

run: $(STAMP)
	$(PY) run.py --config $(CONFIG) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Both dashboards on the stores of CONFIG's runs (python -m llmbench.dashboard); `make stop` ends them.
ZENML_PORT ?= 8237
MLFLOW_PORT ?= 5000
dashboard: $(STAMP)
	$(PY) -m llmbench.dashboard start --config $(CONFIG) --zenml-port $(ZENML_PORT) --mlflow-port $(MLFLOW_PORT)

stop: $(STAMP)
	$(PY) -m llmbench.dashboard stop

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

# The Kubernetes stack (stacks/kubernetes.yaml, placeholders filled in) with the provider-keys
# secret attached; create the secrets first (see the file). Then: run.py --stack llmbench-k8s
stack-k8s: $(STAMP)
	$(VENV)/bin/zenml stack import stacks/kubernetes.yaml
	$(VENV)/bin/zenml stack update llmbench-k8s --secret llmbench_provider_keys

clean:
	rm -rf results .pytest_cache .mypy_cache .ruff_cache

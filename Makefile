# The front door. `make run` benchmarks the offline default; `make test` runs every test.
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= bench.yaml
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock scripts/install.sh scripts/build_llama_server.sh scripts/lock_llama.sh | sha1sum | cut -c1-12)

.PHONY: install install-dev run test lint typecheck check clean stack-k8s dashboard stop lock \
	test-latest-sdks

$(VENV)/.installed-%:
	bash scripts/install.sh
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

# requirements.lock from pyproject.toml: every package of the run and the tests, hashed, for any
# OS on Python 3.11. Pins already in the lock are kept; to move one package:
#   make lock LOCK_ARGS="--upgrade-package anthropic"   (or --upgrade for all), then make test
# torch is locked to its CPU build, which PyPI does not serve: uv reads it from the machine's
# wheel folder where there is one, else from PyTorch's CPU index.
TORCH_SOURCE ?= $(if $(wildcard /opt/wheels/torch-*+cpu-*.whl),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --quiet -o requirements.lock \
		$(TORCH_SOURCE) $(LOCK_ARGS)

# The provider tests on the newest SDK releases that pyproject.toml's ranges allow (what a user
# who installs without the lock gets), in a separate venv: says early which range to narrow.
SDK_TESTS := tests/integration/test_provider_server.py tests/integration/test_providers.py \
	tests/integration/test_openai_fast_path.py tests/integration/test_reliability.py \
	tests/integration/test_workers.py tests/integration/test_judge.py tests/integration/test_cloud_e2e.py
test-latest-sdks:
	bash scripts/latest_sdks.sh $(SDK_TESTS) $(PYTEST_ARGS)

# The Kubernetes stack (stacks/kubernetes.yaml, placeholders filled in) with the provider-keys
# secret attached; create the secrets first (see the file). Then: run.py --stack llmbench-k8s
stack-k8s: $(STAMP)
	$(VENV)/bin/zenml stack import stacks/kubernetes.yaml
	$(VENV)/bin/zenml stack update llmbench-k8s --secret llmbench_provider_keys

clean:
	rm -rf results .pytest_cache .mypy_cache .ruff_cache .venv-latest-sdks

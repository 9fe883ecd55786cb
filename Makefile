# The one list of commands. `make serve` installs and starts the platform; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install serve test test-fast lint format bench engines vllm-env triton-env medvae-ref-env merlin-ref-env radeval-ref-env browser helm-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[worker,dev]'
	touch $@

serve: install
	$(BIN)/medserve serve

# Engines that tests talk to for real, each in its own environment (their pins clash with ours).
engines: vllm-env triton-env medvae-ref-env merlin-ref-env radeval-ref-env browser

vllm-env:
	bash scripts/vllm_env.sh

triton-env:
	bash scripts/triton_env.sh

medvae-ref-env:
	bash scripts/medvae_ref_env.sh

merlin-ref-env:
	bash scripts/merlin_ref_env.sh

radeval-ref-env:
	bash scripts/radeval_ref_env.sh

# Headless Chromium renders /docs in a test (Debian package; needs root, as on CI).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the /docs rendering test will say so and skip"

test: install engines
	$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install engines
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/roentgen.py
	$(BIN)/python bench/medvae.py
	$(BIN)/python bench/medval.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/scale.py

helm-check:
	bash scripts/helm_check.sh

clean:
	rm -rf var bench/results .pytest_cache .mypy_cache .ruff_cache

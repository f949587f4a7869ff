# The two commands of the README. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tools fetched from PyPI by version (not in the lock): pip itself and uv, which writes the lock.
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
# The lock is for the platform of CI and the Docker image.
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

.PHONY: run run-https demo test lint bench clean lock sbom

# Exactly the locked versions, each checked against its hash; then the project itself.
$(STAMP): pyproject.toml requirements.lock server/media/_sink.c
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need Python 3.11 on PATH"; exit 1; }
	@echo "Installing into $(VENV) (the first time takes a minute)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	@$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)

# After a change to pyproject.toml's dependencies: versions already locked are kept where they
# still fit. `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed.
lock: $(BIN)/uv  ## uv uses the system's CA certificates (UV_NATIVE_TLS), as pip is configured to
	UV_NATIVE_TLS=1 $(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes $(LOCK_TARGET) \
		--custom-compile-command "make lock" -q -o requirements.lock $(LOCK_ARGS)

# The demo logs warnings only (PORCHLIGHT_LOG_LEVEL overrides), so its banner stays the last
# lines on the screen: the URL, the logins, the links and what to do first.
run: $(STAMP)  ## the server with a demo clinic, on its embedded Redis
	@PORCHLIGHT_LOG_LEVEL=$${PORCHLIGHT_LOG_LEVEL:-WARNING} $(BIN)/porchlight demo

run-https: $(STAMP)  ## the same, on this machine's network address over https, to try from a phone
	@PORCHLIGHT_LOG_LEVEL=$${PORCHLIGHT_LOG_LEVEL:-WARNING} $(BIN)/porchlight demo --https

serve: $(STAMP)
	$(BIN)/porchlight serve

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check server tests bench tools
	$(BIN)/mypy
	$(BIN)/mypy tools
	$(BIN)/lint-imports  # the direction of imports: [tool.importlinter] in pyproject.toml

# A CycloneDX SBOM of the runtime dependencies as installed (the locked versions).
sbom: $(STAMP)
	$(BIN)/python -m tools.thirdparty sbom --out sbom.cdx.json

bench: $(STAMP)
	$(BIN)/python -m bench.waiting_room

clean:
	rm -rf $(VENV) porchlight-data

# The two commands a newcomer needs: `make run` and `make test`.  Everything else here is what
# those two install on first use, so that a fresh clone needs nothing installed by hand.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The virtualenv is rebuilt when pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test sandbox bench browser tools clean

run: $(STAMP)
	$(BIN)/frontdesk run

test: $(STAMP) browser tools
	$(BIN)/pytest $(PYTEST_ARGS)

sandbox: $(STAMP)
	$(BIN)/frontdesk sandbox

bench: $(STAMP)
	$(BIN)/python bench/store.py

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

# The browser tests drive Debian's chromium (Playwright's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The deployment-file tests render the manifests and the compose file with the real tools: kubectl
# (its built-in kustomize; the machine image has it, Debian's kubernetes-client is the fallback) and
# Debian's docker-compose (`config` needs no Docker daemon).  hadolint comes with the test extras.
tools:
	@missing=""; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing for the deployment-file tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache

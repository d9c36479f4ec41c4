# Two commands: `make run` (the whole app on embedded defaults) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help run test install install-dev translations messages lint format clean

help:
	@echo "make run    install, migrate, load demo data, start web + worker + beat"
	@echo "make test   install test tools, lint, run the whole test suite"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the pinned requirements change.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Compile the ja/en catalogues with Babel (no GNU gettext needed on the machine).
translations: $(VENV)/.installed
	$(BIN)/pybabel compile --domain django --directory locale --statistics

# Refresh the catalogues from the source (needs GNU gettext's xgettext) and complete the
# English one; then translate the new entries of locale/ja/LC_MESSAGES/django.po.
messages: $(VENV)/.installed
	DEBUG=true $(BIN)/python manage.py makemessages --locale ja --locale en --no-obsolete --ignore '.venv/*' --ignore 'staticfiles/*'
	DEBUG=true $(BIN)/python manage.py fill_english_catalogue

# Local development settings for `python manage.py ...` as well as `make run`; created once,
# never committed (see README "Configuration"). Production sets real variables instead.
.env:
	@printf '# Local development settings (make run created this file; it is not committed).\nDEBUG=true\n' > $@
	@echo "Created .env with DEBUG=true for local development."

run: export DEBUG ?= true
run: install translations .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_demo
	$(BIN)/python manage.py runall

test: install-dev translations
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .run staticfiles .pytest_cache .ruff_cache

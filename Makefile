PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test venv dev-deps migrate worker beat lint messages check-migrations bench

$(BIN)/activate: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

venv: $(BIN)/activate

$(VENV)/.dev-deps: $(BIN)/activate requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.dev-deps

dev-deps: $(VENV)/.dev-deps

migrate: venv
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py seed_demo --once
	$(PY) manage.py ensure_admin
	DEBUG=true $(PY) manage.py run_all

test: dev-deps
	$(BIN)/pytest

lint: dev-deps
	$(BIN)/ruff check .

check-migrations: venv
	$(PY) manage.py makemigrations --check --dry-run

worker: venv
	$(BIN)/celery -A config worker --loglevel=info

beat: venv
	$(BIN)/celery -A config beat --loglevel=info

messages: venv
	$(PY) manage.py makemessages -l zh_Hans --no-obsolete --ignore=.venv --ignore=tests --ignore=bench
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv

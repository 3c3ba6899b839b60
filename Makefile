# Everything a newcomer or CI needs: `make run` serves the demo, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run demo test homologation lint types check bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# A fresh encryption key for this checkout's embedded database; never committed (.gitignore).
.env:
	@echo "CONNECTOR_ENCRYPTION_KEYS=$$($(BIN)/connector keys generate)" > .env
	@echo "CONNECTOR_TEST_SUITE_MERCHANT=demo" >> .env
	@echo "CONNECTOR_CALLBACK_ALLOW_LOOPBACK=true" >> .env
	@echo "CONNECTOR_WEBHOOK_SECRET=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')" >> .env
	@echo "CONNECTOR_REDIRECT_PAYMENT_METHODS=RedirectPay" >> .env
	@echo "CONNECTOR_PAYMENT_METHODS=Visa,Mastercard,American Express,Elo,BankInvoice,Pix,RedirectPay" >> .env
	@echo "CONNECTOR_BLIND_INDEX_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env
	@echo "CONNECTOR_ADMIN_TOKEN=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env
	@echo "wrote .env with a new encryption key"

run: install .env
	$(BIN)/connector migrate
	@echo "Demo merchant credentials (send them as X-VTEX-API-AppKey / X-VTEX-API-AppToken):"
	$(BIN)/connector merchants demo
	$(BIN)/connector serve --host $(HOST) --port $(PORT)

# The connector against a fake provider core and a fake VTEX Secure Proxy (README, "make demo").
demo: install
	$(BIN)/python -m homologation.demo $(ARGS)

test: install
	$(BIN)/pytest

# The whole homologation suite (VTEX's scenarios + Schemathesis) against the service, started on a
# temporary SQLite database; reports in build/. `DATABASE_URL=postgresql+asyncpg://...` for another.
homologation: install
	$(BIN)/homologation local $(if $(DATABASE_URL),--database-url $(DATABASE_URL)) \
		--junit build/homologation.xml --html build/homologation.html \
		--service-log build/homologation-service.log $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check connector protocol homologation

types: install
	$(BIN)/mypy

check: lint types test

bench: install
	$(BIN)/python -m tests.load.bench_mix --database sqlite postgresql
	$(BIN)/python tests/load/bench_authorize.py --database sqlite
	$(BIN)/python tests/load/bench_authorize.py --database postgresql
	$(BIN)/python tests/load/bench_callbacks.py
	$(BIN)/python -m tests.load.bench_giftcards
	$(BIN)/python -m tests.load.bench_antifraud

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The two commands a new machine needs; both set up .venv/ first.
.PHONY: run test setup lint

setup:
	./scripts/bootstrap.sh

run: setup
	.venv/bin/hgq-rtl run --dataset digits --out runs/digits

test: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

PY := .venv/bin/python

.PHONY: venv run test bench migrate

venv:
	@scripts/bootstrap

migrate: venv
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py serve

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

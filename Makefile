PY := .venv/bin/python

.PHONY: venv run test bench soak migrate messages

venv:
	@scripts/bootstrap

migrate: venv
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py serve

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py $(BENCH)

# 30 minutes of mixed tasks from 10 visitors against a real `manage.py serve` (not in CI); set
# SOAK_MINUTES to shorten. Prints a report and appends it to bench/SOAK.md.
soak: venv
	$(PY) bench/soak.py

# Update the Chinese catalogue after changing user-visible strings (needs gettext), then
# translate the new entries in locale/zh_Hans/LC_MESSAGES/django.po and commit both files.
messages: venv
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=tests --ignore=var --ignore=bench --ignore=.cache
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv --ignore=.cache

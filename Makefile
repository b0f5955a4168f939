PY := .venv/bin/python

.PHONY: venv run test bench migrate messages

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

# Update the Chinese catalogue after changing user-visible strings (needs gettext), then
# translate the new entries in locale/zh_Hans/LC_MESSAGES/django.po and commit both files.
messages: venv
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=tests --ignore=var --ignore=bench
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv

"""Workers and the scheduler are started lean: without the apps only the web process uses, and
without the system checks (which would import the URLconf), so a worker's every fork copies less."""

import json
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import ROOT, subprocess_env

WEB_ONLY = ("daphne", "twisted", "ninja", "pydantic")


def web_only_modules():
    """A job: which of the web-only packages its worker had imported (a horse inherits them)."""
    return sorted(name for name in WEB_ONLY if name in sys.modules)


def run_in_burst_worker(redis_conn, argv, **env):
    from rq import Queue

    job = Queue("low", connection=redis_conn).enqueue("tests.test_process_roles.web_only_modules")
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *argv, "--burst", "-v", "0"], cwd=ROOT,
                          env=subprocess_env(env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", job.latest_result()
    return job.return_value()


def scheduler_round_imports(**env):
    """The web-only packages one round of the scheduler imported (python -X importtime lists each)."""
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "manage.py"), "taskscheduler", "--once"],
                          cwd=ROOT, env=subprocess_env(env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "django.db.models" in imported  # it did import and run
    imported |= {name.split(".")[0] for name in imported}  # a package is not always listed itself
    return sorted(name for name in WEB_ONLY if name in imported)


@pytest.mark.django_db(transaction=True)
def test_a_worker_leaves_out_what_only_the_web_process_uses(redis_conn):
    assert run_in_burst_worker(redis_conn, ["worker"]) == []
    # rqworker gets the same apps, but its checks import the URLconf (the API's ninja and pydantic).
    assert "daphne" not in run_in_burst_worker(redis_conn, ["rqworker", "low"])


@pytest.mark.django_db(transaction=True)
def test_the_same_worker_run_as_the_web_process_has_them_all(redis_conn):
    """The control: what the test above looks for is there when the role says web."""
    assert run_in_burst_worker(redis_conn, ["worker"], MEDIACRAFT_PROCESS="web") == sorted(WEB_ONLY)


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_leaves_them_out_too(redis_conn):
    assert scheduler_round_imports() == []
    assert scheduler_round_imports(MEDIACRAFT_PROCESS="web") == sorted(WEB_ONLY)


def test_the_web_process_has_its_apps_and_a_bad_role_is_refused():
    assert settings.PROCESS == "web" and {"daphne", "ninja"} <= set(settings.INSTALLED_APPS)
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT, capture_output=True,
                          text=True, env=subprocess_env({"MEDIACRAFT_PROCESS": "horse"}), timeout=60)
    assert done.returncode != 0 and "MEDIACRAFT_PROCESS must be web or background, got 'horse'" in done.stderr


WEB_HEAP = """
import gc, json, sys
import mediacraft.asgi
print(json.dumps({"walked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
                  "urlconf": "tasks.api" in sys.modules}))
"""


def test_the_web_process_leaves_what_start_up_built_out_of_full_collections():
    """A full garbage collection walks every object it tracks, a stall of the whole web process:
    the application's module freezes what start-up built (the URLconf included), so that a full
    pass walks only what came after."""
    done = subprocess.run([sys.executable, "-c", WEB_HEAP], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=subprocess_env({"DJANGO_SETTINGS_MODULE": "mediacraft.settings"}))
    assert done.returncode == 0, done.stderr[-2000:]
    heap = json.loads(done.stdout.splitlines()[-1])
    assert heap["urlconf"]
    assert heap["frozen"] > 50_000
    assert heap["walked"] < heap["frozen"] / 20

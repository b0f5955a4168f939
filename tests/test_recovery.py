"""Crashes lose nothing: a killed work horse or worker, a Redis that forgot its jobs, retries
with backoff, and the reconciler that repairs it all."""

import os
import signal
import time
from datetime import timedelta

import psutil
from django.utils import timezone

from tasks import services
from tasks.models import CommandTemplate, Task
from tests.conftest import submit_command, wait_for
from tests.test_engine_lifecycle import _alive, _read_pid, wait_status

S = Task.Status


def horse_of(worker_proc):
    """The work horse: the worker's forked child (same command line), not the tool it runs."""
    def find():
        for child in psutil.Process(worker_proc.pid).children():
            if "manage.py worker" in " ".join(child.cmdline()):
                return child
        return None

    return wait_for(find, 15, message="work horse")


def test_it_retries_when_the_work_horse_is_killed(workers, scheduler, alice, tool):
    CommandTemplate.objects.filter(pk=tool.pk).update(max_attempts=3)
    (worker,) = workers(1)
    scheduler()
    task = submit_command(alice, steps=30, sleep=0.1, child=True)
    first_child = wait_for(lambda: _read_pid(task), 15, message="child pid")
    os.kill(horse_of(worker).pid, signal.SIGKILL)
    wait_for(lambda: not _alive(first_child), 5, message="the killed horse's tool to die")
    task = wait_status(task, [S.RETRYING, S.QUEUED, S.RUNNING, S.COMPLETED], 5)
    task = wait_status(task, S.COMPLETED, 30)
    assert task.attempts == 2
    assert task.error_code == ""  # a successful retry clears the old error
    assert "retrying" in [e.get("status") for e in task.timeline]


def test_it_fails_with_worker_lost_when_attempts_are_used_up(workers, scheduler, alice, tool):
    (worker,) = workers(1)
    task = submit_command(alice, steps=100, sleep=0.1)
    wait_status(task, S.RUNNING)
    os.kill(horse_of(worker).pid, signal.SIGKILL)
    task = wait_status(task, S.FAILED, 10)
    assert task.error_code == "worker_lost"
    assert task.attempts == 1 == task.max_attempts


def test_it_recovers_a_task_whose_worker_was_killed(workers, scheduler, alice, tool):
    CommandTemplate.objects.filter(pk=tool.pk).update(max_attempts=2)
    (worker,) = workers(1)
    scheduler()
    task = submit_command(alice, steps=40, sleep=0.1, child=True)
    child = wait_for(lambda: _read_pid(task), 15, message="child pid")
    horse = horse_of(worker)
    tool_procs = [p for p in horse.children(recursive=True)]
    killed_at = time.monotonic()
    os.kill(worker.pid, signal.SIGKILL)
    # The horse notices its worker is gone and takes its whole process group with it.
    wait_for(lambda: not _alive(horse.pid) and not _alive(child), 5, message="horse and tool to die")
    assert not any(_alive(p.pid) for p in tool_procs)
    wait_status(task, [S.RETRYING, S.QUEUED], 30)
    assert time.monotonic() - killed_at < 30
    workers(1)
    task = wait_status(task, S.COMPLETED, 30)
    assert task.attempts == 2


def test_it_requeues_queued_tasks_that_redis_lost(workers, alice, tool, redis_conn):
    task = submit_command(alice, steps=1)
    assert Task.objects.get(pk=task.pk).status == S.QUEUED
    redis_conn.flushdb()  # Redis restarted without its data
    Task.objects.filter(pk=task.pk).update(queued_at=timezone.now() - timedelta(seconds=30))
    done = services.reconcile()
    assert done["requeued"] == 1
    workers(1)
    wait_status(task, S.COMPLETED)


def test_it_marks_running_tasks_without_heartbeat_as_lost(transactional_db, alice, tool, redis_conn):
    CommandTemplate.objects.filter(pk=tool.pk).update(max_attempts=2)
    task = submit_command(alice, steps=1)
    assert services.task_mark_running(task_id=task.pk, worker_name="gone")
    Task.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    done = services.reconcile()
    assert done["lost"] == 1
    task = Task.objects.get(pk=task.pk)
    assert task.status == S.RETRYING
    assert task.error_code == "worker_lost"
    assert task.message_params["attempt"] == 2
    # Backoff: not admitted before retry_at, admitted after.
    assert task.retry_at > timezone.now()
    services.dispatch()
    assert Task.objects.get(pk=task.pk).status == S.RETRYING
    Task.objects.filter(pk=task.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    services.dispatch()
    assert Task.objects.get(pk=task.pk).status == S.QUEUED


def test_it_backs_off_exponentially_with_jitter(settings):
    settings.MEDIACRAFT_RETRY_BASE_SECONDS = 10
    settings.MEDIACRAFT_RETRY_MAX_SECONDS = 100
    for attempt, (low, high) in {1: (5, 10), 2: (10, 20), 3: (20, 40), 6: (50, 100)}.items():
        delays = {services.retry_delay(attempt) for _ in range(50)}
        assert all(low <= d <= high for d in delays)
        assert len(delays) > 1  # jitter


def test_it_cancels_a_running_task_even_if_the_stop_command_is_lost(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=1000, sleep=0.1, child=True)
    child = wait_for(lambda: _read_pid(task), 15, message="child pid")
    # Ask for the cancel in the database only, as if the stop command never reached the worker.
    Task.objects.filter(pk=task.pk).update(cancel_requested_at=timezone.now())
    task = wait_status(task, S.CANCELLED, 10)
    wait_for(lambda: not _alive(child), 5, message="tool to die")


def test_a_horse_killed_past_its_timeout_ends_as_timeout_not_as_lost(transactional_db, alice, tool, redis_conn):
    """RQ kills a horse a minute past its job timeout when the timeout exception did not end it
    (some broad `except` swallowed it): the task timed out and its leftovers go; a horse killed
    within its time is a lost worker, retried."""
    from rq.job import Job
    from rq.utils import now

    from tasks.runtime import task_work_dir
    from tasks.worker import TaskWorker

    CommandTemplate.objects.filter(pk=tool.pk).update(max_attempts=2)
    worker = TaskWorker(["default"], connection=redis_conn)
    outcomes = {}
    for name, ran_for in (("overran", 3 + 61), ("in time", 1)):
        task = submit_command(alice, steps=1, timeout=3)
        assert services.task_mark_running(task_id=task.pk, worker_name="w")
        partial = task_work_dir(task.pk) / "output" / "partial.bin"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"x")
        job = Job.fetch(str(task.pk), connection=redis_conn)
        job.started_at = now() - timedelta(seconds=ran_for)
        worker.handle_work_horse_killed(job, retpid=0, ret_val=9, rusage=None)
        outcomes[name] = (Task.objects.get(pk=task.pk), partial.exists())
    task, left = outcomes["overran"]
    assert (task.status, task.error_code, task.error_params, left) == (S.TIMEOUT, "timeout", {"timeout": 3}, False)
    task, left = outcomes["in time"]
    assert (task.status, task.error_code) == (S.RETRYING, "worker_lost")


def test_cancelling_a_task_waiting_to_retry_removes_what_its_lost_run_left(transactional_db, alice, tool, redis_conn):
    from tasks.runtime import task_work_dir

    CommandTemplate.objects.filter(pk=tool.pk).update(max_attempts=3)
    task = submit_command(alice, steps=1)
    assert services.task_mark_running(task_id=task.pk, worker_name="gone")
    partial = task_work_dir(task.pk) / "output" / "partial.bin"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    assert services.task_mark_lost(task_id=task.pk, detail="killed")
    assert Task.objects.get(pk=task.pk).status == S.RETRYING and partial.exists()  # the next attempt's to take over
    services.task_cancel(task=Task.objects.get(pk=task.pk))
    assert Task.objects.get(pk=task.pk).status == S.CANCELLED
    assert not partial.exists()


def test_a_job_that_keeps_failing_before_its_task_starts_is_put_back_a_few_times_then_fails(
        transactional_db, alice, tool, redis_conn):
    """Its job fails before the task is marked running (the horse died at start, the database refused
    mark_running): the reconciler puts it back, MAX_START_RESTARTS times, then fails the task with
    the job's error instead of looping for ever."""
    from rq.job import Job, JobStatus
    from rq.results import Result

    task = submit_command(alice, steps=1)
    for round_ in range(services.MAX_START_RESTARTS + 1):
        job = Job.fetch(str(task.pk), connection=redis_conn)
        assert job.meta["restarts"] == round_
        job.set_status(JobStatus.FAILED)
        Result.create_failure(job, 600, "OperationalError: database is locked")
        Task.objects.filter(pk=task.pk).update(queued_at=timezone.now() - timedelta(seconds=30))
        done = services.reconcile()
        if round_ < services.MAX_START_RESTARTS:
            assert (done["requeued"], done["failed"]) == (1, 0)
            assert Job.fetch(str(task.pk), connection=redis_conn).get_status() == JobStatus.QUEUED
    assert (done["requeued"], done["failed"]) == (0, 1)
    task = Task.objects.get(pk=task.pk)
    assert (task.status, task.error_code, task.attempts) == (S.FAILED, "worker_lost", 0)
    assert "failed 4 times before the task could start" in task.error_detail
    assert "database is locked" in task.error_detail

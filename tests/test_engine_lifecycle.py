"""The job path with real Redis and real forking workers: run, fail, time out, cancel, retry."""

import os
from pathlib import Path

import psutil

from tasks import services
from tasks.models import Task
from tasks.runtime import task_work_dir
from tests.conftest import submit_command, wait_for

S = Task.Status


def status_of(task):
    return Task.objects.get(pk=task.pk).status


def wait_status(task, statuses, timeout=30):
    statuses = statuses if isinstance(statuses, (list, tuple)) else [statuses]
    wait_for(lambda: status_of(task) in statuses, timeout, message=f"{task.pk} to be {statuses}")
    return Task.objects.get(pk=task.pk)


def test_it_runs_a_command_to_completion_with_progress_and_result(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=4, sleep=0.1, result='{"answer": 42, "text": "你好"}')
    task = wait_status(task, S.COMPLETED)
    assert task.result == {"answer": 42, "text": "你好"}
    assert task.progress == 100
    assert task.attempts == 1
    assert task.stage == "done"
    assert task.started_at and task.finished_at and task.queued_at
    assert task.expires_at > task.finished_at
    statuses = [e["status"] for e in task.timeline if "status" in e]
    assert statuses == ["pending", "queued", "running", "completed"]
    assert [e["stage"] for e in task.timeline if "stage" in e] == ["running", "done"]


def test_it_leaves_no_process_behind_when_a_tool_exits_leaving_a_daemon(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=2, child=True)
    child_pid = wait_for(lambda: _read_pid(task), 15, message="child pid")
    task = wait_status(task, S.COMPLETED, 15)
    wait_for(lambda: not _alive(child_pid), 3, message="the daemon to be killed")


def test_it_passes_parameters_as_literal_arguments_without_a_shell(workers, alice, tool):
    workers(1)
    nasty = "x; touch /tmp/pwned-by-mediacraft && echo $HOME `id` 'q' \"dq\" 中文"
    task = wait_status(submit_command(alice, steps=0, echo=nasty), S.COMPLETED)
    assert task.result["echo"] == nasty
    assert task.result["argv"][-2:] == ["--echo", nasty]
    assert not os.path.exists("/tmp/pwned-by-mediacraft")


def test_it_fails_with_the_exit_code_and_stderr_tail(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=1, exit=3, stderr="boom: disk on fire")
    task = wait_status(task, S.FAILED)
    assert task.error_code == "command_failed"
    assert task.error_params == {"exit_code": 3}
    assert "boom: disk on fire" in task.error_detail
    assert task.attempts == 1  # a tool's own failure is not retried


def test_it_times_out_and_kills_the_tool_and_its_children(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=1000, sleep=0.1, child=True, timeout=3)
    child_pid = wait_for(lambda: _read_pid(task), 15, message="child pid")
    task = wait_status(task, S.TIMEOUT, 30)
    assert task.error_code == "timeout"
    assert task.error_params == {"timeout": 3}
    wait_for(lambda: not _alive(child_pid), 5, message="child to die")
    assert not (task_work_dir(task.pk) / "output").exists()


def test_it_cancels_a_running_task_within_two_seconds(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=1000, sleep=0.1, child=True, write="partial.bin")
    child_pid = wait_for(lambda: _read_pid(task), 15, message="child pid")
    wait_for(lambda: Task.objects.get(pk=task.pk).progress > 0, 10, message="progress")
    services.task_cancel(task=Task.objects.get(pk=task.pk))
    task = wait_status(task, S.CANCELLED, 2)
    wait_for(lambda: not _alive(child_pid), 3, message="child to die")
    wait_for(lambda: not (task_work_dir(task.pk) / "output").exists(), 3, message="outputs removed")
    assert task.error_code == ""


def test_it_cancels_pending_and_queued_tasks_in_place(workers, alice, tool, settings):
    # No worker started yet: tasks wait in pending/queued.
    first = submit_command(alice, steps=1)
    second = submit_command(alice, steps=1)
    assert status_of(first) == S.QUEUED and status_of(second) == S.PENDING
    services.task_cancel(task=first)
    services.task_cancel(task=second)
    assert status_of(first) == S.CANCELLED and status_of(second) == S.CANCELLED
    workers(1)
    third = submit_command(alice, steps=1)
    wait_status(third, S.COMPLETED)
    assert status_of(first) == S.CANCELLED  # the dropped RQ job never ran


def test_it_retries_a_failed_task_by_hand(workers, alice, tool):
    workers(1)
    task = submit_command(alice, steps=1, exit=1)
    task = wait_status(task, S.FAILED)
    task = services.task_retry(task=task)
    assert task.status in (S.PENDING, S.QUEUED, S.RUNNING, S.FAILED)
    task = wait_status(task, S.FAILED)
    assert task.attempts == 1
    assert [e["status"] for e in task.timeline if "status" in e].count("failed") == 2


def _read_pid(task):
    path = Path(task_work_dir(task.pk)) / "output" / "child.pid"
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

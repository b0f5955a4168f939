"""The progress reporter: throttled ORM writes, stage changes and the last update always land."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import services
from tasks.errors import TaskAborted
from tasks.models import Task
from tasks.runtime import ProgressReporter
from tests.conftest import submit_command


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, snapshot):
        self.sent.append(snapshot)


def running_task(owner):
    task = submit_command(owner, steps=1)
    return services.task_mark_running(task_id=task.pk, worker_name="test")


def test_it_throttles_database_writes_and_events(transactional_db, redis_conn, alice, tool):
    task = running_task(alice)
    sender = Recorder()
    reporter = ProgressReporter(task, sender)
    with CaptureQueriesContext(connection) as queries:
        for i in range(2000):
            reporter.update(i / 20, stage="running", stats={"done": i})
    writes = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert 1 <= len(writes) <= 5  # 2000 updates in well under a second
    assert 1 <= len(sender.sent) <= 20
    reporter.flush_pending()
    stored = Task.objects.get(pk=task.pk)
    assert stored.progress == 99.95 and stored.stats["done"] == 1999
    assert sender.sent[-1]["progress"] == 99.95


def test_it_always_writes_a_stage_change(transactional_db, redis_conn, alice, tool):
    task = running_task(alice)
    sender = Recorder()
    reporter = ProgressReporter(task, sender)
    for stage in ("download", "encode", "upload"):
        reporter.update(10, stage=stage)
        assert Task.objects.get(pk=task.pk).stage == stage
        assert sender.sent[-1]["stage"] == stage
    stages = [e["stage"] for e in Task.objects.get(pk=task.pk).timeline if "stage" in e]
    assert stages == ["download", "encode", "upload"]


def test_it_clamps_progress_and_estimates_eta(transactional_db, redis_conn, alice, tool):
    task = running_task(alice)
    reporter = ProgressReporter(task, Recorder())
    reporter.started -= 10  # ten seconds in
    reporter.update(250, stage="a")
    assert Task.objects.get(pk=task.pk).progress == 100
    reporter.update(-5, stage="b")
    assert Task.objects.get(pk=task.pk).progress == 0
    reporter.update(25, stage="c")
    assert Task.objects.get(pk=task.pk).stats["eta_seconds"] == 30
    reporter.update(50, stage="d", stats={"eta_seconds": 7})  # a kind's own ETA wins
    assert Task.objects.get(pk=task.pk).stats["eta_seconds"] == 7


def test_it_stops_the_processor_once_the_task_is_no_longer_running(transactional_db, redis_conn, alice, tool):
    task = running_task(alice)
    reporter = ProgressReporter(task, Recorder())
    services.task_fail(task_id=task.pk, code="worker_lost", retryable=False)
    with pytest.raises(TaskAborted):
        reporter.update(50, stage="late")
    assert Task.objects.get(pk=task.pk).stage != "late"


def test_a_progress_event_overtaken_by_a_status_change_is_older_than_it(transactional_db, redis_conn, alice, tool):
    """Plain progress is sent before its write; when the write finds the task settled meanwhile,
    the event already sent must lose against the settling event: its timeline is shorter, which
    is how the pages (tasks.js isStale) tell the older of two events."""
    task = running_task(alice)
    sender = Recorder()
    reporter = ProgressReporter(task, sender)
    reporter.update(10, stage="work")  # a stage: written before it is sent
    assert sender.sent[-1]["timeline"] == Task.objects.get(pk=task.pk).timeline
    services.task_fail(task_id=task.pk, code="worker_lost", retryable=False)
    reporter.last_db = reporter.last_event = 0.0  # both due now
    with pytest.raises(TaskAborted):
        reporter.update(50)
    late = sender.sent[-1]
    assert late["progress"] == 50 and late["status"] == "running"
    settled = Task.objects.get(pk=task.pk)
    assert settled.status == Task.Status.FAILED and settled.progress != 50
    assert len(late["timeline"]) < len(settled.timeline)

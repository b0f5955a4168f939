"""Admission: per-user and global limits, fairness across users, priority, age, pending cap,
and correctness under concurrent submits (SQLite and PostgreSQL)."""

import threading

import pytest
from django.db import connections

from tasks import services
from tasks.errors import ApiError
from tasks.models import Task
from tasks.queues import get_queue
from tests.conftest import make_user, submit_command

S = Task.Status
pytestmark = pytest.mark.usefixtures("redis_conn")


def statuses(tasks):
    return [Task.objects.get(pk=t.pk).status for t in tasks]


def finish(task):
    """Play a worker's part without one: run and complete the task."""
    assert services.task_mark_running(task_id=task.pk, worker_name="test")
    assert services.task_complete(task_id=task.pk, result={})


@pytest.fixture
def limits(settings):
    def set_limits(user=1, site=5, pending=50):
        settings.MEDIACRAFT_USER_CONCURRENCY = user
        settings.MEDIACRAFT_GLOBAL_CONCURRENCY = site
        settings.MEDIACRAFT_USER_MAX_PENDING = pending

    return set_limits


def test_it_admits_one_task_per_user_and_explains_the_wait(transactional_db, alice, tool, limits):
    limits(user=1, site=5)
    tasks = [submit_command(alice, steps=1) for _ in range(3)]
    assert statuses(tasks) == [S.QUEUED, S.PENDING, S.PENDING]
    waiting = Task.objects.get(pk=tasks[1].pk)
    assert waiting.message_code == "user_limit"
    assert waiting.message_params == {"active": 1, "limit": 1}
    finish(tasks[0])
    assert statuses(tasks) == [S.COMPLETED, S.QUEUED, S.PENDING]


def test_it_holds_the_global_limit(transactional_db, alice, bob, charlie, tool, limits, django_user_model):
    limits(user=1, site=2)
    dave = make_user(django_user_model, "dave", operator=True)
    tasks = [submit_command(u, steps=1) for u in (alice, bob, dave)]
    assert statuses(tasks) == [S.QUEUED, S.QUEUED, S.PENDING]
    assert Task.objects.get(pk=tasks[2].pk).message_code == "site_busy"
    finish(tasks[0])
    assert statuses(tasks)[2] == S.QUEUED


def test_it_is_fair_to_the_user_with_fewest_active_tasks(transactional_db, alice, bob, tool, limits, django_user_model):
    limits(user=2, site=2)
    dave = make_user(django_user_model, "dave", operator=True)
    blockers = [submit_command(dave, steps=1) for _ in range(2)]
    alices = [submit_command(alice, steps=1) for _ in range(3)]  # older than bob's
    bobs = [submit_command(bob, steps=1)]
    assert statuses(alices + bobs) == [S.PENDING] * 4
    finish(blockers[0])
    finish(blockers[1])
    # Two free slots: alice first (both have none active, hers is older), then bob, not alice again.
    assert statuses(alices + bobs) == [S.QUEUED, S.PENDING, S.PENDING, S.QUEUED]


def test_it_prefers_priority_then_age_and_uses_the_priority_queues(transactional_db, alice, tool, limits, redis_conn):
    limits(user=1, site=5)
    first = submit_command(alice, steps=1, priority=5)
    low, mid, high, high2 = (submit_command(alice, steps=1, priority=p) for p in (2, 5, 9, 9))
    assert statuses([first]) == [S.QUEUED]
    assert str(first.pk) in get_queue("default").job_ids
    finish(first)
    assert statuses([low, mid, high, high2]) == [S.PENDING, S.PENDING, S.QUEUED, S.PENDING]
    assert str(high.pk) in get_queue("high").job_ids
    finish(high)
    finish(high2)
    finish(mid)
    assert statuses([low]) == [S.QUEUED]
    assert str(low.pk) in get_queue("low").job_ids


def test_a_task_admitted_at_once_is_stored_as_queued_as_if_it_had_moved(transactional_db, alice, tool, limits,
                                                                         redis_conn):
    """Nothing waits and there is room: the submit inserts the task queued, and reads its template once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks import metrics

    limits(user=1, site=5)
    with CaptureQueriesContext(connection) as queries:
        task = submit_command(alice, steps=1)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.message_code) == (S.QUEUED, "waiting_worker") and stored.queued_at
    assert [entry["status"] for entry in stored.timeline] == [S.PENDING, S.QUEUED]
    assert get_queue("default").job_ids == [str(task.pk)]
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].startswith(("INSERT", "UPDATE")) and '"tasks_task"' in q["sql"].split("(")[0]]
    assert len(writes) == 1 and writes[0].startswith("INSERT"), writes
    assert sum('FROM "tasks_commandtemplate"' in q["sql"] for q in queries.captured_queries) == 1
    counter = metrics._field("mediacraft_task_transitions_total", {"kind": "command", "status": S.QUEUED})
    assert redis_conn.hget(metrics.KEY, counter) == b"1"


def test_a_retry_that_is_due_is_admitted_before_a_new_submit(transactional_db, alice, bob, tool, limits):
    """Something waits: the submit goes through admission, which takes the older task first."""
    from datetime import timedelta

    from django.utils import timezone

    limits(user=1, site=1)
    tool.max_attempts = 3
    tool.save()
    first = submit_command(alice, steps=1)
    assert services.task_mark_running(task_id=first.pk, worker_name="test")
    assert services.task_fail(task_id=first.pk, code="worker_lost", retryable=True).status == S.RETRYING
    Task.objects.filter(pk=first.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    later = submit_command(bob, steps=1)
    assert statuses([first, later]) == [S.QUEUED, S.PENDING]
    assert Task.objects.get(pk=later.pk).message_code == "site_busy"


def test_it_rejects_waiting_tasks_beyond_the_cap_with_429(transactional_db, alice, bob, tool, limits):
    limits(user=1, site=5, pending=2)
    accepted = [submit_command(alice, steps=1) for _ in range(3)]  # 1 queued + 2 waiting
    with pytest.raises(ApiError) as err:
        submit_command(alice, steps=1)
    assert err.value.status == 429 and err.value.code == "too_many_pending"
    assert Task.objects.filter(owner=alice).count() == 3
    assert submit_command(bob, steps=1).status == S.QUEUED  # others are not affected
    services.task_cancel(task=accepted[2])
    submit_command(alice, steps=1)  # a free waiting place again


def test_it_keeps_limits_under_concurrent_submits(transactional_db, tool, limits, django_user_model):
    limits(user=2, site=5, pending=4)
    users = [make_user(django_user_model, f"u{i}", operator=True) for i in range(5)]
    errors, accepted = [], []

    def submit(user):
        try:
            for _ in range(8):
                try:
                    accepted.append(submit_command(user, steps=1).pk)
                except ApiError as exc:
                    errors.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(u,)) for u in users for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(errors) <= {"too_many_pending"}
    active = Task.objects.filter(status__in=Task.ACTIVE)
    assert active.count() <= 5
    for user in users:
        assert Task.objects.filter(owner=user, status__in=Task.ACTIVE).count() <= 2
        assert Task.objects.filter(owner=user, status__in=Task.WAITING).count() <= 4
    # Every slot that could be filled was filled, and every accepted task exists exactly once.
    assert active.count() == 5
    assert Task.objects.count() == len(accepted) == len(set(accepted))
    assert len(accepted) + len(errors) == 80


@pytest.mark.django_db(transaction=True)
def test_a_task_queued_again_replaces_the_job_of_its_earlier_attempt(redis_conn, alice, tool):
    """Admission hands enqueue the task it queued; only a task queued before can have a stale job."""
    from rq.job import Job

    task = submit_command(alice, steps=1)
    queue = get_queue("default")
    assert queue.job_ids == [str(task.pk)]
    old = Job.fetch(str(task.pk), connection=redis_conn)
    old.meta["earlier"] = True
    old.save_meta()
    services.task_mark_running(task_id=task.pk, worker_name="w1")
    services.task_fail(task_id=task.pk, code="internal")
    task = services.task_retry(task=Task.objects.get(pk=task.pk))
    assert task.status == S.QUEUED
    assert queue.job_ids == [str(task.pk)]  # once: the earlier job was removed, not queued twice
    assert "earlier" not in Job.fetch(str(task.pk), connection=redis_conn).meta


def test_admissions_sql_reads_agree_with_the_orm(db, alice, bob):
    """Admission reads in SQL (mediacraft/sql.py); the ORM's answer is the reference."""
    from collections import Counter
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    now = timezone.now()

    def add(owner, status, retry_at=None):
        return Task.objects.create(owner=owner, kind="command", status=status, timeout=60, retry_at=retry_at)

    def check():
        orm_counts = Counter(dict(Task.objects.filter(status__in=Task.ACTIVE).order_by().values_list("owner_id")
                                  .annotate(Count("pk"))))
        assert services._active_counts() == orm_counts
        for user in (alice, bob):
            assert services._waiting_count(user.pk) == Task.objects.filter(owner=user, status__in=Task.WAITING).count()
        assert services._any_waiting(now) is services._waiting(now).exists()

    check()
    for status in (S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMEOUT):
        add(alice, status)
    add(alice, S.RETRYING, retry_at=now + timedelta(microseconds=1))  # due a microsecond later
    add(bob, S.RETRYING, retry_at=now + timedelta(hours=1))
    check()
    assert not services._any_waiting(now) and services._waiting_count(alice.pk) == 1
    add(alice, S.RUNNING), add(alice, S.QUEUED), add(bob, S.QUEUED)
    check()
    assert services._active_counts() == Counter({alice.pk: 2, bob.pk: 1})
    due = add(bob, S.RETRYING, retry_at=now)  # due at this very moment
    check()
    assert services._any_waiting(now)
    due.delete()
    add(bob, S.PENDING)
    check()
    assert services._any_waiting(now) and services._waiting_count(bob.pk) == 2

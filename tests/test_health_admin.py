"""/healthz and the operators' admin."""

import os
import signal
import time
from datetime import timedelta

from rq import Worker
from rq.utils import now, utcformat

from tasks.models import Task
from tests.conftest import submit_command, wait_for
from tests.test_metrics import metric


def test_it_reports_healthy_with_a_live_worker(workers, client):
    workers(1)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["checks"]["workers"] == 1 and body["checks"]["redis"] == "ok"


def test_it_counts_an_idle_worker_that_last_checked_in_minutes_ago(workers, client, redis_conn):
    # As RQ's default worker idles (`rqworker`, a 420 s TTL): one check-in per 405 s wait for a job.
    workers(1, MEDIACRAFT_WORKER_TTL_SECONDS=420)
    (worker,) = Worker.all(connection=redis_conn)
    wait_for(lambda: redis_conn.hget(worker.key, "state") == b"idle", 10, message="the worker to wait for a job")
    time.sleep(1)  # its check-in done, it blocks on its queues
    long_ago = utcformat(now() - timedelta(minutes=5))
    redis_conn.hset(worker.key, "last_heartbeat", long_ago)
    response = client.get("/healthz")
    assert redis_conn.hget(worker.key, "last_heartbeat").decode() == long_ago  # still waiting
    assert response.status_code == 200 and response.json()["checks"]["workers"] == 1


def test_it_keeps_counting_an_idle_worker_and_drops_a_killed_one_within_its_ttl(workers, client, admin_client):
    def counted():
        body = client.get("/healthz").json()
        return body["checks"]["workers"], metric(admin_client.get("/metrics").content.decode(), "mediacraft_workers")

    (proc,) = workers(1, MEDIACRAFT_WORKER_TTL_SECONDS=3)
    time.sleep(4)  # past its TTL, idle: it has checked in on its own meanwhile
    assert counted() == (1, 1)
    os.kill(proc.pid, signal.SIGKILL)
    wait_for(lambda: counted() == (0, 0), 10, message="the killed worker to drop out")
    assert client.get("/healthz").json()["problems"] == ["workers: none alive"]


def test_it_reports_503_without_workers(transactional_db, redis_conn, client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["workers: none alive"]


def test_it_reports_503_when_redis_is_down(transactional_db, client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] == "error" and body["checks"]["database"] == "ok"


def test_it_lets_staff_manage_tasks_in_the_admin(transactional_db, redis_conn, admin_client, alice, tool):
    task = submit_command(alice, steps=1, title="<b>bold</b> title")
    listing = admin_client.get("/admin/tasks/task/", {"status__exact": "queued", "q": "alice"})
    assert listing.status_code == 200
    assert str(task.pk) in listing.content.decode()
    assert "<b>bold</b>" not in listing.content.decode()  # stored text stays inert
    wide = submit_command(alice, steps=1, title="Ｓｕｍｍｅｒ ÉTÉ")
    for term in ("summer été", "ＳＵＭＭＥＲ"):  # any case, any width, as on the pages
        found = admin_client.get("/admin/tasks/task/", {"q": term}).content.decode()
        assert str(wide.pk) in found and str(task.pk) not in found
    detail = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    assert detail.status_code == 200
    response = admin_client.post(
        "/admin/tasks/task/", {"action": "cancel_tasks", "_selected_action": [str(task.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert Task.objects.get(pk=task.pk).status == Task.Status.CANCELLED
    response = admin_client.post(
        "/admin/tasks/task/", {"action": "retry_tasks", "_selected_action": [str(task.pk)]}, follow=True
    )
    assert Task.objects.get(pk=task.pk).status in (Task.Status.QUEUED, Task.Status.PENDING)
    assert admin_client.get("/admin/tasks/commandtemplate/add/").status_code == 200
    assert admin_client.get("/admin/users/apitoken/").status_code == 200
    assert admin_client.get("/admin/rq/").status_code == 200


def test_it_keeps_the_admin_and_rq_dashboard_from_non_staff(db, client_for, alice):
    client = client_for(alice)
    assert client.get("/admin/tasks/task/").status_code == 302
    assert client.get("/admin/rq/").status_code in (302, 403)


def test_it_deletes_tasks_in_the_admin_as_the_api_does(transactional_db, redis_conn, admin_client, alice, tool):
    from django.db.models import F

    from tasks.runtime import task_work_dir

    done, running = submit_command(alice, steps=1), submit_command(alice, steps=1)
    Task.objects.filter(pk=done.pk).update(status=Task.Status.COMPLETED)
    Task.objects.filter(pk=running.pk).update(status=Task.Status.RUNNING, started_at=F("created_at"))
    for task in (done, running):
        (task_work_dir(task.pk) / "output").mkdir(parents=True)
        (task_work_dir(task.pk) / "output" / "result.txt").write_text("x")

    # An unfinished task in the selection: nothing is deleted, and the admin says why.
    both = {"action": "delete_selected", "_selected_action": [str(done.pk), str(running.pk)]}
    response = admin_client.post("/admin/tasks/task/", both, follow=True)
    assert "1 task has not finished: cancel it first, then delete it." in response.content.decode()
    assert Task.objects.count() == 2 and task_work_dir(done.pk).exists()
    # Nor from its own delete page.
    response = admin_client.post(f"/admin/tasks/task/{running.pk}/delete/", {"post": "yes"}, follow=True)
    assert "cancel it first" in response.content.decode()
    assert Task.objects.filter(pk=running.pk).exists() and task_work_dir(running.pk).exists()

    # A finished one goes, with its folder: confirmation page, then the delete.
    one = {"action": "delete_selected", "_selected_action": [str(done.pk)]}
    assert "Are you sure" in admin_client.post("/admin/tasks/task/", one).content.decode()
    admin_client.post("/admin/tasks/task/", {**one, "post": "yes"}, follow=True)
    assert not Task.objects.filter(pk=done.pk).exists() and not task_work_dir(done.pk).exists()

    # Once cancelled, the single-object delete removes it and its folder too.
    Task.objects.filter(pk=running.pk).update(status=Task.Status.CANCELLED)
    response = admin_client.post(f"/admin/tasks/task/{running.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert not Task.objects.filter(pk=running.pk).exists() and not task_work_dir(running.pk).exists()

"""/metrics: Prometheus text for staff or the metrics token, with live and shared counters."""

import re

from tests.conftest import submit_command, wait_for
from tasks.models import Task


def metric(text, name, **labels):
    """The value of one sample, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, value = line.rsplit(" ", 1)
        if sample.split("{", 1)[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if all(found.get(k) == str(v) for k, v in labels.items()):
            return float(value)
    return None


def test_it_exposes_task_queue_and_event_metrics(workers, admin_client, alice, tool):
    workers(1)
    task = submit_command(alice, steps=3, sleep=0.05)
    wait_for(lambda: Task.objects.get(pk=task.pk).status == "completed", 30, message="completion")
    text = wait_for(lambda: (t := admin_client.get("/metrics").content.decode())
                    and metric(t, "mediacraft_task_duration_seconds_count", kind="command", outcome="completed") and t,
                    10, message="the duration to be recorded")
    assert metric(text, "mediacraft_tasks", kind="command", status="completed") == 1
    assert metric(text, "mediacraft_task_duration_seconds_bucket", kind="command", outcome="completed", le="+Inf") == 1
    assert metric(text, "mediacraft_task_duration_seconds_sum", kind="command", outcome="completed") > 0
    assert metric(text, "mediacraft_progress_events_total") >= 4
    assert metric(text, "mediacraft_task_transitions_total", kind="command", status="running") == 1
    assert metric(text, "mediacraft_queue_depth", queue="default") == 0
    assert metric(text, "mediacraft_workers") == 1
    assert "# TYPE mediacraft_task_duration_seconds histogram" in text


def test_it_keeps_metrics_from_strangers(transactional_db, redis_conn, client, client_for, alice, settings):
    assert client.get("/metrics").status_code == 401
    assert client_for(alice).get("/metrics").status_code == 401  # not staff
    settings.MEDIACRAFT_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# HELP mediacraft_tasks" in response.content.decode()

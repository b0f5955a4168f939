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


def test_it_renders_every_histogram_bucket_in_increasing_order(transactional_db, redis_conn, admin_client):
    from tasks.metrics import DURATION_BUCKETS, record

    record(duration=("command", "completed", 20000))  # only the top buckets reached
    record(duration=("command", "failed", 3))
    record(duration=("command", "failed", 400))
    text = admin_client.get("/metrics").content.decode()
    series = {}
    for line in text.splitlines():
        if line.startswith("mediacraft_task_duration_seconds"):
            sample, value = line.rsplit(" ", 1)
            labels = dict(re.findall(r'(\w+)="([^"]*)"', sample))
            series.setdefault(labels["outcome"], []).append((sample.split("{")[0], labels.get("le"), float(value)))
    wanted = [str(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
    for outcome, count in (("completed", 1), ("failed", 2)):
        names = [name.rsplit("_", 1)[1] for name, _, _ in series[outcome]]
        assert names == ["bucket"] * len(wanted) + ["sum", "count"]
        buckets = [(le, value) for name, le, value in series[outcome] if le is not None]
        assert [le for le, _ in buckets] == wanted
        values = [value for _, value in buckets]
        assert values == sorted(values) and values[-1] == count == series[outcome][-1][2]
    assert dict((le, v) for _, le, v in series["failed"])["5"] == 1
    assert dict((le, v) for _, le, v in series["failed"])["300"] == 1
    assert dict((le, v) for _, le, v in series["completed"])["14400"] == 0

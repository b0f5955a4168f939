"""Prometheus metrics. Gauges are read live (database, Redis); counters and histograms that
many processes add to live in one Redis hash, so every web and worker process shares them."""

import logging
import math
import re

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY = "mediacraft:metrics"
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def _field(name, labels=None):
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def incr(name, labels=None, amount=1):
    """Add to a shared counter; metrics never break the caller."""
    record([(name, labels, amount)])


def record(counters=(), duration=None):
    """Add to counters ((name, labels, amount) each) and observe a task duration ((kind, outcome,
    seconds)) in one Redis round trip; metrics never break the caller."""
    from tasks.queues import redis_connection

    try:
        pipe = redis_connection().pipeline(transaction=False)
        for name, labels, amount in counters:
            pipe.hincrbyfloat(KEY, _field(name, labels), amount)
        if duration is not None:
            kind, outcome, seconds = duration
            labels = {"kind": kind, "outcome": outcome}
            for bound in DURATION_BUCKETS:
                if seconds <= bound:
                    pipe.hincrbyfloat(KEY, _field("mediacraft_task_duration_seconds_bucket", {**labels, "le": bound}), 1)
            pipe.hincrbyfloat(KEY, _field("mediacraft_task_duration_seconds_bucket", {**labels, "le": "+Inf"}), 1)
            pipe.hincrbyfloat(KEY, _field("mediacraft_task_duration_seconds_sum", labels), seconds)
            pipe.hincrbyfloat(KEY, _field("mediacraft_task_duration_seconds_count", labels), 1)
        pipe.execute()
    except (RedisError, OSError):  # nothing broader: see tasks.events.SEND_ERRORS
        log.debug("metrics not recorded", exc_info=True)


def _sample(field, value):
    shown = int(value) if value.is_integer() else value
    return f"{field} {shown if math.isfinite(value) else 0}"


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _labels(field):
    """The labels of a stored field, unescaped: the inverse of _field."""
    unescape = {"n": "\n"}
    return {key: re.sub(r"\\(.)", lambda m: unescape.get(m[1], m[1]), value)
            for key, value in LABEL.findall(field.partition("{")[2])}


def _histogram_samples(name, fields):
    """Each series of a histogram as the exposition format asks: every bucket, in increasing
    order of `le` with +Inf last, then the sum and the count. Only the buckets an observation
    reached are stored; one missing counts what the one below it counts (none: 0)."""
    series = {}
    for field, value in fields.items():
        labels = _labels(field)
        bound = labels.pop("le", None)
        found = series.setdefault(tuple(sorted(labels.items())), {"buckets": {}})
        if field.startswith(f"{name}_bucket"):
            found["buckets"][bound] = value
        else:
            found[field.partition("{")[0]] = value
    out = []
    for labels, found in sorted(series.items()):
        labels = dict(labels)
        bounds = {str(bound) for bound in DURATION_BUCKETS} | set(found["buckets"]) | {"+Inf"}
        count = 0.0
        for bound in sorted(bounds, key=float):
            count = found["buckets"].get(bound, count)
            out.append(_sample(_field(f"{name}_bucket", {**labels, "le": bound}), count))
        for suffix in ("_sum", "_count"):
            if name + suffix in found:
                out.append(_sample(_field(name + suffix, labels), found[name + suffix]))
    return out


HELP = {
    "mediacraft_tasks": ("gauge", "Tasks in the database by kind and status."),
    "mediacraft_queue_depth": ("gauge", "Jobs waiting in each RQ queue."),
    "mediacraft_workers": ("gauge", "RQ workers still checking in with Redis."),
    "mediacraft_running_tasks": ("gauge", "Running tasks per worker."),
    "mediacraft_task_duration_seconds": ("histogram", "Run time of finished tasks by kind and outcome."),
    "mediacraft_progress_events_total": ("counter", "Progress events sent to viewers."),
    "mediacraft_reconciler_actions_total": ("counter", "Repairs made by the reconciler, by action."),
    "mediacraft_upload_bytes_total": ("counter", "Bytes of uploads stored."),
    "mediacraft_served_bytes_total": ("counter", "Bytes of files served to their owners."),
    "mediacraft_task_transitions_total": ("counter", "Status changes by kind and new status."),
}


def render():
    from django.db.models import Count

    from tasks.models import Task
    from tasks.queues import QUEUE_NAMES, get_queue, redis_connection
    from tasks.selectors import live_worker_count

    lines = {name: [] for name in HELP}
    for row in Task.objects.values("kind", "status").annotate(n=Count("pk")).order_by():
        lines["mediacraft_tasks"].append(f"{_field('mediacraft_tasks', {'kind': row['kind'], 'status': row['status']})} {row['n']}")
    for row in (Task.objects.filter(status=Task.Status.RUNNING).values("worker_name").annotate(n=Count("pk"))
                .order_by()):
        lines["mediacraft_running_tasks"].append(
            f"{_field('mediacraft_running_tasks', {'worker': row['worker_name'] or 'unknown'})} {row['n']}")
    conn = redis_connection()
    for name in QUEUE_NAMES:
        lines["mediacraft_queue_depth"].append(f"{_field('mediacraft_queue_depth', {'queue': name})} {get_queue(name).count}")
    lines["mediacraft_workers"].append(f"mediacraft_workers {live_worker_count(connection=conn)}")
    histograms = {name: {} for name, (kind, _) in HELP.items() if kind == "histogram"}
    for field, value in sorted((k.decode(), float(v)) for k, v in conn.hgetall(KEY).items()):
        base = field.split("{", 1)[0]
        family = next((n for n in HELP if base == n or base.startswith(n + "_")), None)
        if family in histograms:
            histograms[family][field] = value
        elif family is not None:
            lines[family].append(_sample(field, value))
    for name, fields in histograms.items():
        lines[name].extend(_histogram_samples(name, fields))
    out = []
    for name, (kind, text) in HELP.items():
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines[name])
    return "\n".join(out) + "\n"

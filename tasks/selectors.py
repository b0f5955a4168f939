"""Reads. Every lookup of a task by id goes through task_get_for_user: anyone else gets 404."""

import uuid

from django.db.models import Count, Q
from django.utils.translation import gettext as _

from tasks.errors import ApiError, NotFound
from tasks.models import Task, TaskKind, search_form


def task_get_for_user(*, user, task_id):
    try:
        pk = uuid.UUID(str(task_id))
    except ValueError:
        raise NotFound() from None
    if user is None or not user.is_authenticated:
        raise NotFound()
    task = Task.objects.filter(pk=pk, owner=user).first()
    if task is None:
        raise NotFound()
    return task


def task_owner_id(*, task_id):
    """The task's owner now (a running job's copy goes stale when a visitor logs in), or None."""
    return Task.objects.filter(pk=task_id).values_list("owner_id", flat=True).first()


MAX_SEARCH = 200


def task_filters(*, status="", kind="", q=""):
    """The task list's filters, checked: (status, kind, search text). Raises ApiError naming the
    one that names nothing (or a search text no title can hold)."""
    if status and status not in Task.Status.values:
        raise ApiError("invalid_status", _("Unknown status: %(value)s.") % {"value": status[:40]}, field="status")
    if kind and kind not in TaskKind.values:
        raise ApiError("unknown_kind", _("Unknown task kind: %(kind)s.") % {"kind": kind[:40]}, field="kind")
    q = q.strip()
    if len(q) > MAX_SEARCH or not q.isprintable():
        raise ApiError("invalid_search", _("The search text must be at most %(n)s printable characters.")
                       % {"n": MAX_SEARCH}, field="q")
    return status, kind, q


def task_list(*, user, status=None, kind=None, q=None):
    """The user's tasks, newest first; q: text their titles contain (any case)."""
    if user is None or not user.is_authenticated:
        return Task.objects.none()
    qs = Task.objects.filter(owner=user)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if q:
        qs = qs.filter(search_title__contains=search_form(q))
    return qs.order_by("-created_at", "-pk")


def task_counts(*, tasks):
    """(finished, unfinished) among these tasks, in one query."""
    terminal = Q(status__in=Task.TERMINAL)
    counts = tasks.order_by().aggregate(finished=Count("pk", filter=terminal), unfinished=Count("pk", filter=~terminal))
    return counts["finished"], counts["unfinished"]


def task_active_count(*, user):
    return Task.objects.filter(owner=user, status__in=Task.ACTIVE).count()


def live_worker_count(*, connection):
    """RQ workers still checking in. A worker's key expires once it stops checking in (for ours,
    MEDIACRAFT_WORKER_TTL_SECONDS after the last one; see TaskWorker), and RQ lists only the
    workers whose key is still there. Their last_heartbeat is no guide: an idle worker refreshes
    it only once per blocking wait for a job."""
    from rq import Worker

    return len(Worker.all(connection=connection))

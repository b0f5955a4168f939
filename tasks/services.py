"""Writes. Every status change is a conditional UPDATE whose row count is checked, so a
duplicate delivery, a late callback or a double click changes nothing."""

import functools
import logging
import random
import shutil
from collections import Counter, defaultdict, deque
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mediacraft import sql
from mediacraft.logs import task_context
from mediacraft.numbers import whole_number
from tasks import events, metrics, selectors
from tasks.errors import ApiError, InvalidParams, NotFound
from tasks.models import Task
from tasks.processors import get_processor, registry, retry_statuses
from tasks.queues import RUN_TASK, get_queue, queue_name_for, redis_connection
from tasks.runtime import task_work_dir

log = logging.getLogger(__name__)
S = Task.Status
MAX_START_RESTARTS = 3


def _lock_dispatch():
    """Serialise submit and dispatch."""
    sql.lock(sql.DISPATCH)


def _transition(task_id, *, frm, to, **fields):
    """Move a task from one of `frm` to `to` if it is still there. Returns the task as moved, or
    None. A field's value may be a function of the task as it was (attempts + 1)."""
    with task_context(task_id):
        return _move(task_id, frm, to, fields)


def _move(task_id, frm, to, fields):
    now = timezone.now()
    # Inside a caller's transaction (dispatch, submit) no savepoint: an error ends that one anyway.
    with transaction.atomic(savepoint=False):
        # Locked (SQLite's write transaction locks the database), so the row as moved is known
        # here: its event needs no second read.
        task = Task.objects.select_for_update().filter(pk=task_id, status__in=frm).first()
        if task is None:
            return None
        fields = {name: value(task) if callable(value) else value for name, value in fields.items()}
        fields["timeline"] = [*task.timeline, {"status": to, "at": now.isoformat()}]
        if to in Task.TERMINAL:
            fields.setdefault("finished_at", now)
            fields.setdefault("expires_at", now + timedelta(days=settings.MEDIACRAFT_RESULT_TTL_DAYS))
            fields.setdefault("heartbeat_at", None)
        if not Task.objects.filter(pk=task_id, status__in=frm).update(status=to, **fields):
            return None
        task.status = to
        for name, value in fields.items():
            setattr(task, name, value)
        if "expires_at" in fields:  # a task's files expire with it
            from storage.models import StoredFile

            StoredFile.objects.filter(task_id=task_id).update(expires_at=fields["expires_at"])
        transaction.on_commit(functools.partial(_announce, task, now), robust=True)
        if to in Task.TERMINAL or to == S.RETRYING:
            transaction.on_commit(dispatch, robust=True)
    log.info("%s -> %s", "|".join(frm), to)
    return task


def _announce(task, now):
    """After a move commits: the event to the owner's sockets, then its metrics in one round trip."""
    counters = [("mediacraft_task_transitions_total", {"kind": task.kind, "status": task.status}, 1)]
    if events.broadcast(task, count=False):
        counters.append(("mediacraft_progress_events_total", None, 1))
    duration = None
    if task.status in Task.TERMINAL and task.started_at is not None:
        duration = (task.kind, task.status, (now - task.started_at).total_seconds())
    metrics.record(counters, duration)


def _has_nul(value):
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _clean_title(title):
    if not isinstance(title, str):
        raise InvalidParams(_("The title must be text."), "title")
    title = "".join(ch for ch in title if ch.isprintable()).strip()
    if len(title) > 200:
        raise InvalidParams(_("The title is longer than 200 characters."), "title")
    return title


def task_submit(*, owner, kind, params, files=(), priority=5, title="", timeout=None, owner_factory=None):
    """Validate and store a new task, and admit it (or others) in the same transaction. A new
    visitor comes as owner=None plus owner_factory, called only once the task is valid, so a
    refused submit leaves no identity behind."""
    processor = get_processor(kind) if isinstance(kind, str) else None
    if processor is None:
        raise ApiError("unknown_kind", _("Unknown task kind: %(kind)s.") % {"kind": str(kind)[:40]})
    with processor.reading_once():  # the permission, validation and limits may read one row
        if not processor.user_may_run(owner, params if isinstance(params, dict) else None):
            raise ApiError("forbidden_kind", _("You are not allowed to run %(kind)s tasks.") % {"kind": kind},
                           status=403)
        if not isinstance(params, dict):
            raise InvalidParams(_("params must be a JSON object."), "params")
        priority = whole_number(priority, "priority", 1, 10)
        title = _clean_title(title or "")
        from storage.services import check_free_disk

        check_free_disk()  # results and downloads need room; refuse before anything is stored
        cleaned = processor.validate(params=params, files=list(files), user=owner)
        if _has_nul(cleaned):  # PostgreSQL's jsonb refuses NUL; no parameter needs one
            raise InvalidParams(_("Parameters must not contain NUL characters."), "params")
        # Before the transaction, which holds the write lock (kinds may query here).
        default_timeout, max_attempts = processor.limits_for(cleaned)
    limit = settings.MEDIACRAFT_MAX_TASK_TIMEOUT
    if timeout is None:
        timeout = min(default_timeout, limit)
    else:
        timeout = whole_number(timeout, "timeout", 1, limit)
    title = title or processor.make_title(cleaned)[:200]
    now = timezone.now()
    fields = {"kind": processor.kind, "title": title, "priority": priority, "timeout": timeout,
              "max_attempts": max_attempts}
    from storage.services import FilesTaken, files_reuse

    inputs = cleaned.get("files") or []
    for attempt in range(2):
        copies = ()
        if inputs:
            cleaned["files"], copies = files_reuse(owner=owner, file_ids=inputs)
        try:
            return _store_new(owner, owner_factory, cleaned, fields, now)
        except FilesTaken:
            for stored in copies:
                stored.delete()
            if attempt:
                raise ApiError("file_taken", _("An input file went to another task meanwhile; submit again."),
                               status=409, field="files") from None
            # A staged input went to another task since files_reuse (a double submit): once more,
            # where this task gets a copy of it.
        except BaseException:
            for stored in copies:  # the inputs copied for a task that was refused
                stored.delete()
            raise


def _store_new(owner, owner_factory, cleaned, fields, now):
    """task_submit's one write transaction: the new task, its inputs, its admission."""
    with transaction.atomic():
        if owner is None:
            owner = owner_factory()
        _lock_dispatch()
        waiting = _waiting_count(owner.pk)
        if waiting >= settings.MEDIACRAFT_USER_MAX_PENDING:
            raise ApiError(
                "too_many_pending",
                ngettext("You already have %(n)s task waiting; wait for it to finish or cancel it.",
                         "You already have %(n)s tasks waiting; wait for some to finish or cancel them.",
                         waiting) % {"n": waiting},
                status=429,
            )
        # Admission in the same transaction, which holds the dispatch lock already: one write
        # transaction per submit. When nothing else waits and there is room, the new task is the
        # one admission would pick: it is stored as queued at once, sparing the pending row's move.
        counts = _active_counts()
        direct = _has_room(counts, owner.pk) and not _any_waiting(now)
        timeline = [{"status": S.PENDING, "at": now.isoformat()}]
        if direct:
            state = {"status": S.QUEUED, "queued_at": now, "message_code": "waiting_worker",
                     "timeline": [*timeline, {"status": S.QUEUED, "at": now.isoformat()}]}
        else:
            state = {"status": S.PENDING, "message_code": "waiting_slot", "timeline": timeline}
        task = Task.objects.create(owner=owner, params=cleaned, **fields, **state)
        if cleaned.get("files"):
            from storage.services import files_attach

            files_attach(task=task, file_ids=cleaned["files"])
        if direct:
            _queued(task, now)
            return task
        # A task admitted now is announced by its move to queued.
        admitted, active = _admit(counts)
        if task.pk not in admitted:
            _explain_wait(task, active[task.owner_id])
            transaction.on_commit(functools.partial(events.broadcast_task, task.pk), robust=True)
    if task.pk in admitted:
        return admitted[task.pk]  # as its move to queued left it
    return _reread(task)


def _reread(task):
    """The task as now stored, after a change: a 404 if another request deleted it meanwhile."""
    try:
        task.refresh_from_db()
    except Task.DoesNotExist:
        raise NotFound() from None
    return task


def _explain_wait(task, active):
    if active >= settings.MEDIACRAFT_USER_CONCURRENCY:
        code, params = "user_limit", {"active": active, "limit": settings.MEDIACRAFT_USER_CONCURRENCY}
    else:
        code, params = "site_busy", {"limit": settings.MEDIACRAFT_GLOBAL_CONCURRENCY}
    if Task.objects.filter(pk=task.pk, status=S.PENDING).update(message_code=code, message_params=params):
        task.message_code, task.message_params = code, params


def dispatch():
    """Admit waiting tasks while slots are free: fewest active first among owners, then
    priority, then age. Returns the ids admitted."""
    if not _any_waiting(timezone.now()):  # the usual case after a task ends: no write lock
        return []
    with transaction.atomic():
        _lock_dispatch()
        return list(_admit()[0])


# Admission's reads run on every submit and after every task's end: SQL, see mediacraft/sql.py.
def _active_counts():
    """Active tasks per owner (a Counter), read under the dispatch lock."""
    owner = sql.name(Task, "owner")
    return Counter(dict(sql.rows(
        f"SELECT {owner}, COUNT(*) FROM {sql.name(Task)} WHERE {sql.name(Task, 'status')} "
        f"IN ({sql.placeholders(Task.ACTIVE)}) GROUP BY {owner}", list(Task.ACTIVE))))


def _waiting_count(owner_id):
    """How many tasks of this owner wait (pending or retrying)."""
    return sql.scalar(
        f"SELECT COUNT(*) FROM {sql.name(Task)} WHERE {sql.name(Task, 'owner')} = %s "
        f"AND {sql.name(Task, 'status')} IN ({sql.placeholders(Task.WAITING)})", [owner_id, *Task.WAITING])


def _any_waiting(now):
    """Whether _waiting(now) has any task."""
    status = sql.name(Task, "status")
    return sql.scalar(
        f"SELECT 1 FROM {sql.name(Task)} WHERE {status} = %s OR ({status} = %s AND "
        f"{sql.name(Task, 'retry_at')} <= %s) LIMIT 1", [S.PENDING, S.RETRYING, sql.stored_datetime(now)]) is not None


def _has_room(counts, owner_id):
    return (sum(counts.values()) < settings.MEDIACRAFT_GLOBAL_CONCURRENCY
            and counts[owner_id] < settings.MEDIACRAFT_USER_CONCURRENCY)


def _queued(task, now):
    """A task the caller has just stored as queued, in its transaction: after commit its event
    and metrics, as for any move, then its job; and the move's log line."""
    transaction.on_commit(functools.partial(_announce, task, now), robust=True)
    transaction.on_commit(functools.partial(enqueue, task.pk, queued=task), robust=True)
    with task_context(task.pk):
        log.info("%s -> %s", S.PENDING, S.QUEUED)


def _admit(counts=None):
    """dispatch's admission, in the caller's transaction, which holds the dispatch lock. Returns
    ({id: task} of those admitted, active tasks per owner afterwards). counts: _active_counts(),
    when the caller has read it under that lock."""
    admitted = {}
    now = timezone.now()
    counts = _active_counts() if counts is None else counts
    free = settings.MEDIACRAFT_GLOBAL_CONCURRENCY - sum(counts.values())
    if free <= 0:
        return admitted, counts
    waiting = (
        _waiting(now).order_by("-priority", "created_at")
        .values_list("id", "owner_id", "status", "priority", "created_at")[:5000]
    )
    by_owner = defaultdict(deque)
    for row in waiting:
        by_owner[row[1]].append(row)
    user_limit = settings.MEDIACRAFT_USER_CONCURRENCY
    while free > 0:
        eligible = [o for o, rows in by_owner.items() if rows and counts[o] < user_limit]
        if not eligible:
            break
        owner = min(eligible, key=lambda o: (counts[o], -by_owner[o][0][3], by_owner[o][0][4]))
        task_id, _owner, status, _prio, _created = by_owner[owner].popleft()
        queued = _transition(task_id, frm=[status], to=S.QUEUED, queued_at=now, retry_at=None,
                             message_code="waiting_worker", message_params={})
        if queued:
            counts[owner] += 1
            free -= 1
            admitted[task_id] = queued
            transaction.on_commit(functools.partial(enqueue, task_id, queued=queued), robust=True)
    return admitted, counts


def _waiting(now):
    """Tasks dispatch may admit (_any_waiting asks the same in SQL). One that turns waiting after
    this was read dispatches itself."""
    return Task.objects.filter(Q(status=S.PENDING) | Q(status=S.RETRYING, retry_at__lte=now))


def enqueue(task_id, restarts=0, queued=None):
    """Put a queued task's job on RQ; job id = task id. A stale job of an earlier attempt goes first.
    restarts: how often the reconciler has put it back after its job failed before the task ran.
    queued: the task as admission just queued it, so not read again. (Cancelled meanwhile, its
    job only finds it no longer queued.)"""
    from rq.callbacks import Callback
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    task = queued or Task.objects.filter(pk=task_id, status=S.QUEUED).first()
    if task is None:
        return
    conn = redis_connection()
    # Only a task queued before can have a job of an earlier attempt.
    if queued is None or sum(entry.get("status") == S.QUEUED for entry in task.timeline) > 1:
        try:
            Job.fetch(str(task_id), connection=conn).delete()
        except NoSuchJobError:
            pass
    get_queue(queue_name_for(task.priority)).enqueue(
        RUN_TASK, str(task_id), job_id=str(task_id), job_timeout=task.timeout,
        on_stopped=Callback("tasks.jobs.on_job_stopped"), result_ttl=600, failure_ttl=24 * 3600,
        description=f"{task.kind} {task_id}", meta={"restarts": restarts},
    )


def task_mark_running(*, task_id, worker_name):
    now = timezone.now()
    return _transition(
        task_id, frm=[S.QUEUED], to=S.RUNNING, attempts=lambda task: task.attempts + 1, started_at=now,
        heartbeat_at=now, worker_name=worker_name[:200], stage="starting", progress=0, message_code="starting",
        message_params={}, stats={}, error_code="", error_params={}, error_detail="",
    )


def task_complete(*, task_id, result):
    return _transition(task_id, frm=[S.RUNNING], to=S.COMPLETED, result=result, progress=100, stage="done",
                       message_code="done", message_params={})


def retry_delay(attempt):
    """Exponential backoff with jitter: base * 2^(attempt-1), scaled by 0.5..1.0, capped."""
    base = settings.MEDIACRAFT_RETRY_BASE_SECONDS * (2 ** max(0, attempt - 1))
    return min(settings.MEDIACRAFT_RETRY_MAX_SECONDS, base) * random.uniform(0.5, 1.0)


def task_fail(*, task_id, code, params=None, detail="", retryable=False):
    """End a running task with an error, or schedule a retry when it is retryable and attempts remain."""
    task = Task.objects.filter(pk=task_id, status=S.RUNNING).first()
    if task is None:
        return False
    if task.cancel_requested_at:
        return task_mark_cancelled(task_id=task_id)
    error = {"error_code": code, "error_params": params or {}, "error_detail": (detail or "")[-8000:]}
    if retryable and task.attempts < task.max_attempts:
        delay = retry_delay(task.attempts)
        return _transition(
            task_id, frm=[S.RUNNING], to=S.RETRYING, retry_at=timezone.now() + timedelta(seconds=delay),
            heartbeat_at=None, message_code="retry_scheduled",
            message_params={"seconds": round(delay), "attempt": task.attempts + 1, "max_attempts": task.max_attempts},
            **error,
        )
    return _transition(task_id, frm=[S.RUNNING], to=S.FAILED, message_code="", message_params={}, **error)


def task_mark_timeout(*, task_id):
    task = Task.objects.filter(pk=task_id).only("timeout").first()
    if task is None:
        return False
    return _transition(task_id, frm=[S.RUNNING], to=S.TIMEOUT, error_code="timeout",
                       error_params={"timeout": task.timeout}, message_code="", message_params={})


def task_mark_cancelled(*, task_id):
    return _transition(task_id, frm=[S.RUNNING], to=S.CANCELLED, message_code="", message_params={})


def task_requeue_interrupted(*, task_id):
    """Its worker was shut down on purpose while it ran: the task starts again as soon as a
    worker is free, and the attempt does not count."""
    return _transition(task_id, frm=[S.RUNNING], to=S.RETRYING, retry_at=timezone.now(), heartbeat_at=None,
                       attempts=lambda task: task.attempts - 1, worker_name="", message_code="interrupted", message_params={})


def task_mark_lost(*, task_id, detail=""):
    """The worker running the task died: cancelled if that was asked for, else a retryable failure.
    When that ends the task, what the dead run left (partial outputs, downloads, probes) is
    removed first, as a run that ends in its work horse does; a next attempt takes over the rest."""
    task = Task.objects.filter(pk=task_id, status=S.RUNNING).first()
    if task is None:
        return False
    if task.cancel_requested_at or task.attempts >= task.max_attempts:
        from tasks.jobs import cleanup_run

        cleanup_run(task)
    return task_fail(task_id=task_id, code="worker_lost", detail=detail, retryable=True)


def _drop_rq_job(task_id):
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        Job.fetch(str(task_id), connection=redis_connection()).delete()
    except NoSuchJobError:
        pass
    except Exception:
        log.warning("could not drop RQ job %s", task_id, exc_info=True)


def _send_stop(task_id):
    from rq.command import send_stop_job_command
    from rq.exceptions import InvalidJobOperation, NoSuchJobError

    try:
        send_stop_job_command(redis_connection(), str(task_id))
    except (InvalidJobOperation, NoSuchJobError):
        log.info("task %s: no executing RQ job to stop; the watchdog will stop it", task_id)
    except Exception:
        log.warning("task %s: stop command failed", task_id, exc_info=True)


def task_cancel(*, task):
    """Cancel a waiting or queued task in place; ask a running one to stop (the stop callback
    marks it cancelled and removes what it left)."""
    if task.status in Task.TERMINAL:
        raise ApiError("not_cancellable", _("This task has already finished."), status=409)
    if _transition(task.pk, frm=[S.PENDING], to=S.CANCELLED, message_code="", message_params={}):
        pass
    elif _transition(task.pk, frm=[S.RETRYING], to=S.CANCELLED, message_code="", message_params={}):
        # A lost run's leftovers wait for the next attempt to take them over; there is none now.
        from tasks.jobs import cleanup_run

        transaction.on_commit(functools.partial(cleanup_run, task), robust=True)
    elif _transition(task.pk, frm=[S.QUEUED], to=S.CANCELLED, message_code="", message_params={}):
        transaction.on_commit(functools.partial(_drop_rq_job, task.pk), robust=True)
    elif Task.objects.filter(pk=task.pk, status=S.RUNNING, cancel_requested_at__isnull=True).update(
        cancel_requested_at=timezone.now()
    ):
        transaction.on_commit(functools.partial(_send_stop, task.pk), robust=True)
    return _reread(task)


UNFINISHED = tuple(s for s in S if s not in Task.TERMINAL)


def _bulk_scope(owner, kind, status, q, statuses, wrong_status):
    """The owner's tasks in `statuses` that the task list's filters show (one kind, one status, a
    text in the title, when given). A filter that names nothing, or a status outside `statuses`, is
    refused: a bulk action never falls back to all tasks."""
    status, kind, q = selectors.task_filters(status=status, kind=kind, q=q)
    if status and status not in statuses:
        raise ApiError("invalid_status", wrong_status % {"status": S(status).label}, field="status")
    tasks = selectors.task_list(user=owner, kind=kind or None, q=q or None)
    return tasks.filter(status__in=[status] if status else list(statuses))


def task_cancel_all(*, owner, kind="", status="", q=""):
    """Cancel each of the owner's unfinished tasks that the list's filters show; returns how many."""
    scope = _bulk_scope(owner, kind, status, q, UNFINISHED,
                        _("Only unfinished tasks can be cancelled; “%(status)s” tasks have finished."))
    count = 0
    for task in scope:
        try:
            task_cancel(task=task)
            count += 1
        except ApiError:
            pass  # finished meanwhile
    return count


def task_delete_finished(*, owner, kind="", status="", q=""):
    """Delete the owner's finished tasks that the list's filters show, and their files, in one
    transaction; returns how many."""
    with transaction.atomic():
        scope = _bulk_scope(owner, kind, status, q, Task.TERMINAL,
                            _("Only finished tasks can be deleted; “%(status)s” tasks have not finished."))
        # Locked, so that none of them is retried (and so unfinished) before it is deleted.
        ids = list(scope.select_for_update().values_list("pk", flat=True))
        for start in range(0, len(ids), 500):
            Task.objects.filter(pk__in=ids[start:start + 500]).delete()
        if ids:
            transaction.on_commit(functools.partial(_deleted, ids, owner.pk), robust=True)
    return len(ids)


def task_retry(*, task):
    """A manual retry of a failed, cancelled or timed-out task (or what else its kind allows):
    it starts over as pending, with what its kind's prepare_retry keeps."""
    processor = get_processor(task.kind)
    statuses = retry_statuses(task)
    if task.status not in statuses:
        raise ApiError("not_retryable", _("Only failed, cancelled or timed-out tasks can be retried."), status=409)
    if processor is None or not processor.user_may_run(task.owner, task.params):
        raise ApiError("forbidden_kind", _("You are not allowed to run %(kind)s tasks.") % {"kind": task.kind}, status=403)
    with transaction.atomic():
        _lock_dispatch()
        waiting = _waiting_count(task.owner_id)
        if waiting >= settings.MEDIACRAFT_USER_MAX_PENDING:
            raise ApiError("too_many_pending", ngettext("You already have %(n)s task waiting.",
                                                        "You already have %(n)s tasks waiting.", waiting) % {"n": waiting},
                           status=429)
        moved = _transition(
            task.pk, frm=list(statuses), to=S.PENDING, attempts=0, progress=0, stage="", stats={},
            result=None, error_code="", error_params={}, error_detail="", message_code="waiting_slot",
            message_params={}, queued_at=None, started_at=None, finished_at=None, expires_at=None, retry_at=None,
            cancel_requested_at=None, worker_name="",
        )
        if not moved:
            raise ApiError("not_retryable", _("Only failed, cancelled or timed-out tasks can be retried."), status=409)
        transaction.on_commit(functools.partial(processor.prepare_retry, task.pk), robust=True)
        transaction.on_commit(dispatch, robust=True)
    return _reread(task)


def task_delete(*, task):
    if task.status not in Task.TERMINAL:
        raise ApiError("not_deletable", _("Cancel the task before deleting it."), status=409)
    task_id, owner_id = task.pk, task.owner_id
    with transaction.atomic():
        if not Task.objects.filter(pk=task_id, status__in=Task.TERMINAL).delete()[0]:
            raise ApiError("not_deletable", _("Cancel the task before deleting it."), status=409)
        transaction.on_commit(functools.partial(_deleted, [task_id], owner_id), robust=True)


def _deleted(task_ids, owner_id):
    """After tasks are deleted: what their runs left on disk goes, and their owner's pages drop them."""
    for task_id in task_ids:
        shutil.rmtree(task_work_dir(task_id), ignore_errors=True)
        events.broadcast_deleted(task_id, owner_id)


def reconcile():
    """Repair what crashes leave: running tasks whose heartbeat stopped are lost; queued tasks
    whose RQ job is gone are enqueued again; then dispatch. Returns what it did."""
    from rq.job import Job, JobStatus

    now = timezone.now()
    done = {"lost": 0, "requeued": 0, "failed": 0}
    stale = now - timedelta(seconds=settings.MEDIACRAFT_LOST_AFTER_SECONDS)
    for task_id in Task.objects.filter(status=S.RUNNING, heartbeat_at__lt=stale).values_list("pk", flat=True):
        _send_stop(task_id)  # in case it is alive but cannot reach the database
        if task_mark_lost(task_id=task_id, detail="no heartbeat from the worker"):
            done["lost"] += 1
            metrics.incr("mediacraft_reconciler_actions_total", {"action": "lost"})
    old = now - timedelta(seconds=10)
    queued = list(Task.objects.filter(status=S.QUEUED, queued_at__lt=old).values_list("pk", flat=True))
    if queued:
        conn = redis_connection()
        jobs = Job.fetch_many([str(pk) for pk in queued], connection=conn)
        alive = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
        for pk, job in zip(queued, jobs):
            status = job.get_status(refresh=False) if job is not None else None
            if status in alive:
                continue
            # A job that failed before its task ran (its horse died at start, the database refused
            # mark_running) is put back a few times, not forever; one Redis lost is just put back.
            restarts = job.meta.get("restarts", 0) + 1 if status == JobStatus.FAILED else 0
            if restarts > MAX_START_RESTARTS:
                result = job.latest_result()
                error = result.exc_string if result is not None and result.type == result.Type.FAILED else ""
                detail = f"its job failed {restarts} times before the task could start:\n{error or ''}"
                if _transition(pk, frm=[S.QUEUED], to=S.FAILED, error_code="worker_lost", error_params={},
                               error_detail=detail[-8000:], message_code="", message_params={}):
                    done["failed"] += 1
                    metrics.incr("mediacraft_reconciler_actions_total", {"action": "start_failed"})
                continue
            log.warning("task %s: queued but its RQ job is %s; enqueuing again", pk, status or "missing")
            enqueue(pk, restarts)
            done["requeued"] += 1
            metrics.incr("mediacraft_reconciler_actions_total", {"action": "requeued"})
    done["admitted"] = len(dispatch())
    for kind_processor in registry().values():
        try:
            kind_processor.reconcile()
        except Exception:
            log.exception("reconciling %s tasks failed", kind_processor.kind)
    return done


def cleanup_expired(*, batch=500):
    """Delete finished tasks (and their files) whose expiry has passed, and unused uploads."""
    from storage.services import cleanup_expired_files

    cleanup_expired_files()
    removed = 0
    while True:
        ids = list(Task.objects.filter(status__in=Task.TERMINAL, expires_at__lte=timezone.now())
                   .values_list("pk", flat=True)[:batch])
        if not ids:
            return removed
        Task.objects.filter(pk__in=ids, status__in=Task.TERMINAL).delete()
        for task_id in ids:
            shutil.rmtree(task_work_dir(task_id), ignore_errors=True)
        removed += len(ids)

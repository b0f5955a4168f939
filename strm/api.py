"""Seed 000's STRM sync endpoints, with its shapes: every answer is
{"success", "message", "data"}; a refusal adds {"error": {"code", "message"}} and a 4xx status.
Operators only (403 for anyone else); anyone else's task is a 404."""

import functools
from typing import Any

from django.utils.translation import gettext as _
from ninja import Router, Schema, Status

from mediacraft.api import json_object_body
from mediacraft.numbers import whole_number
from strm import selectors, services
from strm.models import SeedStatus, SourceType, SyncType
from tasks.errors import ApiError, InvalidParams
from tasks.events import public_task, task_snapshot
from tasks.models import Task, TaskKind
from tasks.processors import get_processor
from users.auth import api_user

router = Router(tags=["strm"])

START_FIELDS = {"profile", "cloud_storage"}
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 429)


class SeedOut(Schema):
    success: bool
    message: str
    data: Any = None


class SeedErrorOut(SeedOut):
    error: dict[str, Any]  # {"code", "message"}, and "field" or "task_id" when they apply


RESPONSES = {200: SeedOut, **{code: SeedErrorOut for code in ERROR_STATUSES}}


def seed_answer(view):
    """Turn the view's (message, data) into the seed's envelope, and refusals into its error shape."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            message, data = view(request, *args, **kwargs)
        except ApiError as exc:
            error = {"code": exc.code, "message": str(exc.message), **{k: v for k, v in exc.extra.items() if v}}
            data = None
            if isinstance(exc, services.SyncRunning):
                data = {"task_id": str(exc.task.pk), "status": selectors.SEED_STATUS[exc.task.status]}
            return Status(exc.status, {"success": False, "message": str(exc.message), "data": data, "error": error})
        return {"success": True, "message": str(message), "data": data}

    return wrapper


def _operator(request, *, write=False):
    user = api_user(request, write=write, create=False)
    processor = get_processor(TaskKind.STRM_SYNC)
    if user is None or not user.is_authenticated or not processor.user_may_run(user):
        raise ApiError("forbidden_kind", _("You are not allowed to run %(kind)s tasks.") % {"kind": TaskKind.STRM_SYNC},
                       status=403)
    return user


def _body(request, allowed):
    """The optional JSON object of a POST, with only the allowed fields."""
    return json_object_body(request, allowed, optional=True)


def _profile_ref(request, body):
    """Seed clients name the storage as cloud_storage; ours name the profile."""
    for value in (body.get("profile"), body.get("cloud_storage"), request.GET.get("profile")):
        if value not in (None, ""):
            return value
    return None


def _message(task, snap):
    if task.status == Task.Status.COMPLETED and isinstance(task.result, dict):
        totals = task.result.get("totals", {})
        return _("Sync completed: %(generated)s generated, %(skipped)s skipped, %(failed)s failed, %(deleted)s deleted.") % {
            name: totals.get(name, 0) for name in ("generated", "skipped", "failed", "deleted")
        }
    if snap["error"]:
        return snap["error"]["message"]
    return snap["message"] or snap["status_label"]


def seed_task(task, *, with_result=False):
    snap = public_task(task_snapshot(task))
    params = task.params or {}
    out = {
        "task_id": str(task.pk),
        "sync_type": params.get("sync_type"),
        "cloud_storage": params.get("profile_name"),
        "profile": params.get("profile_name"),
        "status": selectors.SEED_STATUS[task.status],
        "task_status": task.status,
        "status_label": snap["status_label"],
        "progress": float(task.progress),
        "stage": task.stage,
        "stage_label": snap["stage_label"],
        "trigger": params.get("trigger"),
        "created_at": snap["created_at"],
        "started_at": snap["started_at"],
        "completed_at": snap["finished_at"] if task.is_terminal else None,
        "message": _message(task, snap),
        "stats": task.stats,
        "error": snap["error"],
    }
    if with_result:
        out["result"] = task.result
    return out


def _start(request, sync_type):
    user = _operator(request, write=True)
    body = _body(request, START_FIELDS | ({"sync_type"} if sync_type is None else set()))
    if sync_type is None:
        sync_type = body.get("sync_type") or request.GET.get("sync_type") or SyncType.INCREMENTAL
        services.clean_sync_type(sync_type)
    profile = selectors.profile_resolve(_profile_ref(request, body))
    task = services.strm_sync_submit(owner=user, profile=profile, sync_type=sync_type)
    if sync_type == SyncType.FULL:
        message = _("Full sync started, task ID: %(task_id)s") % {"task_id": task.pk}
    else:
        message = _("Incremental sync started, task ID: %(task_id)s") % {"task_id": task.pk}
    return message, {"task_id": str(task.pk), "status": "started", "task_status": task.status,
                     "profile": profile.name, "sync_type": sync_type}


@router.post("/sync/full", response=RESPONSES, summary="Start a full sync")
@seed_answer
def sync_full(request):
    return _start(request, SyncType.FULL)


@router.post("/sync/incremental", response=RESPONSES, summary="Start an incremental sync")
@seed_answer
def sync_incremental(request):
    return _start(request, SyncType.INCREMENTAL)


@router.post("/sync/start", response=RESPONSES, summary="Start a sync (sync_type: full or incremental, default incremental)")
@seed_answer
def sync_start(request):
    return _start(request, None)


@router.post("/sync/stop", response=RESPONSES, summary="Stop all my syncs")
@seed_answer
def sync_stop_all(request):
    user = _operator(request, write=True)
    _body(request, set())
    stopped = services.strm_stop_all(user=user)
    return (_("%(count)s sync tasks stopped.") % {"count": len(stopped)},
            {"count": len(stopped), "task_ids": [str(t.pk) for t in stopped],
             "tasks": [seed_task(t) for t in stopped]})


@router.get("/sync/tasks", response=RESPONSES, summary="My unfinished syncs")
@seed_answer
def sync_tasks(request):
    user = _operator(request)
    tasks = [seed_task(t) for t in selectors.strm_tasks(user=user, active=True)[:200]]
    return _("Found %(count)s running tasks.") % {"count": len(tasks)}, {"tasks": tasks, "count": len(tasks)}


@router.get("/sync/tasks/{task_id}", response=RESPONSES, summary="One of my syncs")
@seed_answer
def sync_task(request, task_id: str):
    user = _operator(request)
    task = selectors.strm_task_get_for_user(user=user, task_id=task_id)
    return _("Task status retrieved."), seed_task(task, with_result=True)


@router.post("/sync/tasks/{task_id}/stop", response=RESPONSES, summary="Stop one of my syncs")
@seed_answer
def sync_task_stop(request, task_id: str):
    user = _operator(request, write=True)
    task = selectors.strm_task_get_for_user(user=user, task_id=task_id)
    task = services.strm_sync_stop(task=task)
    if task.status == Task.Status.CANCELLED:
        message, status = _("Task %(task_id)s stopped.") % {"task_id": task.pk}, "stopped"
    else:
        message, status = _("Task %(task_id)s is stopping.") % {"task_id": task.pk}, "stopping"
    return message, {"task_id": str(task.pk), "status": status, "task_status": task.status}


@router.get("/sync/history", response=RESPONSES, summary="My finished syncs, newest first")
@seed_answer
def sync_history(request, limit: str = "20", sync_type: str = "", status: str = ""):
    user = _operator(request)
    limit = whole_number(limit, "limit", 1, 100)
    if sync_type and sync_type not in SyncType.values:
        raise InvalidParams(
            _("sync_type must be one of: %(choices)s.") % {"choices": ", ".join(SyncType.values)}, "sync_type")
    statuses = None
    if status:
        statuses = [s for s in selectors.engine_statuses(status) if s in Task.TERMINAL]
        if not statuses:
            choices = [SeedStatus.COMPLETED, SeedStatus.FAILED, SeedStatus.CANCELLED, Task.Status.TIMEOUT]
            raise InvalidParams(_("status must be one of: %(choices)s.") % {"choices": ", ".join(choices)}, "status")
    qs = selectors.strm_tasks(user=user, active=False, sync_type=sync_type or None, statuses=statuses)
    total = qs.count()
    history = [seed_task(t, with_result=True) for t in qs[:limit]]
    return (_("Found %(count)s history records.") % {"count": len(history)},
            {"history": history, "count": len(history), "total": total})


@router.get("/profiles", response=RESPONSES, summary="The STRM profiles I can sync")
@seed_answer
def profiles(request):
    _operator(request)
    items = []
    for profile in selectors.profile_list():
        active = selectors.strm_active_task(profile_id=profile.pk)
        items.append({
            "id": profile.pk, "name": profile.name, "description": profile.description,
            "source_type": profile.source_type,
            "source": profile.source_url if profile.source_type == SourceType.WEBDAV else profile.source_path,
            "target": profile.target_path, "schedule": profile.schedule,
            "next_run_at": profile.next_run_at.isoformat() if profile.next_run_at else None,
            "last_success_at": profile.last_success_at.isoformat() if profile.last_success_at else None,
            "last_sync_type": profile.last_sync_type or None,
            "running_task_id": str(active.pk) if active else None,
        })
    return _("Found %(count)s profiles.") % {"count": len(items)}, {"profiles": items, "count": len(items)}


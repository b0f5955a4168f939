"""Seed 001's endpoints, with its shapes, so its clients keep working:

    POST /api/tasks/submit            TaskSubmitRequest -> TaskResponse
    GET  /api/tasks/{id}              TaskResponse
    GET  /api/tasks?status=&limit=&offset=   {"tasks", "total", "limit", "offset"}
    POST /api/tasks/{id}/cancel       {"success", "message"}

No trailing slash: ours, with one, are other routes. Only download tasks are seen here; anyone
else's task is a 404. A refusal carries seed 001's {"detail"} and our {"error": {"code", "message"}}.
"""

import functools
from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _
from ninja import Router, Schema, Status

from mediacraft.api import read_json
from mediacraft.numbers import whole_number
from downloads import selectors, services
from downloads.selectors import SeedStatus
from tasks import services as task_services
from tasks.errors import ApiError, InvalidParams
from tasks.events import public_task, task_snapshot
from tasks.models import Task
from users.auth import api_user
from users.services import visitor_ensure

router = Router(tags=["downloads (seed 001)"])

PROGRESS_KEYS = ("total_files", "completed_files", "failed_files", "active_files", "total_size", "downloaded_size",
                 "progress_percent", "download_speed", "eta_seconds")
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 429)


class DownloadProgressInfo(Schema):
    total_files: int
    completed_files: int = 0
    failed_files: int = 0
    active_files: int = 0
    total_size: int = 0
    downloaded_size: int = 0
    progress_percent: float = 0.0
    download_speed: int = 0
    eta_seconds: int | None = None


class DownloadOutputFile(Schema):
    id: str
    name: str
    size: int
    url: str


class TaskResponse(Schema):
    task_id: str
    status: SeedStatus
    message: str
    json_url: str | None = None
    progress: DownloadProgressInfo | None = None
    draft_path: str | None = None
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    # Beyond seed 001: our own status, the downloaded files and the ones that failed.
    task_status: str
    outputs: list[DownloadOutputFile] = []
    failures: list[dict[str, Any]] = []


class TaskListResponse(Schema):
    tasks: list[TaskResponse]
    total: int
    limit: int
    offset: int


class TaskCancelResponse(Schema):
    success: bool
    message: str
    task_id: str
    status: SeedStatus


class DownloadErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class DownloadErrorOut(Schema):  # not SeedErrorOut: OpenAPI names components by class (strm/api.py)
    detail: str
    error: DownloadErrorDetail


def seed_errors(view):
    """A refusal in both shapes: seed 001's {"detail"} and ours {"error"}."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ApiError as exc:
            error = {"code": exc.code, "message": str(exc.message), **{k: v for k, v in exc.extra.items() if v}}
            return Status(exc.status, {"detail": str(exc.message), "error": error})

    return wrapper


def responses(ok):
    return {200: ok, **{code: DownloadErrorOut for code in ERROR_STATUSES}}


def _failures_message(failures, total):
    names = ", ".join(f["name"] for f in failures[:5]) + (", …" if len(failures) > 5 else "")
    return _("%(failed)s of %(total)s files could not be downloaded: %(names)s") % {
        "failed": len(failures), "total": total, "names": names}


def seed_task(task):
    """A task in seed 001's TaskResponse shape, in the viewer's language."""
    snap = public_task(task_snapshot(task))
    stats = task.stats or {}
    progress = {k: stats.get(k) for k in PROGRESS_KEYS} if "total_files" in stats else None
    failures = (task.result or {}).get("failed", []) if task.status == Task.Status.COMPLETED else []
    if snap["error"]:
        error_message = snap["error"]["message"]
    elif failures:
        error_message = _failures_message(failures, (task.result or {}).get("total_files", len(failures)))
    else:
        error_message = None
    moments = [t for t in (task.created_at, task.queued_at, task.started_at, task.heartbeat_at, task.finished_at) if t]
    return {
        "task_id": str(task.pk),
        "status": selectors.seed_status(task),
        "message": snap["message"] or snap["status_label"],
        "json_url": None,
        "progress": progress,
        "draft_path": None,
        "error_message": error_message,
        "created_at": task.created_at,
        "updated_at": max(moments),
        "completed_at": task.finished_at if task.is_terminal else None,
        "task_status": task.status,
        "outputs": [{k: f[k] for k in ("id", "name", "size", "url")} for f in snap["outputs"]],
        "failures": failures,
    }


@router.post("/submit", response=responses(TaskResponse),
             summary="Submit seed 001's draft task: a download of every material URL")
@seed_errors
def submit(request):
    user = api_user(request, write=True, create=False)
    task = services.seed_submit(owner=user, owner_factory=lambda: visitor_ensure(request), body=read_json(request))
    return seed_task(task)


@router.get("", response=responses(TaskListResponse), summary="My download tasks, newest first (seed 001)")
@seed_errors
def list_tasks(request, status: str = "", limit: str = "20", offset: str = "0"):
    if status and status not in SeedStatus.values:
        raise InvalidParams(_("status must be one of: %(choices)s.") % {"choices": ", ".join(SeedStatus.values)},
                            "status")
    limit = whole_number(limit, "limit", 1, 100)
    offset = whole_number(offset, "offset", 0, 10**9)
    qs = selectors.download_tasks(user=api_user(request), status=status or None)
    return {"tasks": [seed_task(t) for t in qs[offset: offset + limit]], "total": qs.count(), "limit": limit,
            "offset": offset}


@router.get("/{task_id}", response=responses(TaskResponse), summary="One of my download tasks (seed 001)")
@seed_errors
def get_task(request, task_id: str):
    return seed_task(selectors.download_task_get_for_user(user=api_user(request), task_id=task_id))


@router.post("/{task_id}/cancel", response=responses(TaskCancelResponse),
             summary="Cancel one of my download tasks (seed 001)")
@seed_errors
def cancel(request, task_id: str):
    user = api_user(request, write=True)
    task = selectors.download_task_get_for_user(user=user, task_id=task_id)
    if task.is_terminal:
        success, message = False, _("Task %(task_id)s cannot be cancelled: it has already finished.")
    else:
        try:
            task = task_services.task_cancel(task=task)
        except ApiError as exc:
            if exc.code != "not_cancellable":
                raise
            task.refresh_from_db()  # it finished meanwhile
        success = not task.is_terminal or task.status == Task.Status.CANCELLED
        if task.status == Task.Status.CANCELLED:
            message = _("Task %(task_id)s was cancelled.")
        elif success:
            message = _("Task %(task_id)s is being cancelled.")
        else:
            message = _("Task %(task_id)s cannot be cancelled: it has already finished.")
    return {"success": success, "message": message % {"task_id": task.pk}, "task_id": str(task.pk),
            "status": selectors.seed_status(task)}

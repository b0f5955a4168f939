"""Task endpoints: thin views that validate input, call one service and render the task JSON."""

import math
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Router, Schema, Status

from mediacraft.api import NumberTooLong, json_object_body, number_too_long_message, parse_json
from tasks import metrics, selectors, services
from tasks.errors import ApiError
from tasks.events import new_task_files, public_task, task_snapshot
from tasks.models import Task, TaskKind
from storage.api import require_on_disk, store_uploads, uploaded_files
from storage.models import StoredFile
from storage.responses import archive_names, zip_response
from storage.selectors import files_of_task
from storage.services import safe_name
from tasks.processors import get_processor
from users.auth import api_user
from users.services import visitor_ensure

router = Router(tags=["tasks"])

SUBMIT_FIELDS = {"kind", "params", "priority", "title", "timeout"}


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


class TaskError(Schema):
    code: str
    message: str
    detail: str | None = None


class OutputFile(Schema):
    id: str
    name: str
    size: int
    url: str
    media: dict[str, Any] = {}


class TaskOut(Schema):
    task_id: str
    kind: str
    kind_label: str
    title: str
    status: str
    status_label: str
    stage: str
    stage_label: str
    progress: float
    message: str
    stats: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    timeout: int
    error: TaskError | None
    result: Any
    params: dict[str, Any]
    inputs: list[OutputFile]
    outputs: list[OutputFile]
    timeline: list[dict[str, Any]]
    retryable: bool
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    retry_at: datetime | None


class TaskListOut(Schema):
    items: list[TaskOut]
    count: int
    page: int
    pages: int


class CancelAllOut(Schema):
    cancelled: int


class DeleteFinishedOut(Schema):
    deleted: int


def task_json(task, files=None):
    return public_task(task_snapshot(task, files))


SUBMIT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {
                        "kind": {"type": "string", "enum": list(TaskKind.values)},
                        "params": {"type": "object"},
                        "priority": {"type": "integer", "minimum": 1, "maximum": 10},
                        "title": {"type": "string", "maxLength": 200},
                        "timeout": {"type": "integer", "minimum": 1},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {
                        "kind": {"type": "string"},
                        "params": {"type": "string", "description": "JSON object"},
                        "priority": {"type": "integer"},
                        "title": {"type": "string"},
                        "timeout": {"type": "integer"},
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            },
        },
    }
}


def _parse_submit(request):
    """Return (fields, files) from a JSON body or a multipart form."""
    content_type = request.content_type or ""
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        fields = {k: request.POST.get(k) for k in request.POST if k in SUBMIT_FIELDS}
        unknown = sorted(set(request.POST) - SUBMIT_FIELDS)
        raw = fields.get("params")
        if raw in (None, ""):
            fields["params"] = {}
        else:
            try:
                fields["params"] = parse_json(raw)
            except NumberTooLong:
                raise ApiError("bad_json", number_too_long_message(), field="params") from None
            except ValueError:
                raise ApiError("bad_json", _("params must be a JSON object."), field="params") from None
        files = uploaded_files(request)
        unknown += sorted(set(request.FILES) - {"files"})
    else:
        fields, unknown, files = json_object_body(request, SUBMIT_FIELDS), [], []
    if unknown:
        raise ApiError("unknown_field", _("Unknown field: %(name)s.") % {"name": str(unknown[0])[:60]}, field=str(unknown[0])[:60])
    if not fields.get("kind"):
        raise ApiError("invalid_params", _("kind is required."), field="kind")
    return fields, files


@router.post("/", response={201: TaskOut, 400: ErrorOut, 403: ErrorOut, 413: ErrorOut, 429: ErrorOut},
             openapi_extra=SUBMIT_DOC, summary="Submit a task")
def submit(request):
    uploads = []
    try:
        fields, uploads = _parse_submit(request)
        priority = fields.get("priority")
        options = {"kind": fields["kind"], "params": fields.get("params", {}), "title": fields.get("title") or "",
                   "priority": 5 if priority in (None, "") else priority, "timeout": fields.get("timeout")}
        processor = get_processor(fields["kind"]) if isinstance(fields["kind"], str) else None
        if uploads and processor is not None and processor.accepts_files:
            user = api_user(request, write=True)  # an upload is a write: the visitor exists from here
            stored = store_uploads(user, uploads)
            try:
                task = services.task_submit(owner=user, files=stored, **options)
            except Exception:
                for f in stored:
                    f.delete()
                raise
        else:
            user = api_user(request, write=True, create=False)
            task = services.task_submit(owner=user, owner_factory=lambda: visitor_ensure(request), files=uploads,
                                        **options)
    finally:
        for upload in uploads:
            getattr(upload, "discard", upload.close)()
    return Status(201, task_json(task, new_task_files(task)))


@router.get("/", response={200: TaskListOut, 400: ErrorOut}, summary="List my tasks")
def list_tasks(request, status: str = "", kind: str = "", q: str = "", page: int = 1, page_size: int = 20):
    """q: only tasks whose title contains this text (any case)."""
    status, kind, q = selectors.task_filters(status=status, kind=kind, q=q)
    if not 1 <= page_size <= 100:
        raise ApiError("invalid_page", _("page_size must be from 1 to 100."), field="page_size")
    if page < 1:
        raise ApiError("invalid_page", _("page must be 1 or more."), field="page")
    qs = selectors.task_list(user=api_user(request), status=status or None, kind=kind or None, q=q or None)
    count = qs.count()
    pages = max(1, math.ceil(count / page_size))
    items = [task_json(t) for t in qs[(page - 1) * page_size : page * page_size]] if page <= pages else []
    return {"items": items, "count": count, "page": page, "pages": pages}


@router.post("/cancel-all/", response={200: CancelAllOut, 400: ErrorOut}, summary="Cancel all my unfinished tasks")
def cancel_all(request, kind: str = "", status: str = "", q: str = ""):
    """Optionally only those the list's filters show: of one kind, of one unfinished status, with
    this text in their title."""
    user = api_user(request, write=True)
    return {"cancelled": services.task_cancel_all(owner=user, kind=kind, status=status, q=q)}


@router.post("/delete-finished/", response={200: DeleteFinishedOut, 400: ErrorOut},
             summary="Delete all my finished tasks and their files")
def delete_finished(request, kind: str = "", status: str = "", q: str = ""):
    """Optionally only those the list's filters show: of one kind, of one finished status, with
    this text in their title."""
    user = api_user(request, write=True)
    return {"deleted": services.task_delete_finished(owner=user, kind=kind, status=status, q=q)}


@router.get("/{task_id}/", response={200: TaskOut, 404: ErrorOut}, summary="One task")
def get_task(request, task_id: str):
    return task_json(selectors.task_get_for_user(user=api_user(request), task_id=task_id))


@router.get("/{task_id}/outputs.zip", response={404: ErrorOut, 410: ErrorOut},
            summary="All result files of a task, as one ZIP (streamed)")
def outputs_zip(request, task_id: str):
    task = selectors.task_get_for_user(user=api_user(request), task_id=task_id)
    outputs = files_of_task(task.pk, StoredFile.Role.OUTPUT)
    if not outputs:
        raise ApiError("no_outputs", _("This task has no result files."), status=404)
    require_on_disk(*outputs)
    names = archive_names([f.original_name for f in outputs])
    entries = [(name, f.abs_path, f.size, timezone.localtime(f.created_at)) for name, f in zip(names, outputs)]
    metrics.incr("mediacraft_served_bytes_total", amount=sum(f.size for f in outputs))
    return zip_response(request, entries, f"{safe_name(task.title, default=task.kind)}.zip")


@router.post("/{task_id}/cancel/", response={200: TaskOut, 404: ErrorOut, 409: ErrorOut}, summary="Cancel a task")
def cancel(request, task_id: str):
    user = api_user(request, write=True)
    task = selectors.task_get_for_user(user=user, task_id=task_id)
    return task_json(services.task_cancel(task=task))


@router.post("/{task_id}/retry/", response={200: TaskOut, 404: ErrorOut, 409: ErrorOut}, summary="Retry a task")
def retry(request, task_id: str):
    user = api_user(request, write=True)
    task = selectors.task_get_for_user(user=user, task_id=task_id)
    return task_json(services.task_retry(task=task))


@router.delete("/{task_id}/", response={204: None, 404: ErrorOut, 409: ErrorOut}, summary="Delete a finished task")
def delete(request, task_id: str):
    user = api_user(request, write=True)
    services.task_delete(task=selectors.task_get_for_user(user=user, task_id=task_id))
    return Status(204, None)

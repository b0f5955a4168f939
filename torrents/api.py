"""Seed 004's calibration endpoints, with its shapes:

- POST /api/calibrate/async {"info_hash", "connection"?, "timeout"?} → {"task_id", "status": "pending"}
- GET /api/calibrate/status/{task_id} → {"task_id", "status", "info_hash", "result" | "error"}

Statuses are seed 004's (pending, running, completed, failed, timeout). A completed single
calibration's `result` is the torrent's name (seed 004's result was the real file name), with
its `files` ([{"path", "size"}]) and `total_size` beside it; a batch (submitted through
/api/tasks/) shows `info_hash` as a list and `result` as one item per entry. Refusals are the
API's usual {"error": {"code", "message"}} with a 4xx status. Operators only; anyone else's
task is a 404."""

from typing import Any

from django.utils.translation import gettext as _
from ninja import Router, Schema

from mediacraft.api import json_object_body
from tasks.errors import ApiError, InvalidParams
from tasks.events import public_task, task_snapshot
from tasks.models import Task, TaskKind
from tasks.processors import get_processor
from torrents import selectors, services
from torrents.models import SeedStatus
from users.auth import api_user

router = Router(tags=["calibration"])

SUBMIT_FIELDS = {"info_hash", "connection", "timeout"}


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


class SubmitIn(Schema):
    info_hash: str
    connection: str | None = None
    timeout: int | None = None


class SubmitOut(Schema):
    task_id: str
    status: str


class StatusOut(Schema):
    task_id: str
    status: str
    info_hash: Any
    result: Any = None
    files: list[dict[str, Any]] | None = None
    total_size: int | None = None
    error: str | None = None
    error_code: str | None = None


SUBMIT_DOC = {"requestBody": {"required": True,
                              "content": {"application/json": {"schema": SubmitIn.model_json_schema()}}}}


def _operator(request):
    user = api_user(request, write=True, create=False)
    if user is None or not user.is_authenticated or not get_processor(TaskKind.CALIBRATION).user_may_run(user):
        raise ApiError("forbidden_kind",
                       _("You are not allowed to run %(kind)s tasks.") % {"kind": TaskKind.CALIBRATION}, status=403)
    return user


def _body(request):
    body = json_object_body(request, SUBMIT_FIELDS)
    if not isinstance(body.get("info_hash"), str) or not body["info_hash"].strip():
        raise InvalidParams(_("info_hash is required: an info hash or a magnet link."), "info_hash")
    return body


def seed_status(task):
    """A calibration task in seed 004's status shape."""
    params = task.params or {}
    hashes = params.get("hashes", [])
    items = (task.result or {}).get("items", []) if isinstance(task.result, dict) else []
    single = len(hashes) == 1
    out = {"task_id": str(task.pk), "status": selectors.SEED_STATUS[task.status]}
    if single:
        out["info_hash"] = items[0]["info_hash"] if items else _info_hash(hashes[0])
    else:
        out["info_hash"] = [item["info_hash"] for item in items] if items else [_info_hash(h) for h in hashes]
    if task.status == Task.Status.COMPLETED:
        if single and items:
            out.update(result=items[0].get("name", ""), files=items[0].get("files", []),
                       total_size=items[0].get("total_size", 0))
        else:
            out["result"] = items
    elif out["status"] in (SeedStatus.FAILED, SeedStatus.TIMEOUT):
        error = public_task(task_snapshot(task))["error"]
        if error is None and task.status == Task.Status.CANCELLED:
            out.update(error=_("The task was cancelled."), error_code="cancelled")
        elif error is not None:
            out.update(error=error["message"], error_code=error["code"])
    return {k: v for k, v in out.items() if v is not None}


def _info_hash(text):
    from torrents.refs import BadRef, parse_ref

    try:
        return parse_ref(text).info_hash
    except BadRef:
        return text


@router.post("/async", response={200: SubmitOut, 400: ErrorOut, 403: ErrorOut, 413: ErrorOut, 429: ErrorOut},
             openapi_extra=SUBMIT_DOC, summary="Calibrate one torrent (seed 004)")
def calibrate_async(request):
    user = _operator(request)
    body = _body(request)
    try:
        task = services.calibration_submit(owner=user, hashes=[body["info_hash"].strip()],
                                           connection=body.get("connection"), timeout=body.get("timeout"))
    except InvalidParams as exc:
        if exc.field and str(exc.field).startswith("hashes"):
            exc.field = exc.extra["field"] = "info_hash"
        raise
    return {"task_id": str(task.pk), "status": selectors.SEED_STATUS[task.status]}


@router.get("/status/{task_id}", response={200: StatusOut, 404: ErrorOut}, summary="A calibration's status (seed 004)",
            exclude_none=True)
def calibrate_status(request, task_id: str):
    task = selectors.calibration_task_get_for_user(user=api_user(request), task_id=task_id)
    return seed_status(task)

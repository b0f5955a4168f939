"""File endpoints: staged uploads, metadata, downloads (owner only, with Range), preview frames."""

from datetime import datetime
from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext as _
from ninja import Router, Schema, Status

from storage import selectors, services
from storage.media import MediaError, PreviewBusy, frame_jpeg
from storage.responses import file_response
from tasks.errors import ApiError
from users.auth import api_user

router = Router(tags=["files"])


class FileOut(Schema):
    id: str
    name: str
    size: int
    role: str
    task_id: str | None
    media: dict[str, Any]
    url: str
    created_at: datetime
    expires_at: datetime | None


def file_json(stored):
    return {
        "id": str(stored.pk), "name": stored.original_name, "size": stored.size, "role": stored.role,
        "task_id": str(stored.task_id) if stored.task_id else None, "media": stored.media,
        "url": download_url(stored), "created_at": stored.created_at, "expires_at": stored.expires_at,
    }


def download_url(stored):
    return f"/api/files/{stored.pk}/download/"


def uploaded_files(request):
    """The request's uploads (field `files`); 413 naming any file over the size limit."""
    files = request.FILES.getlist("files")  # parses the body: the upload handler notes a file too large
    too_large = request.META.get("mediacraft.too_large") or []
    if too_large:
        for upload in files:
            getattr(upload, "discard", upload.close)()
        raise ApiError("too_large", _("%(name)s is larger than the %(limit)s MB upload limit.")
                       % {"name": services.safe_name(too_large[0]), "limit": _limit()}, status=413, field="files")
    return files


def _limit():
    from django.conf import settings

    return settings.MEDIACRAFT_MAX_UPLOAD_MB


def store_uploads(owner, uploads):
    """Store each upload; on the first refusal, remove the ones already stored and re-raise."""
    stored = []
    try:
        for upload in uploads:
            stored.append(services.file_store_upload(owner=owner, upload=upload))
    except Exception:
        for f in stored:
            f.delete()
        for upload in uploads:
            getattr(upload, "discard", upload.close)()
        raise
    return stored


@router.post("/", response={201: list[FileOut]}, summary="Upload videos for a later task (multipart field `files`)")
def upload(request):
    uploads = uploaded_files(request)
    if not uploads:
        raise ApiError("no_files", _("Choose at least one file to upload."), field="files")
    user = api_user(request, write=True)
    return Status(201, [file_json(f) for f in store_uploads(user, uploads)])


@router.get("/{file_id}/", response=FileOut, summary="One of my files")
def get_file(request, file_id: str):
    return file_json(selectors.file_get_for_user(user=api_user(request), file_id=file_id))


def require_on_disk(*files):
    """A 410 when a stored file's row outlived its data (removed from disk behind the server's back);
    before anything reads it, so no tool's complaint names the path on the server."""
    if any(not stored.abs_path.exists() for stored in files):
        raise ApiError("file_missing", _("The file is no longer on the server."), status=410)


@router.get("/{file_id}/download/", summary="Download (supports Range; ?inline=1 to play in the browser)")
def download(request, file_id: str, inline: bool = False):
    stored = selectors.file_get_for_user(user=api_user(request), file_id=file_id)
    require_on_disk(stored)
    response = file_response(request, stored.abs_path, stored.original_name, stored.size, inline=inline)
    from tasks.metrics import incr

    incr("mediacraft_served_bytes_total", amount=int(response.get("Content-Length") or 0))
    return response


@router.get("/{file_id}/preview/", summary="A frame of a video as JPEG, at second t")
def preview(request, file_id: str, t: float = 0.0, width: int = 960):
    stored = selectors.file_get_for_user(user=api_user(request), file_id=file_id)
    duration = stored.media.get("duration") or 0
    if not stored.media.get("width"):
        raise ApiError("not_video", _("This file is not a video."))
    if not 0 <= t <= max(duration, 0):
        raise ApiError("bad_time", _("t must be between 0 and %(duration)s seconds.") % {"duration": duration}, field="t")
    if not 16 <= width <= 3840:
        raise ApiError("bad_width", _("width must be between 16 and 3840."), field="width")
    require_on_disk(stored)
    try:
        jpeg = frame_jpeg(stored.abs_path, second=min(t, max(0.0, duration - 0.05)), width=width)
    except MediaError as exc:
        raise ApiError("no_frame", _("No frame could be read at %(t)s s: %(reason)s") % {"t": t, "reason": exc}) from None
    except PreviewBusy:
        raise ApiError("preview_busy", _("The server is busy making other previews; try again in a moment."),
                       status=503, retry_after=2) from None
    response = HttpResponse(jpeg, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@router.delete("/{file_id}/", response={204: None}, summary="Delete an upload not used by a task")
def delete(request, file_id: str):
    user = api_user(request, write=True)
    services.file_delete(stored=selectors.file_get_for_user(user=user, file_id=file_id))
    return Status(204, None)

"""The JSON API (django-ninja: OpenAPI at /api/docs, pydantic schemas, plain Django views)."""

import json
import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from tasks.errors import ApiError

log = logging.getLogger(__name__)


def read_json(request):
    """The request body parsed as JSON (None when empty), or a 413/400 in the API's error shape."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError("too_large", _("The request body is too large."), status=413) from None
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("bad_json", _("The request body is not valid JSON.")) from None


def json_object_body(request, allowed, *, optional=False):
    """The body as a JSON object with only `allowed` fields; optional: an empty body or null is {}."""
    body = read_json(request)
    if body is None and optional:
        return {}
    if not isinstance(body, dict):
        raise ApiError("bad_json", _("The request body must be a JSON object."))
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError("unknown_field", _("Unknown field: %(name)s.") % {"name": str(unknown[0])[:60]},
                       field=str(unknown[0])[:60])
    return body


def error_response(api, request, status, code, message, **extra):
    body = {"error": {"code": code, "message": str(message), **{k: v for k, v in extra.items() if v is not None}}}
    return api.create_response(request, body, status=status)


def _describe(errors):
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "payload"))
        parts.append(f"{loc}: {err.get('msg', '')}" if loc else str(err.get("msg", "")))
    return "; ".join(parts)


def build_api():
    from downloads.api import router as seed001_router
    from storage.api import router as files_router
    from strm.api import router as strm_router
    from tasks.api import router as tasks_router
    from torrents.api import router as calibrate_router
    from users.api import router as account_router

    api = NinjaAPI(
        title="MediaCraft API",
        version="1",
        description="Submit and follow media jobs. Browser sessions use the cookie plus CSRF; "
        "scripts use `Authorization: Bearer <token>` from the account page.",
        urls_namespace="api",
    )

    @api.exception_handler(ApiError)
    def on_api_error(request, exc):
        return error_response(api, request, exc.status, exc.code, exc.message, **exc.extra)

    @api.exception_handler(ValidationError)
    def on_validation(request, exc):
        return error_response(api, request, 400, "invalid", _("Invalid request: %(details)s") % {"details": _describe(exc.errors)})

    @api.exception_handler(HttpError)
    def on_http_error(request, exc):
        return error_response(api, request, exc.status_code, "http_error", str(exc))

    @api.exception_handler(Http404)
    def on_404(request, exc):
        return error_response(api, request, 404, "not_found", _("Not found."))

    @api.exception_handler(RequestDataTooBig)
    def on_too_big(request, exc):
        return error_response(api, request, 413, "too_large", _("The request body is too large."))

    @api.exception_handler(TooManyFieldsSent)
    def on_too_many(request, exc):
        return error_response(api, request, 400, "too_many_fields", _("The request has too many fields."))

    @api.exception_handler(Exception)
    def on_crash(request, exc):
        log.exception("API error on %s %s", request.method, request.path)
        return error_response(api, request, 500, "internal", _("Internal error; it has been logged."))

    api.add_router("/tasks", tasks_router)
    # Seed 001's download endpoints: /api/tasks/submit, /api/tasks/{id}, ... without a trailing slash.
    api.add_router("/tasks", seed001_router)
    api.add_router("/account", account_router)
    api.add_router("/files", files_router)
    api.add_router("/strm", strm_router)
    # Seed 004's calibration endpoints: /api/calibrate/async, /api/calibrate/status/{id}.
    api.add_router("/calibrate", calibrate_router)
    return api

"""The JSON API (django-ninja: OpenAPI at /api/docs, pydantic schemas, plain Django views)."""

import json
import logging
import re

from django.conf import settings
from django.core.exceptions import (BadRequest, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent,
                                    TooManyFilesSent)
from django.http import Http404, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser

from tasks.errors import ApiError

log = logging.getLogger(__name__)
SURROGATE = re.compile("[\ud800-\udfff]")
JSON_MAX_DIGITS = 100  # far past any number a field takes (2**63 has 19 digits), far below int()'s 4,300


class NumberTooLong(ValueError):
    pass


def _json_int(text):
    # Past 4,300 digits int() raises, and float() of a few hundred overflows wherever a field is a number.
    if len(text.lstrip("-")) > JSON_MAX_DIGITS:
        raise NumberTooLong(text)
    return int(text)


def parse_json(raw):
    """JSON text as a request may carry it, or ValueError: also for nesting deeper than the
    parser goes, for lone surrogates ("\\ud800"), which no database, file name or command
    line can take, and for integers of more than JSON_MAX_DIGITS digits (NumberTooLong)."""
    try:
        value = json.loads(raw, parse_int=_json_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    stack = [value]
    while stack:  # no recursion: the parser allows deeper nesting than a recursive walk would
        item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                raise ValueError("a lone surrogate in a JSON string")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


class JsonParser(Parser):
    """Typed bodies (ninja schemas) are read by the same rules as read_json."""

    def parse_body(self, request):
        return parse_json(request.body)


def read_json(request):
    """The request body parsed as JSON (None when empty), or a 413/400 in the API's error shape."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError("too_large", _("The request body is too large."), status=413) from None
    if not raw.strip():
        return None
    try:
        return parse_json(raw)
    except NumberTooLong:
        raise ApiError("bad_json", number_too_long_message()) from None
    except ValueError:  # UnicodeDecodeError included
        raise ApiError("bad_json", _("The request body is not valid JSON.")) from None


def number_too_long_message():
    return _("The request holds a number of more than %(digits)s digits.") % {"digits": JSON_MAX_DIGITS}


UNREADABLE_BODY = (SuspiciousOperation, BadRequest, MultiPartParserError, UnreadablePostError)


def unreadable_body(exc):
    """(status, code, message) for a request body that Django gave up parsing (files, fields or
    size past the limits, a malformed multipart body, a client gone), or None for another error."""
    if isinstance(exc, TooManyFilesSent):
        return 400, "too_many_files", _("Too many files: at most %(limit)s files per request.") % {
            "limit": settings.DATA_UPLOAD_MAX_NUMBER_FILES}
    if isinstance(exc, TooManyFieldsSent):
        return 400, "too_many_fields", _("Too many fields: at most %(limit)s fields per request.") % {
            "limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}
    if isinstance(exc, RequestDataTooBig):
        return 413, "too_large", _("The request body is too large.")
    if isinstance(exc, UnreadablePostError):
        return 400, "body_unreadable", _("The request body could not be read to its end.")
    if isinstance(exc, MultiPartParserError):
        log.info("Unreadable multipart body: %s", exc)  # Django says why
        return 400, "bad_multipart", _("The request body is not valid multipart/form-data: check its Content-Type "
                                       "and boundary.")
    if isinstance(exc, UNREADABLE_BODY):
        return 400, "bad_request", _("The request body could not be read: it is not a well-formed form or upload.")
    return None


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


# pydantic's error types → our messages, so a client reads the viewer's language and never
# pydantic's English ("Field required"). The rest fall back to a plain "is not valid".
VALIDATION_MESSAGES = {
    "missing": gettext_lazy("%(field)s is required."),
    "int_type": gettext_lazy("%(field)s must be a whole number."),
    "int_parsing": gettext_lazy("%(field)s must be a whole number."),
    "int_from_float": gettext_lazy("%(field)s must be a whole number."),
    "float_type": gettext_lazy("%(field)s must be a number."),
    "float_parsing": gettext_lazy("%(field)s must be a number."),
    "finite_number": gettext_lazy("%(field)s must be a number."),
    "bool_type": gettext_lazy("%(field)s must be true or false."),
    "bool_parsing": gettext_lazy("%(field)s must be true or false."),
    "string_type": gettext_lazy("%(field)s must be text."),
    "string_unicode": gettext_lazy("%(field)s must be text."),
    "string_too_long": gettext_lazy("%(field)s must be at most %(max_length)s characters long."),
    "string_too_short": gettext_lazy("%(field)s must be at least %(min_length)s characters long."),
    "greater_than_equal": gettext_lazy("%(field)s must be at least %(ge)s."),
    "greater_than": gettext_lazy("%(field)s must be greater than %(gt)s."),
    "less_than_equal": gettext_lazy("%(field)s must be at most %(le)s."),
    "less_than": gettext_lazy("%(field)s must be less than %(lt)s."),
    "list_type": gettext_lazy("%(field)s must be a list."),
    "dict_type": gettext_lazy("%(field)s must be a JSON object."),
    "model_type": gettext_lazy("%(field)s must be a JSON object."),
    "model_attributes_type": gettext_lazy("%(field)s must be a JSON object."),
    "extra_forbidden": gettext_lazy("Unknown field: %(name)s."),
}
WHOLE_BODY = ("body", "query", "path", "payload", "form", "file")


def _describe(errors):
    """([translated message, ...], the first error's field) of pydantic's errors."""
    messages, first_field = [], None
    for err in errors[:3]:
        field = ".".join(str(p) for p in err.get("loc", ()) if p not in WHOLE_BODY)
        first_field = first_field or field or None
        if not field:
            messages.append(_("The request body is missing or not a JSON object.") if err.get("type") in (
                "missing", "model_type", "model_attributes_type", "dict_type") else _("The request is not valid."))
            continue
        template = VALIDATION_MESSAGES.get(err.get("type"), gettext_lazy("%(field)s is not valid."))
        values = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, (int, float, str))}
        try:
            messages.append(str(template) % {**values, "field": field[:60], "name": field[:60]})
        except (KeyError, TypeError, ValueError):  # a context pydantic did not give: say less, never crash
            messages.append(_("%(field)s is not valid.") % {"field": field[:60]})
    return messages, first_field


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
        parser=JsonParser(),
    )

    @api.exception_handler(ApiError)
    def on_api_error(request, exc):
        extra = dict(exc.extra)
        retry_after = extra.pop("retry_after", None)
        response = error_response(api, request, exc.status, exc.code, exc.message, **extra)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response

    @api.exception_handler(ValidationError)
    def on_validation(request, exc):
        messages, field = _describe(exc.errors)
        return error_response(api, request, 400, "invalid", " ".join(messages) or _("The request is not valid."),
                              field=field)

    @api.exception_handler(HttpError)
    def on_http_error(request, exc):
        return error_response(api, request, exc.status_code, "http_error", str(exc))

    @api.exception_handler(Http404)
    def on_404(request, exc):
        return error_response(api, request, 404, "not_found", _("Not found."))

    def on_unreadable_body(request, exc):  # raised wherever a view first reads request.POST or FILES
        return error_response(api, request, *unreadable_body(exc))

    for exc_class in UNREADABLE_BODY:
        api.add_exception_handler(exc_class, on_unreadable_body)

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

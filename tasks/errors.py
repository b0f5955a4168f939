"""Exceptions that carry a code, translatable parameters and an HTTP status."""

from django.utils.translation import gettext_lazy as _


class ApiError(Exception):
    """A 4xx answer: {"error": {"code", "message"}}."""

    status = 400

    def __init__(self, code, message, status=None, **extra):
        super().__init__(str(message))
        self.code = code
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra


class NotFound(ApiError):
    status = 404

    def __init__(self, message=None):
        super().__init__("not_found", message or _("Not found."))


class InvalidParams(ApiError):
    """A processor refused the parameters or files; `field` names the culprit."""

    def __init__(self, message, field=None, code="invalid_params"):
        super().__init__(code, message, field=field)
        self.field = field


class TaskError(Exception):
    """A processor's failure: a code from tasks.messages.ERRORS, its parameters, technical detail."""

    def __init__(self, code, params=None, detail="", retryable=False):
        super().__init__(code)
        self.code = code
        self.params = params or {}
        self.detail = detail
        self.retryable = retryable


class TaskAborted(Exception):
    """The task stopped being ours to run (cancelled, lost, deleted): stop quietly."""

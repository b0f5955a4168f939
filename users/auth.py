"""Who is calling the API: a Bearer token, else the session cookie (with CSRF on writes)."""

from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _

from tasks.errors import ApiError
from users.services import user_from_token, visitor_ensure


def check_csrf(request):
    middleware = CsrfViewMiddleware(lambda req: None)
    middleware.process_request(request)
    if middleware.process_view(request, None, (), {}) is not None:
        raise ApiError("csrf_failed", _("CSRF check failed: reload the page and try again."), status=403)


def api_user(request, *, write=False, create=True):
    """The calling user, or None for an anonymous read. A write without a token is CSRF-checked
    (it rides on a cookie) and creates the visitor identity if needed, unless create=False: then
    the caller creates it once the write is known to be valid."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _sep, raw = header.partition(" ")
        user = user_from_token(raw.strip()) if scheme.lower() == "bearer" and raw.strip() else None
        if user is None:
            raise ApiError("invalid_token", _("The API token is missing, malformed or revoked."), status=401)
        return user
    if write:
        check_csrf(request)
        if create:
            return visitor_ensure(request)
    return request.user if request.user.is_authenticated else None

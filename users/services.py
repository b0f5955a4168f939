"""Visitor identity and accounts. A visitor is a Django User with an unusable password,
created on their first write and kept by the session cookie."""

import copy
import datetime
import math
import re
import secrets
import uuid

from django.contrib.auth import authenticate, get_user_model, login, logout
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mediacraft import sql
from tasks.errors import ApiError, NotFound
from tasks.events import close_session_sockets
from users import throttle
from users.models import ApiToken, token_digest

VISITOR_PREFIX = "visitor-"
BACKEND = "django.contrib.auth.backends.ModelBackend"
CSRF_META = ("CSRF_COOKIE", "CSRF_COOKIE_NEEDS_UPDATE")  # where Django keeps the token it will send


def is_visitor(user):
    return user.is_authenticated and not user.has_usable_password() and user.username.startswith(VISITOR_PREFIX)


def visitor_ensure(request):
    """The request's user, creating and logging in a new visitor if there is none."""
    if request.user.is_authenticated:
        return request.user
    user = get_user_model()(username=f"{VISITOR_PREFIX}{uuid.uuid4().hex[:20]}")
    user.set_unusable_password()
    user.save()
    csrf = {key: request.META[key] for key in CSRF_META if key in request.META}
    login(request, user, backend=BACKEND)  # this rotates the CSRF token
    request.mediacraft_new_visitor = (user.pk, csrf)
    return user


def visitor_discard_new(request):
    """Undo this request's visitor_ensure after the write was refused: no User row, no session
    and the CSRF token the page already holds, as if the request had never come. A visitor from
    an earlier request is never touched."""
    created = getattr(request, "mediacraft_new_visitor", None)
    if created is None:
        return
    del request.mediacraft_new_visitor
    user_pk, csrf = created
    logout(request)  # flushes the session: no cookie goes out
    get_user_model().objects.filter(pk=user_pk).delete()  # cascades to anything stored meanwhile
    for key in CSRF_META:
        request.META.pop(key, None)
    request.META.update(csrf)


def account_claim(*, request, username, password):
    """Give the current visitor a username and password; their tasks stay theirs."""
    user = visitor_ensure(request)
    if user.has_usable_password():
        raise ApiError("already_claimed", _("This account already has a password."), status=409)
    username = (username or "").strip() if isinstance(username, str) else ""
    field = get_user_model()._meta.get_field("username")
    try:
        field.run_validators(username)
        if not username or username.startswith(VISITOR_PREFIX):
            raise ValidationError(_("Choose a username."))
    except ValidationError as exc:
        raise ApiError("invalid_username", " ".join(exc.messages), field="username") from None
    taken = ApiError("username_taken", _("The username %(name)s is taken.") % {"name": username}, status=409)
    if _name_taken(username, user):
        raise taken
    if not isinstance(password, str):
        password = ""
    try:
        candidate = copy.copy(user)
        candidate.username = username  # so the similarity check compares with the new name
        validate_password(password, candidate)
    except ValidationError as exc:
        raise ApiError("invalid_password", " ".join(exc.messages), field="password") from None
    user.username = username
    user.set_password(password)
    try:
        with transaction.atomic():
            # Claims of one name in any case, at once: the look and the write under one lock, so
            # one of them wins and the others are told the name is taken.
            sql.lock(sql.ACCOUNTS)
            if _name_taken(username, user):
                raise taken
            user.save()
    except IntegrityError:  # taken in exactly this case by a write that skipped the lock (the admin)
        raise taken from None
    _login(request, user)  # a new session key after the privilege change
    return user


def _name_taken(username, user):
    return get_user_model().objects.filter(username__iexact=username).exclude(pk=user.pk).exists()


def account_login(*, request, username, password):
    """Log in; an unclaimed visitor's tasks and files move to the account they log in to."""
    if not isinstance(username, str) or not isinstance(password, str) or "\x00" in username + password:
        raise ApiError("invalid_login", _("Enter a username and a password."))
    wait = throttle.wait_seconds(request, username)
    if wait:
        raise ApiError("too_many_logins", ngettext(
            "Too many failed logins for this name; try again in %(minutes)s minute.",
            "Too many failed logins for this name; try again in %(minutes)s minutes.",
            math.ceil(wait / 60)) % {"minutes": math.ceil(wait / 60)}, status=429, retry_after=wait)
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ApiError("invalid_login", _("Wrong username or password."), status=401)
    previous = request.user if request.user.is_authenticated else None
    if previous is not None and previous.pk != user.pk and is_visitor(previous):
        _visitor_merge(visitor=previous, account=user)
    _login(request, user)
    return user


def _login(request, user):
    """Log in. Sockets opened under the old session key are closed: the open pages reconnect under
    the new key, as whoever the browser now is, and a later logout reaches them."""
    old_session = request.session.session_key
    login(request, user, backend=BACKEND)
    if old_session and old_session != request.session.session_key:
        close_session_sockets(old_session)


def _visitor_merge(*, visitor, account):
    """Give the visitor's tasks and files (uploads and results) to the account, then remove the
    visitor: its delete cascades, and a StoredFile's delete removes the file from disk, so
    nothing may still point at it. Its API tokens go with it: a token made anonymously must not
    silently gain the account's rights."""
    from storage.models import StoredFile
    from tasks.models import Task

    with transaction.atomic():
        # Lock the visitor first: a worker registering an output for it now either commits
        # before the moves below (and is moved) or fails its foreign key and re-reads the owner.
        if not get_user_model().objects.select_for_update().filter(pk=visitor.pk).exists():
            return
        Task.objects.filter(owner=visitor).update(owner=account)
        StoredFile.objects.filter(owner=visitor).update(owner=account)
        visitor.delete()


def account_logout(*, request):
    if request.user.is_authenticated and is_visitor(request.user):
        # An unclaimed visitor has no way back in: logging out would orphan their tasks.
        raise ApiError("unclaimed_visitor", _("Claim your account with a password before logging out, or your "
                                              "tasks will be lost."), status=409)
    session_key = request.session.session_key
    logout(request)
    if session_key:
        close_session_sockets(session_key)  # an open page must not keep receiving this user's events


def token_create(*, user, name=""):
    """Return (token row, raw token); only the digest is stored."""
    if not isinstance(name, str) or len(name) > 100 or not name.isprintable():
        raise ApiError("invalid_name", _("The token name must be text of at most 100 characters."), field="name")
    raw = "mc_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip(), prefix=raw[:10], digest=token_digest(raw))
    return token, raw


def token_revoke(*, user, token_id):
    deleted, _rows = ApiToken.objects.filter(pk=token_id, user=user).delete() if re.fullmatch(r"[0-9]{1,18}", str(token_id)) else (0, None)
    if not deleted:
        raise NotFound()


def user_from_token(raw):
    """The active user the raw token belongs to, or None. Read on every API call: SQL, see
    mediacraft/sql.py."""
    user_model = get_user_model()
    user = next(iter(user_model.objects.raw(
        f"SELECT u.*, t.{sql.name(ApiToken, 'id')} AS token_id, t.{sql.name(ApiToken, 'last_used_at')} AS token_used "
        f"FROM {sql.name(ApiToken)} t JOIN {sql.name(user_model)} u "
        f"ON u.{sql.name(user_model, user_model._meta.pk.name)} = t.{sql.name(ApiToken, 'user')} "
        f"WHERE t.{sql.name(ApiToken, 'digest')} = %s", [token_digest(raw)])), None)
    if user is None or not user.is_active:
        return None
    now = timezone.now()
    used = user.token_used  # an extra column: not converted as a field is (naive on SQLite, stored as UTC)
    if used is not None and timezone.is_naive(used):
        used = timezone.make_aware(used, datetime.UTC)
    if used is None or (now - used).total_seconds() > 60:
        ApiToken.objects.filter(pk=user.token_id).update(last_used_at=now)
    return user

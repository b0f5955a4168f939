"""Visitor identity and accounts. A visitor is a Django User with an unusable password,
created on their first write and kept by the session cookie."""

import copy
import re
import secrets
import uuid

from django.contrib.auth import authenticate, get_user_model, login, logout
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.errors import ApiError, NotFound
from users.models import ApiToken, token_digest

VISITOR_PREFIX = "visitor-"
BACKEND = "django.contrib.auth.backends.ModelBackend"


def is_visitor(user):
    return user.is_authenticated and not user.has_usable_password() and user.username.startswith(VISITOR_PREFIX)


def visitor_ensure(request):
    """The request's user, creating and logging in a new visitor if there is none."""
    if request.user.is_authenticated:
        return request.user
    user = get_user_model()(username=f"{VISITOR_PREFIX}{uuid.uuid4().hex[:20]}")
    user.set_unusable_password()
    user.save()
    login(request, user, backend=BACKEND)
    return user


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
    if get_user_model().objects.filter(username__iexact=username).exclude(pk=user.pk).exists():
        raise ApiError("username_taken", _("The username %(name)s is taken.") % {"name": username}, status=409)
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
    user.save()
    login(request, user, backend=BACKEND)  # a new session key after the privilege change
    return user


def account_login(*, request, username, password):
    """Log in; an unclaimed visitor's tasks move to the account they log in to."""
    from tasks.models import Task

    if not isinstance(username, str) or not isinstance(password, str) or "\x00" in username + password:
        raise ApiError("invalid_login", _("Enter a username and a password."))
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ApiError("invalid_login", _("Wrong username or password."), status=401)
    previous = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        if previous is not None and previous.pk != user.pk and is_visitor(previous):
            Task.objects.filter(owner=previous).update(owner=user)
            previous.delete()
    login(request, user, backend=BACKEND)
    return user


def account_logout(*, request):
    logout(request)


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
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user

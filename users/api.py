"""Account endpoints: claim, log in/out, API tokens."""

from datetime import datetime

from django.middleware.csrf import get_token
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from ninja import Router, Schema, Status

from mediacraft.api import json_object_body
from storage.selectors import storage_usage
from tasks.models import TaskKind
from tasks.processors import registry
from tasks.errors import ApiError
from users import services
from users.auth import api_user, check_csrf
from users.models import ApiToken

router = Router(tags=["account"])


class Credentials(Schema):
    username: str
    password: str


class TokenIn(Schema):
    name: str = ""


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class NewTokenOut(TokenOut):
    token: str


class StorageOut(Schema):
    used_bytes: int
    quota_bytes: int


class AccountOut(Schema):
    authenticated: bool
    username: str | None
    claimed: bool
    is_staff: bool
    language: str
    kinds: list[str]
    tokens: list[TokenOut]
    storage: StorageOut
    csrf_token: str


def account_json(request, user):
    kinds = [k for k, p in sorted(registry().items()) if p.user_may_run(user)]
    return {
        "authenticated": bool(user),
        "username": user.username if user else None,
        "claimed": bool(user and user.has_usable_password()),
        "is_staff": bool(user and user.is_staff),
        "language": get_language(),
        "kinds": [k for k in kinds if k in TaskKind.values],
        "tokens": list(ApiToken.objects.filter(user=user)) if user else [],
        "storage": storage_usage(user=user),
        "csrf_token": get_token(request),
    }


@router.get("/", response=AccountOut, summary="Who am I")
def account(request):
    return account_json(request, api_user(request))


@router.post("/claim/", response={200: AccountOut}, summary="Claim this visitor account with a username and password")
def claim(request, body: Credentials):
    check_csrf(request)
    user = services.account_claim(request=request, username=body.username, password=body.password)
    return account_json(request, user)


@router.post("/login/", response={200: AccountOut}, summary="Log in")
def login(request, body: Credentials):
    check_csrf(request)
    user = services.account_login(request=request, username=body.username, password=body.password)
    return account_json(request, user)


@router.post("/logout/", response={204: None}, summary="Log out")
def logout(request):
    check_csrf(request)
    services.account_logout(request=request)
    return Status(204, None)


TOKEN_DOC = {"requestBody": {"required": False,
                             "content": {"application/json": {"schema": TokenIn.model_json_schema()}}}}


@router.post("/tokens/", response={201: NewTokenOut}, openapi_extra=TOKEN_DOC,
             summary="Create an API token (shown once)")
def create_token(request):
    user = api_user(request, write=True)
    if request.headers.get("Authorization"):
        raise ApiError("session_required", _("Create tokens from a browser session."), status=403)
    body = json_object_body(request, {"name"}, optional=True)  # a list, a number, "x": refused, not a nameless token
    token, raw = services.token_create(user=user, name=body.get("name", ""))
    return Status(201, {**{f: getattr(token, f) for f in ("id", "name", "prefix", "created_at", "last_used_at")}, "token": raw})


@router.delete("/tokens/{token_id}/", response={204: None}, summary="Revoke an API token")
def revoke_token(request, token_id: str):
    user = api_user(request, write=True)
    services.token_revoke(user=user, token_id=token_id)
    return Status(204, None)

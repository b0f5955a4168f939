"""Failed logins slow a guesser down: after MEDIACRAFT_LOGIN_FAILURES failures within WINDOW for
one username (in any case), or five times as many from one address (many names tried), logins
for it are refused until the window has passed. The API, the pages and the admin alike: counted
from Django's user_login_failed signal, refused by LoginThrottleBackend. Counts live in Redis,
shared by every web process; without Redis there is no limit rather than no login."""

import hashlib
import logging

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WINDOW = 15 * 60
KEY = "mediacraft:login-failures:"


def _counted(request, username):
    """(Redis key, limit) of what a login attempt counts against."""
    name = hashlib.sha256(str(username or "").casefold().encode()).hexdigest()[:32]
    keys = [(f"{KEY}user:{name}", settings.MEDIACRAFT_LOGIN_FAILURES)]
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    if address:
        keys.append((f"{KEY}addr:{address}", settings.MEDIACRAFT_LOGIN_FAILURES * 5))
    return keys


def wait_seconds(request, username):
    """How long until a login for this username from this request may be tried; 0: now."""
    from tasks.queues import redis_connection

    keys = _counted(request, username)
    try:
        pipe = redis_connection().pipeline(transaction=False)
        for key, _limit in keys:
            pipe.get(key)
            pipe.ttl(key)
        answers = pipe.execute()
    except RedisError:
        log.warning("login failures not checked: Redis did not answer", exc_info=True)
        return 0
    wait = 0
    for (_key, limit), count, ttl in zip(keys, answers[::2], answers[1::2]):
        if count is not None and int(count) >= limit:
            wait = max(wait, ttl if ttl > 0 else WINDOW)
    return wait


def record_failure(sender, credentials, request=None, **kwargs):
    """user_login_failed: count it (the window starts at a name's first failure)."""
    from tasks.queues import redis_connection

    try:
        pipe = redis_connection().pipeline(transaction=False)
        for key, _limit in _counted(request, credentials.get("username")):
            pipe.set(key, 0, ex=WINDOW, nx=True)  # the window starts (EXPIRE NX needs Redis 7)
            pipe.incr(key)
        pipe.execute()
    except RedisError:
        log.warning("a failed login was not counted: Redis did not answer", exc_info=True)


def forget_failures(sender, request, user, **kwargs):
    """user_logged_in: the name's failures are forgiven (not the address's)."""
    from tasks.queues import redis_connection

    try:
        redis_connection().delete(_counted(None, user.get_username())[0][0])
    except RedisError:
        log.warning("failed logins not reset: Redis did not answer", exc_info=True)


class LoginThrottleBackend(ModelBackend):
    """First in AUTHENTICATION_BACKENDS: refuses a login while its name or address is throttled
    (PermissionDenied ends the search); otherwise leaves it to the model backend after it. It
    authenticates nobody itself, but a session that names it (a login that picks the first
    backend) finds its user as the model backend does."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and wait_seconds(request, username):
            raise PermissionDenied()
        return None

"""MediaCraft settings: one file, driven by MEDIACRAFT_* environment variables (see README)."""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_int(name, default, minimum=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_list(name, default=()):
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def shown_url(raw):
    """A URL for an error message, its password left out."""
    from urllib.parse import urlsplit

    password = urlsplit(raw).password
    return raw.replace(password, "***") if password else raw


def make_dir(name, path):
    """Create a folder that a setting names, or stop start-up naming the setting."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}: cannot create {path}: {exc.strerror}") from None
    return path


def env_abs_paths(name, default=()):
    """A comma-separated list of absolute paths, resolved (symbolic links followed)."""
    paths = []
    for item in env_list(name, default):
        if not os.path.isabs(item):
            raise ImproperlyConfigured(f"{name} must list absolute paths, got {item!r}")
        paths.append(os.path.realpath(item))
    return paths


VAR_DIR = make_dir("MEDIACRAFT_VAR_DIR", Path(env_str("MEDIACRAFT_VAR_DIR", str(BASE_DIR / "var"))).resolve())


def _secret_key():
    key = env_str("MEDIACRAFT_SECRET_KEY")
    if key:
        return key
    # Kept under var/ so sessions (the visitors' identities) survive a restart.
    path = VAR_DIR / "secret_key"
    try:
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"MEDIACRAFT_VAR_DIR: cannot write {path} ({exc.strerror}); make the folder "
                                   f"writable, or set MEDIACRAFT_SECRET_KEY") from None


SECRET_KEY = _secret_key()
DEBUG = env_bool("MEDIACRAFT_DEBUG", False)
ALLOWED_HOSTS = env_list("MEDIACRAFT_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("MEDIACRAFT_CSRF_TRUSTED_ORIGINS")
if env_bool("MEDIACRAFT_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "ninja",
    "channels",
    "mediacraft",
    "users",
    "tasks",
    "torrents",
    "strm",
    "storage",
]
# "background" in the workers and the scheduler (manage.py sets it for `worker`, `rqworker` and
# `taskscheduler`): they leave out the apps only the web process uses, daphne (twisted) and
# django-ninja (pydantic), about a third of their memory. A worker forks a work horse for every
# task, and a fork costs in proportion to the memory it shares (page tables to copy, then a fault
# for each page written).
PROCESS = env_str("MEDIACRAFT_PROCESS", "web")
if PROCESS not in ("web", "background"):
    raise ImproperlyConfigured(f"MEDIACRAFT_PROCESS must be web or background, got {PROCESS!r}")
if PROCESS == "background":
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("daphne", "ninja")]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before the session and CSRF middleware, so it sees the cookies they set on the way out.
    "users.middleware.SecureCookiesOnHttpsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "mediacraft.middleware.JsonApiErrorsMiddleware",
    # Outside the CSRF middleware: a refused multipart POST has already streamed its files to disk.
    "storage.uploads.DiscardUploadsMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Inside the session and CSRF middleware, so they see the session and token it restores.
    "users.middleware.RefusedVisitorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mediacraft.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "mediacraft.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL is set (PostgreSQL for scale-out).
DATABASE_URL = env_str("DATABASE_URL")
# PostgreSQL connections pooled by this process: serve sets it for its daphne only (a worker
# forks, and a pooled connection must not cross a fork: tasks.worker refuses to start with one).
MEDIACRAFT_DB_POOL = env_int("MEDIACRAFT_DB_POOL", 0, minimum=0)
if DATABASE_URL:
    import dj_database_url

    # No persistent connections: under ASGI each request runs in a thread of its own, so a kept
    # connection outlives its thread unclosed; 20 concurrent clients then exhaust PostgreSQL's
    # max_connections (Django's docs: disable persistent connections under ASGI).
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    except ValueError as exc:
        problem = f"unknown scheme {exc.scheme!r}" if isinstance(exc, dj_database_url.UnknownSchemeError) \
            else "not a valid URL"
        raise ImproperlyConfigured(f"DATABASE_URL must look like postgres://user:password@host:5432/mediacraft, "
                                   f"got {shown_url(DATABASE_URL)!r}: {problem}") from None
    # Test runs from two checkouts at once (a CI clone beside a working copy) must not share, and
    # drop under each other, one test database: each checkout gets its own.
    import hashlib

    checkout = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{checkout}"[:63]}
    if MEDIACRAFT_DB_POOL:
        from psycopg_pool import ConnectionPool

        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": MEDIACRAFT_DB_POOL, "timeout": 30, "max_idle": 300,
            # One round trip per checkout, so a restarted server costs no request an error.
            "check": ConnectionPool.check_connection,
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("MEDIACRAFT_SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE serialises writers at BEGIN, so dispatch and submit limits hold.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": env_str("MEDIACRAFT_TEST_SQLITE_PATH", str(VAR_DIR / "test.sqlite3"))},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"



def env_redis_url(name):
    """A Redis address as redis-py reads one (redis://, rediss://, unix://), or empty."""
    from urllib.parse import urlsplit

    raw = env_str(name)
    if raw:
        url = urlsplit(raw)
        try:
            url.port
        except ValueError:
            ok = False
        else:
            if url.scheme in ("redis", "rediss"):
                ok = bool(url.hostname) and (url.path.strip("/").isdigit() or url.path in ("", "/"))
            else:
                ok = url.scheme == "unix" and bool(url.path)
        if not ok:
            raise ImproperlyConfigured(f"{name} must look like redis://host:6379/0, rediss://host:6380/0 or "
                                       f"unix:///path/to/redis.sock, got {shown_url(raw)!r}")
    return raw


# Redis: `manage.py serve` starts an embedded one on this socket unless the variable is set.
REDIS_URL = env_redis_url("MEDIACRAFT_REDIS_URL") or f"unix://{VAR_DIR / 'redis' / 'redis.sock'}"
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600} for name in ("high", "default", "low")}
RQ_SHOW_ADMIN_LINK = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times reads out after 5 s by default, exactly as long as channels_redis blocks
        # waiting for a socket's next message: every idle socket then died after 5 s.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": "mediacraft",
                   "capacity": 500, "expiry": 30},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Visitors: a session cookie is their identity for 30 days.
SESSION_COOKIE_AGE = 30 * 24 * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_SAVE_EVERY_REQUEST = False
CSRF_COOKIE_SAMESITE = "Lax"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]


def env_time_zone(name, default):
    import zoneinfo

    raw = env_str(name) or default
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name} must be a time zone name such as UTC or Asia/Shanghai, got {raw!r}") from None
    return raw


TIME_ZONE = env_time_zone("MEDIACRAFT_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = make_dir("MEDIACRAFT_VAR_DIR", VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = make_dir("MEDIACRAFT_MEDIA_ROOT", Path(env_str("MEDIACRAFT_MEDIA_ROOT", str(VAR_DIR / "media"))).resolve())
WHITENOISE_USE_FINDERS = True

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MEDIACRAFT_MAX_JSON_KB", 1024, minimum=1) * 1024
# Uploads stream to disk under MEDIA_ROOT/tmp, never whole in memory.
FILE_UPLOAD_HANDLERS = ["storage.uploads.StreamingUploadHandler"]
MEDIACRAFT_MAX_UPLOAD_MB = env_int("MEDIACRAFT_MAX_UPLOAD_MB", 4096, minimum=1)
MEDIACRAFT_USER_QUOTA_MB = env_int("MEDIACRAFT_USER_QUOTA_MB", 20480, minimum=1)
MEDIACRAFT_MIN_FREE_DISK_MB = env_int("MEDIACRAFT_MIN_FREE_DISK_MB", 1024, minimum=0)
MEDIACRAFT_UPLOAD_TTL_HOURS = env_int("MEDIACRAFT_UPLOAD_TTL_HOURS", 24, minimum=1)
MEDIACRAFT_PREVIEW_CONCURRENCY = env_int("MEDIACRAFT_PREVIEW_CONCURRENCY", 2, minimum=1)
MEDIACRAFT_PREVIEW_WAIT_SECONDS = 10
MEDIACRAFT_LOGIN_FAILURES = env_int("MEDIACRAFT_LOGIN_FAILURES", 10, minimum=1)
# The throttle first; sessions name the model backend, as they did before it came.
AUTHENTICATION_BACKENDS = ["users.throttle.LoginThrottleBackend", "django.contrib.auth.backends.ModelBackend"]

# Task engine.
MEDIACRAFT_USER_CONCURRENCY = env_int("MEDIACRAFT_USER_CONCURRENCY", 1, minimum=1)
MEDIACRAFT_GLOBAL_CONCURRENCY = env_int("MEDIACRAFT_GLOBAL_CONCURRENCY", 5, minimum=1)
MEDIACRAFT_USER_MAX_PENDING = env_int("MEDIACRAFT_USER_MAX_PENDING", 50, minimum=1)
MEDIACRAFT_RESULT_TTL_DAYS = env_int("MEDIACRAFT_RESULT_TTL_DAYS", 7, minimum=1)
MEDIACRAFT_MAX_TASK_TIMEOUT = env_int("MEDIACRAFT_MAX_TASK_TIMEOUT", 24 * 3600, minimum=1)
MEDIACRAFT_MAX_ATTEMPTS = env_int("MEDIACRAFT_MAX_ATTEMPTS", 3, minimum=1)
MEDIACRAFT_RETRY_BASE_SECONDS = env_int("MEDIACRAFT_RETRY_BASE_SECONDS", 5, minimum=0)
MEDIACRAFT_RETRY_MAX_SECONDS = env_int("MEDIACRAFT_RETRY_MAX_SECONDS", 300, minimum=0)
MEDIACRAFT_HEARTBEAT_SECONDS = env_int("MEDIACRAFT_HEARTBEAT_SECONDS", 3, minimum=1)
MEDIACRAFT_LOST_AFTER_SECONDS = env_int("MEDIACRAFT_LOST_AFTER_SECONDS", 15, minimum=2)
# Three heartbeats: one late or lost beat (a busy database) must not get a healthy task killed.
if MEDIACRAFT_LOST_AFTER_SECONDS < 3 * MEDIACRAFT_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"MEDIACRAFT_LOST_AFTER_SECONDS ({MEDIACRAFT_LOST_AFTER_SECONDS}) must be at least 3 times "
        f"MEDIACRAFT_HEARTBEAT_SECONDS ({MEDIACRAFT_HEARTBEAT_SECONDS}), or running tasks are taken for lost")
# A worker (tasks.worker.TaskWorker) checks in with Redis every third of this; its key expires,
# and /healthz and /metrics stop counting it, this long after its last check-in.
MEDIACRAFT_WORKER_TTL_SECONDS = env_int("MEDIACRAFT_WORKER_TTL_SECONDS", 60, minimum=3)
MEDIACRAFT_RECONCILE_SECONDS = env_int("MEDIACRAFT_RECONCILE_SECONDS", 2, minimum=1)
MEDIACRAFT_CLEANUP_SECONDS = env_int("MEDIACRAFT_CLEANUP_SECONDS", 3600, minimum=1)
MEDIACRAFT_PROGRESS_DB_INTERVAL = 0.25
MEDIACRAFT_PROGRESS_EVENT_INTERVAL = 0.1

# STRM library sync: profiles may read (local sources) and write (libraries) only inside these.
MEDIACRAFT_STRM_ROOTS = env_abs_paths("MEDIACRAFT_STRM_ROOTS", [str(VAR_DIR / "strm")])

# Prometheus /metrics: staff sessions, or this bearer token (empty: staff only).
MEDIACRAFT_METRICS_TOKEN = env_str("MEDIACRAFT_METRICS_TOKEN")


def env_aria2_url(name):
    """An aria2 JSON-RPC address, http(s)://host:port/jsonrpc, or empty."""
    from urllib.parse import urlsplit

    raw = env_str(name)
    if raw:
        url = urlsplit(raw)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme not in ("http", "https") or not url.hostname or not port or url.path not in ("", "/jsonrpc") \
                or url.query:
            raise ImproperlyConfigured(f"{name} must look like http://127.0.0.1:6800/jsonrpc, got {raw!r}")
    return raw


# Downloads through aria2c. `serve` starts its own daemon and hands its RPC address and secret to
# its children in these two; set them to use a daemon of your own instead (it must write to
# MEDIA_ROOT at the same path). Private addresses are refused unless allowed.
MEDIACRAFT_ARIA2_URL = env_aria2_url("MEDIACRAFT_ARIA2_URL")
MEDIACRAFT_ARIA2_SECRET = env_str("MEDIACRAFT_ARIA2_SECRET")
MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = env_bool("MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE", False)
MEDIACRAFT_DOWNLOAD_MAX_URLS = env_int("MEDIACRAFT_DOWNLOAD_MAX_URLS", 100, minimum=1)

# Torrent calibration through qBittorrent: a calibration task's default timeout (seconds), which
# is also how long it waits for a magnet link's metadata.
MEDIACRAFT_CALIBRATION_TIMEOUT = env_int("MEDIACRAFT_CALIBRATION_TIMEOUT", 60, minimum=2)

# Launcher (`manage.py serve`).
MEDIACRAFT_WORKERS = env_int("MEDIACRAFT_WORKERS", 2, minimum=0)
MEDIACRAFT_BIND = env_str("MEDIACRAFT_BIND", "127.0.0.1:8000")

LOG_LEVEL = env_str("MEDIACRAFT_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"MEDIACRAFT_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                               f"got {LOG_LEVEL!r}")
LOG_FORMAT = env_str("MEDIACRAFT_LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"MEDIACRAFT_LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"task_id": {"()": "mediacraft.logs.TaskIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [task %(task_id)s] %(message)s"},
        "json": {"()": "mediacraft.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["task_id"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

import hashlib
import json
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from strm import paths


class SourceType(models.TextChoices):
    WEBDAV = "webdav", _("WebDAV (Alist, OpenList, cloud gateways)")
    LOCAL = "local", _("Local folder")


class SyncType(models.TextChoices):
    FULL = "full", _("Full")
    INCREMENTAL = "incremental", _("Incremental")


class ScheduleKind(models.TextChoices):
    NONE = "none", _("No schedule")
    INTERVAL = "interval", _("Every N minutes")
    CRON = "cron", _("Cron expression")


class SyncTrigger(models.TextChoices):
    API = "api", _("By hand")
    SCHEDULE = "schedule", _("Schedule")


class SeedStatus(models.TextChoices):
    """The five task statuses seed 000's clients know; engine statuses map onto them."""

    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


SCHEDULE_FIELDS = {"schedule", "schedule_interval_minutes", "schedule_cron", "enabled"}


def validate_extensions(value):
    paths.parse_extensions(value)


def validate_ignore(value):
    paths.compile_ignore(value)


def validate_template(value):
    if value:
        paths.check_template(value)


class PasswordUnreadable(Exception):
    """The stored password was encrypted with a secret key this site no longer has."""


def _fernet():
    from mediacraft.crypto import fernet

    return fernet("mediacraft.strm.password")


class StrmProfile(models.Model):
    """An admin-defined library: where to read (WebDAV or a local folder), where to write the
    .strm files and sidecars, and how. Both folders lie inside MEDIACRAFT_STRM_ROOTS. The WebDAV
    password is stored encrypted with a key derived from SECRET_KEY (SECRET_KEY_FALLBACKS still
    decrypt after a rotation) and is never shown back."""

    name = models.SlugField(_("name"), max_length=60, unique=True, allow_unicode=True,
                            help_text=_("How API clients choose this profile (also accepted as cloud_storage)."))
    description = models.CharField(_("description"), max_length=300, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)

    source_type = models.CharField(_("source"), max_length=10, choices=SourceType.choices, default=SourceType.WEBDAV)
    source_url = models.CharField(
        _("WebDAV URL"), max_length=1000, blank=True,
        help_text=_("The library folder on the WebDAV server, e.g. http://127.0.0.1:5244/dav/movies"),
    )
    source_username = models.CharField(_("WebDAV username"), max_length=200, blank=True)
    source_password_encrypted = models.TextField(blank=True, editable=False)
    source_path = models.CharField(
        _("local source folder"), max_length=1000, blank=True,
        help_text=_("An absolute folder inside MEDIACRAFT_STRM_ROOTS (e.g. an rclone mount)."),
    )
    target_path = models.CharField(
        _("library folder"), max_length=1000,
        help_text=_("Where the .strm files and sidecars are written: an absolute folder inside MEDIACRAFT_STRM_ROOTS."),
    )

    media_extensions = models.CharField(
        _("media extensions"), max_length=1000, default=paths.DEFAULT_MEDIA_EXTENSIONS,
        validators=[validate_extensions], help_text=_("Files with these extensions get a .strm file."),
    )
    sidecar_extensions = models.CharField(
        _("sidecar extensions"), max_length=1000, default=paths.DEFAULT_SIDECAR_EXTENSIONS, blank=True,
        validators=[validate_extensions],
        help_text=_("Files with these extensions (subtitles, NFO, images) are copied beside the .strm files."),
    )
    sidecar_max_mb = models.PositiveIntegerField(
        _("largest sidecar (MB)"), default=50, validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text=_("A sidecar larger than this is not copied and is reported as failed."),
    )
    ignore_patterns = models.TextField(
        _("protected paths"), blank=True, validators=[validate_ignore],
        help_text=_("Paths in the library folder that are never deleted: one pattern per line, like .gitignore "
                    "(e.g. *.nfo, poster.jpg, /Personal/, **/extrafanart/)."),
    )
    delete_orphans = models.BooleanField(
        _("delete orphans"), default=True,
        help_text=_("Full syncs also delete .strm and sidecar-type files in the library folder that match nothing "
                    "at the source (other files are never touched). Files a sync wrote for entries that "
                    "disappeared from the source are always deleted."),
    )

    url_base = models.CharField(
        _("custom base URL"), max_length=1000, blank=True,
        help_text=_("Written instead of the source's URL, e.g. an Alist direct-link prefix http://alist:5244/d/movies"),
    )
    url_template = models.CharField(
        _(".strm template"), max_length=1000, blank=True, validators=[validate_template],
        help_text=_("Empty: {base}/{path} with a custom base, else {source_url}. Placeholders: {source_url} (the "
                    "file's WebDAV URL, or its absolute path for a local folder), {base}, {path} (every segment "
                    "percent-encoded), {raw_path} (not encoded)."),
    )
    url_credentials = models.BooleanField(
        _("put the WebDAV credentials in the URL"), default=False,
        help_text=_("Writes user:password@ into each WebDAV URL, for players that cannot ask for them. "
                    "Anyone who can read the library can then read the password."),
    )

    listing_concurrency = models.PositiveSmallIntegerField(
        _("listing concurrency"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(32)],
        help_text=_("Folders listed (and sidecars fetched) at the same time. Empty: 4 for WebDAV, 1 for a local "
                    "folder (fastest on a local disk; use 4 to 8 for a network mount such as rclone, NFS or SMB)."),
    )
    timeout = models.PositiveIntegerField(
        _("timeout (seconds)"), default=6 * 3600, validators=[MinValueValidator(60)],
    )

    schedule = models.CharField(_("schedule"), max_length=10, choices=ScheduleKind.choices, default=ScheduleKind.NONE)
    schedule_interval_minutes = models.PositiveIntegerField(
        _("interval (minutes)"), null=True, blank=True, validators=[MinValueValidator(1)],
    )
    schedule_cron = models.CharField(
        _("cron expression"), max_length=120, blank=True,
        help_text=_("Five fields in MEDIACRAFT_TIME_ZONE, e.g. 30 3 * * * for 03:30 every day."),
    )
    schedule_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("run scheduled syncs as"),
        help_text=_("The account that owns scheduled syncs; it needs the operator permission."),
    )
    next_run_at = models.DateTimeField(_("next scheduled sync"), null=True, blank=True)

    running_task = models.ForeignKey(
        "tasks.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("running sync"),
    )
    synced_signature = models.CharField(max_length=64, blank=True, editable=False)
    last_success_at = models.DateTimeField(_("last successful sync"), null=True, blank=True)
    last_sync_type = models.CharField(_("last sync type"), max_length=12, choices=SyncType.choices, blank=True)
    last_entry_count = models.PositiveIntegerField(_("files at the last sync"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("STRM profile")
        verbose_name_plural = _("STRM profiles")
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def from_db(cls, db, field_names, values, *args, **kwargs):
        instance = super().from_db(db, field_names, values, *args, **kwargs)
        deferred = instance.get_deferred_fields()
        instance._schedule_seen = None if deferred & SCHEDULE_FIELDS else instance.schedule_key()
        return instance

    def schedule_key(self):
        return (self.schedule, self.schedule_interval_minutes, self.schedule_cron, self.enabled)

    def save(self, *args, **kwargs):
        from strm.services import profile_next_run

        seen = getattr(self, "_schedule_seen", ())
        if seen is not None and seen != self.schedule_key():
            self.next_run_at = profile_next_run(self)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "next_run_at"}
        super().save(*args, **kwargs)
        self._schedule_seen = self.schedule_key()

    # --- the password -------------------------------------------------------------------------

    def set_password(self, raw):
        self.source_password_encrypted = _fernet().encrypt(raw.encode()).decode() if raw else ""

    def get_password(self):
        if not self.source_password_encrypted:
            return ""
        from cryptography.fernet import InvalidToken

        try:
            return _fernet().decrypt(self.source_password_encrypted.encode()).decode()
        except InvalidToken:
            raise PasswordUnreadable(self.name) from None

    @property
    def has_password(self):
        return bool(self.source_password_encrypted)

    # --- what the sync uses -----------------------------------------------------------------

    @property
    def concurrency(self):
        if self.listing_concurrency:
            return self.listing_concurrency
        return 4 if self.source_type == SourceType.WEBDAV else 1

    @property
    def media_set(self):
        return frozenset(paths.parse_extensions(self.media_extensions))

    @property
    def sidecar_set(self):
        return frozenset(paths.parse_extensions(self.sidecar_extensions))

    def effective_template(self):
        if self.url_template:
            return self.url_template
        return "{base}/{path}" if self.url_base else "{source_url}"

    def source_base(self):
        """The source's own base: its normalised URL (with credentials if asked) or folder."""
        if self.source_type == SourceType.WEBDAV:
            url = paths.normalise_url(self.source_url)
            if self.url_credentials:
                url = paths.with_credentials(url, self.source_username, self.get_password())
            return url
        return os.path.realpath(self.source_path)

    def renderer(self):
        source_base = self.source_base()
        return paths.StrmRenderer(
            template=self.effective_template(),
            base=self.url_base.strip() or source_base,
            source_base=source_base,
            source_is_url=self.source_type == SourceType.WEBDAV,
        )

    def output_signature(self):
        """What the files a sync writes depend on: a change makes the next incremental sync
        check every file again."""
        data = [self.source_type, self.source_base(), os.path.realpath(self.target_path),
                sorted(self.media_set), sorted(self.sidecar_set), self.effective_template(), self.url_base.strip()]
        return hashlib.sha256(json.dumps(data).encode("utf-8", "surrogateescape")).hexdigest()

    # --- validation ---------------------------------------------------------------------------

    def clean(self):
        errors = {}

        def check(field, fn):
            try:
                return fn()
            except ValidationError as exc:
                errors.setdefault(field, []).extend(exc.messages)

        target = check("target_path", lambda: paths.confine(self.target_path))
        if target and os.path.exists(target) and not os.path.isdir(target):
            errors.setdefault("target_path", []).append(_("The library folder is a file."))
        if self.source_type == SourceType.WEBDAV:
            check("source_url", self._check_webdav_url)
            self.source_path = ""
        else:
            source = check("source_path", lambda: paths.confine(self.source_path))
            if source and not os.path.isdir(source):
                errors.setdefault("source_path", []).append(_("The source folder does not exist."))
            elif source and target and paths.overlaps(source, target):
                errors.setdefault("target_path", []).append(
                    _("The library folder and the source folder must not contain each other."))
        if target:
            others = StrmProfile.objects.exclude(pk=self.pk).values_list("name", "target_path")
            for other_name, other_target in others:
                if paths.overlaps(target, os.path.realpath(other_target)):
                    errors.setdefault("target_path", []).append(
                        _("The library folder overlaps the one of profile %(name)s.") % {"name": other_name})
                    break
        media = set(check("media_extensions", lambda: paths.parse_extensions(self.media_extensions)) or ())
        sidecars = set(check("sidecar_extensions", lambda: paths.parse_extensions(self.sidecar_extensions)) or ())
        if not media and "media_extensions" not in errors:
            errors.setdefault("media_extensions", []).append(_("List at least one media extension."))
        if "strm" in media | sidecars:
            errors.setdefault("media_extensions", []).append(_("strm cannot be a media or sidecar extension."))
        both = sorted(media & sidecars)
        if both:
            errors.setdefault("sidecar_extensions", []).append(
                _("These extensions are listed as both media and sidecar: %(ext)s.") % {"ext": ", ".join(both)})
        if self.url_base:
            check("url_base", lambda: self._check_http_url(self.url_base))
        if self.url_template:
            check("url_template", lambda: paths.check_template(self.url_template))
        self._clean_schedule(errors)
        if errors:
            raise ValidationError(errors)

    def _check_http_url(self, url):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(_("%(url)s is not an http:// or https:// URL.") % {"url": url})
        if parts.query or parts.fragment:
            raise ValidationError(_("The URL must not have a query (?) or a fragment (#)."))
        try:
            parts.port
        except ValueError:
            raise ValidationError(_("%(url)s has an invalid port.") % {"url": url}) from None

    def _check_webdav_url(self):
        if not self.source_url.strip():
            raise ValidationError(_("Enter the WebDAV URL of the library folder."))
        self._check_http_url(self.source_url)
        if urlsplit(self.source_url.strip()).username:
            raise ValidationError(_("Put the username and password in their own fields, not in the URL."))

    def _clean_schedule(self, errors):
        if self.schedule == ScheduleKind.INTERVAL:
            if not self.schedule_interval_minutes:
                errors.setdefault("schedule_interval_minutes", []).append(_("Enter the interval in minutes."))
        elif self.schedule == ScheduleKind.CRON:
            from croniter import croniter

            if not self.schedule_cron.strip() or not croniter.is_valid(self.schedule_cron.strip()):
                errors.setdefault("schedule_cron", []).append(
                    _("%(expr)s is not a valid cron expression.") % {"expr": self.schedule_cron or "''"})
        if self.schedule != ScheduleKind.NONE:
            if self.schedule_owner is None:
                errors.setdefault("schedule_owner", []).append(_("Choose the account that runs scheduled syncs."))
            elif not self.schedule_owner.has_perm("tasks.run_operator_tasks"):
                errors.setdefault("schedule_owner", []).append(
                    _("%(user)s lacks the operator permission.") % {"user": self.schedule_owner})


class StrmFileState(models.Model):
    """What the last syncs saw of one source file and wrote for it: the base of incremental syncs."""

    profile = models.ForeignKey(StrmProfile, on_delete=models.CASCADE, related_name="files")
    path = models.TextField(_("source path"))
    output = models.TextField(_("library path"))
    size = models.BigIntegerField(_("size"), null=True)
    mtime_ns = models.BigIntegerField(_("modified"), null=True)
    etag = models.CharField(_("ETag"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("synced file")
        verbose_name_plural = _("synced files")
        constraints = [models.UniqueConstraint(fields=["profile", "path"], name="strm_state_profile_path")]

    def __str__(self):
        return self.path

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _


class EntryStatus(models.TextChoices):
    """What calibration found out about one info hash or magnet link."""

    FOUND = "found", _("Found")
    UNKNOWN = "unknown", _("Unknown to qBittorrent")
    TIMEOUT = "timeout", _("Timed out waiting for metadata")
    NO_METADATA = "no_metadata", _("Known, but stopped without metadata")
    REFUSED = "refused", _("Refused by qBittorrent")


class EntrySource(models.TextChoices):
    EXISTING = "existing", _("A torrent qBittorrent already had")
    METADATA = "metadata", _("Metadata fetched from the magnet link")


class SeedStatus(models.TextChoices):
    """The statuses seed 004's clients know; engine statuses map onto them."""

    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    TIMEOUT = "timeout", _("Timed out")


class PasswordUnreadable(Exception):
    """The stored password was encrypted with a secret key this site no longer has."""


def _fernet():
    from mediacraft.crypto import fernet

    return fernet("mediacraft.torrents.password")


class QbittorrentConnection(models.Model):
    """An admin-defined qBittorrent Web UI that operators' calibration tasks use. The password
    is stored encrypted with a key derived from SECRET_KEY (SECRET_KEY_FALLBACKS still decrypt
    after a rotation) and is never shown back."""

    name = models.SlugField(_("name"), max_length=60, unique=True,
                            help_text=_("How API clients choose this connection."))
    description = models.CharField(_("description"), max_length=300, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    url = models.CharField(
        _("Web UI URL"), max_length=500,
        help_text=_("The qBittorrent Web UI, e.g. http://127.0.0.1:8080 or https://example.com/qbittorrent/"),
    )
    username = models.CharField(
        _("username"), max_length=200, blank=True,
        help_text=_("Leave empty when qBittorrent lets this site in without logging in (bypassed authentication)."),
    )
    password_encrypted = models.TextField(blank=True, editable=False)
    verify_tls = models.BooleanField(_("verify the TLS certificate"), default=True)
    probe_path = models.CharField(
        _("folder for metadata probes"), max_length=1000, blank=True,
        help_text=_("Where qBittorrent puts the magnet links added only to read their file lists (nothing is "
                    "downloaded; the probe is removed afterwards). Empty: .mediacraft-calibration inside "
                    "qBittorrent's default save path."),
    )
    login_failed_at = models.DateTimeField(_("last refused login"), null=True, blank=True, editable=False)
    login_failed_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("qBittorrent connection")
        verbose_name_plural = _("qBittorrent connections")
        ordering = ["name"]

    def __str__(self):
        return self.name

    # --- the password ---------------------------------------------------------------------------

    def set_password(self, raw):
        self.password_encrypted = _fernet().encrypt(raw.encode()).decode() if raw else ""

    def get_password(self):
        if not self.password_encrypted:
            return ""
        from cryptography.fernet import InvalidToken

        try:
            return _fernet().decrypt(self.password_encrypted.encode()).decode()
        except InvalidToken:
            raise PasswordUnreadable(self.name) from None

    @property
    def has_password(self):
        return bool(self.password_encrypted)

    # --- refused logins: qBittorrent bans an address after a few, so a refused set of
    # credentials is not tried again until an administrator changes or tests it ---------------

    def credentials_fingerprint(self):
        value = f"{self.api_base()}\0{self.username}\0{self.password_encrypted}"
        return salted_hmac("mediacraft.torrents.login", value, algorithm="sha256").hexdigest()

    @property
    def login_blocked(self):
        return bool(self.login_failed_fingerprint) and self.login_failed_fingerprint == self.credentials_fingerprint()

    # --- validation ---------------------------------------------------------------------------

    def api_base(self):
        return self.url.strip().rstrip("/") + "/api/v2/"

    def clean(self):
        parts = urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError({"url": _("%(url)s is not an http:// or https:// URL.") % {"url": self.url}})
        if parts.username or parts.password:
            raise ValidationError({"url": _("Put the username and password in their own fields, not in the URL.")})
        if parts.query or parts.fragment:
            raise ValidationError({"url": _("The URL must not have a query (?) or a fragment (#).")})
        try:
            parts.port
        except ValueError:
            raise ValidationError({"url": _("%(url)s has an invalid port.") % {"url": self.url}}) from None
        probe = self.probe_path.strip()
        if probe and not (probe.startswith("/") or probe[1:3] in (":/", ":\\")):  # POSIX or Windows
            raise ValidationError({"probe_path": _("Enter an absolute folder on the qBittorrent machine.")})
        self.url = self.url.strip()
        self.probe_path = self.probe_path.strip()

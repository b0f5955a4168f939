import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class StoredFile(models.Model):
    """A file on disk under MEDIA_ROOT: an upload (input) or a task's result (output).
    An upload not yet attached to a task expires after MEDIACRAFT_UPLOAD_TTL_HOURS; attached
    files live and die with their task."""

    class Role(models.TextChoices):
        INPUT = "input", _("Input")
        OUTPUT = "output", _("Output")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files")
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="files")
    role = models.CharField(_("role"), max_length=6, choices=Role.choices)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    original_name = models.CharField(_("original name"), max_length=255)
    stored_name = models.CharField(_("stored name"), max_length=255)
    path = models.CharField(_("path"), max_length=500, help_text=_("Relative to the media root."))
    size = models.BigIntegerField(_("size"))
    sha256 = models.CharField("SHA-256", max_length=64)
    # The data on disk, when it is another file's: that file's id (a hard link, made by a task's
    # copy reusing an earlier task's video). None: its own. The quota counts the data once.
    blob = models.UUIDField(_("data on disk"), null=True, blank=True, editable=False)
    media = models.JSONField(_("media information"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        verbose_name = _("stored file")
        verbose_name_plural = _("stored files")
        ordering = ["role", "position", "created_at"]
        indexes = [
            models.Index(fields=["owner", "role"], name="file_owner_role"),
            models.Index(fields=["task", "role", "position"], name="file_task_role"),
            models.Index(fields=["expires_at"], name="file_expiry"),
        ]

    def __str__(self):
        return self.original_name

    @property
    def abs_path(self):
        return Path(settings.MEDIA_ROOT) / self.path

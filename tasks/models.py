import unicodedata
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


def search_form(text):
    """Text as searches compare it: full-width letters and digits as plain ones (NFKC), any case
    as lower case; static/mediacraft/js/tasks.js does the same for the rows it matches live."""
    return unicodedata.normalize("NFKC", text or "").lower()


class TaskKind(models.TextChoices):
    WATERMARK = "watermark", _("Watermark removal")
    MERGE = "merge", _("Video merge")
    DOWNLOAD = "download", _("Download")
    STRM_SYNC = "strm_sync", _("STRM library sync")
    CALIBRATION = "calibration", _("Torrent calibration")
    COMMAND = "command", _("Command-line tool")


class Task(models.Model):
    """One job of one owner; the database is the source of truth, RQ only the transport.

    Transitions, all in tasks/services.py as conditional UPDATEs:
        pending  -> queued     (dispatch: a slot is free; a submit that finds a slot free and
                                nothing waiting inserts its task queued, both in its timeline)
        queued   -> running    (a worker picked it up)
        running  -> completed | failed | cancelled | timeout
        running  -> retrying   (retryable failure with attempts left)
        retrying -> queued     (dispatch, once retry_at has passed)
        pending | queued | retrying -> cancelled
        failed | cancelled | timeout -> pending   (manual retry; a kind may allow more, e.g. a
                                                   download that completed with failed files)
        queued -> failed       (reconciler: its RQ job failed again and again before the task
                                could start; a job that vanished is enqueued again instead)
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        RETRYING = "retrying", _("Retrying")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        TIMEOUT = "timeout", _("Timed out")

    TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMEOUT)
    ACTIVE = (Status.QUEUED, Status.RUNNING)
    WAITING = (Status.PENDING, Status.RETRYING)
    RETRYABLE_BY_USER = (Status.FAILED, Status.CANCELLED, Status.TIMEOUT)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(_("kind"), max_length=20, choices=TaskKind.choices)
    title = models.CharField(_("title"), max_length=200, blank=True)
    # The title as searches compare it (search_form): the database's own case folding is ASCII
    # only on SQLite, and on PostgreSQL depends on the server's locale.
    search_title = models.CharField(max_length=800, blank=True, editable=False)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    stage = models.CharField(_("stage"), max_length=40, blank=True)
    progress = models.FloatField(_("progress"), default=0)
    message_code = models.CharField(_("message"), max_length=60, blank=True)
    message_params = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(_("statistics"), default=dict, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    error_code = models.CharField(_("error"), max_length=60, blank=True)
    error_params = models.JSONField(default=dict, blank=True)
    error_detail = models.TextField(_("technical detail"), blank=True)
    timeline = models.JSONField(_("timeline"), default=list, blank=True)
    priority = models.PositiveSmallIntegerField(
        _("priority"), default=5, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveSmallIntegerField(_("maximum attempts"), default=1)
    timeout = models.PositiveIntegerField(_("timeout (seconds)"))
    worker_name = models.CharField(_("worker"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    retry_at = models.DateTimeField(_("retry at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    cancel_requested_at = models.DateTimeField(_("cancel requested"), null=True, blank=True)

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="task_owner_created"),
            models.Index(fields=["owner", "status"], name="task_owner_status"),
            models.Index(fields=["owner", "kind", "-created_at"], name="task_owner_kind"),
            models.Index(fields=["status", "-priority", "created_at"], name="task_dispatch"),
            models.Index(fields=["status", "expires_at"], name="task_expiry"),
        ]
        permissions = [("run_operator_tasks", _("Can run operator task kinds"))]

    def __str__(self):
        return f"{self.get_kind_display()} {self.title or self.pk}"

    def save(self, *args, **kwargs):
        self.search_title = search_form(self.title)
        if kwargs.get("update_fields") is not None and "title" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "search_title"}
        super().save(*args, **kwargs)

    @property
    def is_terminal(self):
        return self.status in self.TERMINAL


def validate_argv(value):
    from django.core.exceptions import ValidationError

    def is_item(a):
        return isinstance(a, str) or (isinstance(a, list) and a and all(isinstance(p, str) for p in a))

    if not isinstance(value, list) or not value or not isinstance(value[0], str) or not all(map(is_item, value)):
        raise ValidationError(
            _("The command must be a list of strings; a nested list of strings is an optional group.")
        )


def validate_param_schema(value):
    from tasks.processors.command import check_schema

    check_schema(value)


def validate_translations(value):
    from django.core.exceptions import ValidationError

    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) <= 300
                                              for k, v in value.items()):
        raise ValidationError(_('Give {language code: text}, e.g. {"zh-hans": "…"}, each text at most 300 characters.'))


class CommandTemplate(models.Model):
    """An admin-registered command-line tool. Run without a shell: argv items are formatted
    with the user's parameters ({name}), {output_dir}, {task_id}, {python} (MediaCraft's
    interpreter) and {base_dir} (MediaCraft's folder); a nested list is an optional group,
    dropped when one of its parameters has no value."""

    name = models.SlugField(_("name"), max_length=60, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    description_translations = models.JSONField(
        _("description in other languages"), default=dict, blank=True, validators=[validate_translations],
        help_text=_('{language code: text}, e.g. {"zh-hans": "…"}; other languages see the description above. '
                    'Parameter labels and help take the same form in the parameters.'),
    )
    argv = models.JSONField(
        _("command"), validators=[validate_argv],
        help_text=_('e.g. ["python3", "gen.py", "--topic", "{topic}"]. Placeholders: the parameters\' names and '
                    '{output_dir}, {task_id}, {python}, {base_dir}; write a literal { as {{ and } as }}.'),
    )
    param_schema = models.JSONField(
        _("parameters"),
        default=list,
        blank=True,
        validators=[validate_param_schema],
        help_text=_(
            'A list of {"name", "type" (string|integer|number|boolean), "required", "choices", "pattern", "default"}.'
        ),
    )
    default_timeout = models.PositiveIntegerField(_("default timeout (seconds)"), default=1800)
    max_attempts = models.PositiveSmallIntegerField(
        _("maximum attempts"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text=_("Attempts when the worker is lost or a transient error occurs; the tool's own failures are never retried."),
    )
    working_dir = models.CharField(_("working directory"), max_length=500, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    allow_everyone = models.BooleanField(
        _("open to every visitor"),
        default=False,
        help_text=_("Without this, only accounts with the operator permission may run the template."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("command template")
        verbose_name_plural = _("command templates")
        ordering = ["name"]

    def clean(self):
        from django.core.exceptions import ValidationError

        from tasks.processors.command import check_argv, check_schema

        try:  # each field on its own first: their validators report what is wrong there
            validate_argv(self.argv)
            check_schema(self.param_schema)
        except ValidationError:
            return
        try:
            check_argv(self.argv, self.param_schema)
        except ValidationError as exc:
            raise ValidationError({"argv": exc.messages}) from None

    def __str__(self):
        return self.name

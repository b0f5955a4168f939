"""Reads for seed 001's endpoints: download tasks as that system's clients know them. A task is
looked up through tasks.selectors.task_get_for_user, so anyone else's task is a 404."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tasks import selectors as task_selectors
from tasks.errors import NotFound
from tasks.models import Task, TaskKind

S = Task.Status
# Stages of a running download that are not downloading yet, or no more.
BEFORE_DOWNLOAD = ("", "starting")
AFTER_DOWNLOAD = ("finishing",)


class SeedStatus(models.TextChoices):
    """Seed 001's task statuses."""

    PENDING = "pending", _("Pending")
    DOWNLOADING = "downloading", _("Downloading")
    PROCESSING = "processing", _("Processing")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


TERMINAL = {S.COMPLETED: SeedStatus.COMPLETED, S.FAILED: SeedStatus.FAILED, S.TIMEOUT: SeedStatus.FAILED,
            S.CANCELLED: SeedStatus.CANCELLED}


def seed_status(task):
    """Our status (and, while running, stage) as seed 001 names it: `downloading` is a running
    task in its download stage."""
    if task.status in TERMINAL:
        return TERMINAL[task.status]
    if task.status == S.RUNNING:
        if task.stage in BEFORE_DOWNLOAD:
            return SeedStatus.PENDING
        if task.stage in AFTER_DOWNLOAD:
            return SeedStatus.PROCESSING
        return SeedStatus.DOWNLOADING
    return SeedStatus.PENDING


def seed_status_filter(status):
    """The Q that selects the tasks seed_status() calls `status`."""
    running = Q(status=S.RUNNING)
    return {
        SeedStatus.PENDING: Q(status__in=[S.PENDING, S.QUEUED, S.RETRYING]) | (running & Q(stage__in=BEFORE_DOWNLOAD)),
        SeedStatus.DOWNLOADING: running & ~Q(stage__in=BEFORE_DOWNLOAD + AFTER_DOWNLOAD),
        SeedStatus.PROCESSING: running & Q(stage__in=AFTER_DOWNLOAD),
        SeedStatus.COMPLETED: Q(status=S.COMPLETED),
        SeedStatus.FAILED: Q(status__in=[S.FAILED, S.TIMEOUT]),
        SeedStatus.CANCELLED: Q(status=S.CANCELLED),
    }[SeedStatus(status)]


def download_tasks(*, user, status=None):
    """The user's download tasks, newest first, optionally with one seed status."""
    qs = task_selectors.task_list(user=user, kind=TaskKind.DOWNLOAD)
    return qs.filter(seed_status_filter(status)) if status else qs


def download_task_get_for_user(*, user, task_id):
    task = task_selectors.task_get_for_user(user=user, task_id=task_id)
    if task.kind != TaskKind.DOWNLOAD:
        raise NotFound()
    return task

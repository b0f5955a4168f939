"""Writes for STRM syncs: starting and stopping syncs, the per-profile run claim, the file state
of incremental syncs, and the schedule."""

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from strm import selectors
from strm.models import ScheduleKind, StrmFileState, StrmProfile, SyncTrigger, SyncType
from tasks import services as task_services
from tasks.errors import ApiError, InvalidParams
from tasks.models import Task, TaskKind

log = logging.getLogger(__name__)


class SyncRunning(ApiError):
    """A sync of the profile is already under way; carries that task."""

    status = 409

    def __init__(self, task):
        super().__init__(
            "sync_running",
            _("A sync of this profile is already running: task %(task_id)s.") % {"task_id": task.pk},
            task_id=str(task.pk),
        )
        self.task = task


def clean_sync_type(value):
    if value not in SyncType.values:
        raise InvalidParams(
            _("sync_type must be one of: %(choices)s.") % {"choices": ", ".join(SyncType.values)}, "sync_type"
        )
    return value


def strm_sync_submit(*, owner, profile, sync_type, trigger=SyncTrigger.API, owner_factory=None):
    """Start a sync of the profile unless one is already pending or running (SyncRunning).
    The profile row is locked, so two requests at once cannot both start one."""
    sync_type = clean_sync_type(sync_type)
    with transaction.atomic():
        locked = StrmProfile.objects.select_for_update().filter(pk=profile.pk, enabled=True).first()
        if locked is None:
            raise InvalidParams(_("There is no enabled STRM profile %(name)s.") % {"name": profile.name}, "profile")
        running = selectors.strm_active_task(profile_id=locked.pk)
        if running is not None:
            raise SyncRunning(running)
        task = task_services.task_submit(
            owner=owner, owner_factory=owner_factory, kind=TaskKind.STRM_SYNC,
            params={"profile": locked.pk, "sync_type": sync_type, "trigger": trigger},
        )
    task.refresh_from_db()
    return task


def strm_sync_stop(*, task):
    return task_services.task_cancel(task=task)


def strm_stop_all(*, user):
    """Stop every unfinished sync of the user; returns the tasks asked to stop."""
    stopped = []
    for task in selectors.strm_tasks(user=user, active=True):
        try:
            stopped.append(task_services.task_cancel(task=task))
        except ApiError:
            pass  # finished meanwhile
    return stopped


# --- the run claim: at most one sync of a profile runs, whatever path started it -------------

def strm_profile_claim(*, profile_id, task_id):
    """Mark the profile as being synced by this task. Returns None on success, or the id of the
    unfinished task that holds it (a holder that finished or vanished is taken over)."""
    with transaction.atomic():
        profile = StrmProfile.objects.select_for_update().filter(pk=profile_id).first()
        if profile is None:
            return None
        holder = profile.running_task_id
        if holder is not None and str(holder) != str(task_id):
            if Task.objects.filter(pk=holder).exclude(status__in=Task.TERMINAL).exists():
                return holder
        StrmProfile.objects.filter(pk=profile_id).update(running_task_id=task_id)
    return None


def strm_profile_release(*, profile_id, task_id):
    StrmProfile.objects.filter(pk=profile_id, running_task_id=task_id).update(running_task_id=None)


# --- file state --------------------------------------------------------------------------------

STATE_BATCH = 150  # rows per INSERT: 6 parameters each stays under every SQLite's limit of 999


def strm_state_save(*, profile_id, upserts, drop_ids=(), drop_paths=()):
    """Record what was written (path -> (output, size, mtime_ns, etag)) and forget the rest.
    One multi-row INSERT ... ON CONFLICT per batch (SQLite and PostgreSQL alike): a full sync
    records 100,000 rows in well under a second, where model instances would take many."""
    table = connection.ops.quote_name(StrmFileState._meta.db_table)
    items = list(upserts.items())
    with transaction.atomic():
        drop_ids = list(drop_ids)
        for i in range(0, len(drop_ids), 900):
            StrmFileState.objects.filter(pk__in=drop_ids[i:i + 900]).delete()
        drop_paths = list(drop_paths)
        for i in range(0, len(drop_paths), 900):
            StrmFileState.objects.filter(profile_id=profile_id, path__in=drop_paths[i:i + 900]).delete()
        with connection.cursor() as cursor:
            for i in range(0, len(items), STATE_BATCH):
                batch = items[i:i + STATE_BATCH]
                values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(batch))
                params = []
                for path, (output, size, mtime_ns, etag) in batch:
                    params.extend((profile_id, path, output, size, mtime_ns, etag))
                cursor.execute(
                    f"INSERT INTO {table} (profile_id, path, output, size, mtime_ns, etag) VALUES {values} "
                    "ON CONFLICT (profile_id, path) DO UPDATE SET output = excluded.output, size = excluded.size, "
                    "mtime_ns = excluded.mtime_ns, etag = excluded.etag",
                    params,
                )


def strm_profile_mark_synced(*, profile_id, signature, sync_type, entry_count):
    StrmProfile.objects.filter(pk=profile_id).update(
        synced_signature=signature, last_success_at=timezone.now(), last_sync_type=sync_type,
        last_entry_count=entry_count,
    )


# --- schedule ----------------------------------------------------------------------------------

def profile_next_run(profile, now=None):
    """When the profile's schedule next starts a sync after `now` (None: no schedule)."""
    now = now or timezone.now()
    if not profile.enabled:
        return None
    if profile.schedule == ScheduleKind.INTERVAL and profile.schedule_interval_minutes:
        return now + timedelta(minutes=profile.schedule_interval_minutes)
    if profile.schedule == ScheduleKind.CRON and profile.schedule_cron.strip():
        from croniter import CroniterError, croniter

        try:
            return croniter(profile.schedule_cron.strip(), timezone.localtime(now)).get_next(type(now))
        except (CroniterError, ValueError, KeyError):
            return None
    return None


def strm_start_due_syncs(*, now=None):
    """Start an incremental sync of every profile whose schedule is due (called by the scheduler
    leader each round). A busy profile skips its turn. Returns the tasks started."""
    now = now or timezone.now()
    started = []
    due = StrmProfile.objects.filter(enabled=True, next_run_at__lte=now).exclude(schedule=ScheduleKind.NONE)
    for profile in due.select_related("schedule_owner"):
        following = profile_next_run(profile, now)
        # Conditional update: only one scheduler round may take this turn.
        if not StrmProfile.objects.filter(pk=profile.pk, next_run_at=profile.next_run_at).update(next_run_at=following):
            continue
        if profile.schedule_owner is None:
            log.warning("STRM profile %s: scheduled sync skipped, no account to run it as", profile.name)
            continue
        try:
            task = strm_sync_submit(owner=profile.schedule_owner, profile=profile, sync_type=SyncType.INCREMENTAL,
                                    trigger=SyncTrigger.SCHEDULE)
        except SyncRunning as exc:
            log.info("STRM profile %s: scheduled sync skipped, task %s is still running", profile.name, exc.task.pk)
            continue
        except ApiError as exc:
            log.warning("STRM profile %s: scheduled sync not started: %s", profile.name, exc.message)
            continue
        log.info("STRM profile %s: scheduled incremental sync %s started", profile.name, task.pk)
        started.append(task)
    return started

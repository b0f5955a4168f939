"""Reads for STRM syncs. A sync task is looked up through tasks.selectors.task_get_for_user, so
anyone else's task is a 404."""

from django.utils.translation import gettext as _

from mediacraft.numbers import row_id
from strm.models import SeedStatus, StrmFileState, StrmProfile
from tasks import selectors as task_selectors
from tasks.errors import InvalidParams, NotFound
from tasks.models import Task, TaskKind

S = Task.Status

# Engine statuses as seed 000's clients know them.
SEED_STATUS = {
    S.PENDING: SeedStatus.PENDING,
    S.QUEUED: SeedStatus.PENDING,
    S.RETRYING: SeedStatus.PENDING,
    S.RUNNING: SeedStatus.RUNNING,
    S.COMPLETED: SeedStatus.COMPLETED,
    S.FAILED: SeedStatus.FAILED,
    S.TIMEOUT: SeedStatus.FAILED,
    S.CANCELLED: SeedStatus.CANCELLED,
}


def profile_resolve(ref):
    """An enabled profile from its id or name; without one, the only enabled profile."""
    enabled = StrmProfile.objects.filter(enabled=True)
    if ref is None or ref == "":
        profiles = list(enabled[:2])
        if len(profiles) == 1:
            return profiles[0]
        if not profiles:
            raise InvalidParams(_("No STRM profile is set up yet: an administrator creates one in the admin."), "profile")
        names = ", ".join(enabled.values_list("name", flat=True)[:20])
        raise InvalidParams(_("Choose a profile: one of %(names)s.") % {"names": names}, "profile")
    if isinstance(ref, bool) or not isinstance(ref, (str, int)) or (isinstance(ref, str) and "\x00" in ref):
        raise InvalidParams(_("profile must be a profile's name or id."), "profile")
    profile = enabled.filter(name=ref).first() if isinstance(ref, str) else None
    if profile is None and (pk := row_id(ref)) is not None:
        profile = enabled.filter(pk=pk).first()  # a name wins over an id: seed clients send names
    if profile is None:
        raise InvalidParams(_("There is no enabled STRM profile %(name)s.") % {"name": str(ref)[:60]}, "profile")
    return profile


def profile_for_run(profile_id):
    return StrmProfile.objects.filter(pk=profile_id, enabled=True).first()


def profile_list():
    return StrmProfile.objects.filter(enabled=True).order_by("name")


def strm_active_task(*, profile_id):
    """The unfinished sync of this profile, whoever owns it, or None."""
    return (
        Task.objects.filter(kind=TaskKind.STRM_SYNC, params__profile=profile_id)
        .exclude(status__in=Task.TERMINAL)
        .order_by("created_at")
        .first()
    )


def strm_tasks(*, user, active=None, sync_type=None, statuses=None):
    """The user's sync tasks, newest first."""
    qs = task_selectors.task_list(user=user, kind=TaskKind.STRM_SYNC)
    if active is True:
        qs = qs.exclude(status__in=Task.TERMINAL)
    elif active is False:
        qs = qs.filter(status__in=Task.TERMINAL)
    if sync_type:
        qs = qs.filter(params__sync_type=sync_type)
    if statuses:
        qs = qs.filter(status__in=statuses)
    return qs


def strm_task_get_for_user(*, user, task_id):
    task = task_selectors.task_get_for_user(user=user, task_id=task_id)
    if task.kind != TaskKind.STRM_SYNC:
        raise NotFound()
    return task


def engine_statuses(seed_status):
    """The engine statuses a seed status stands for ('failed' includes timeouts); an engine-only
    status (queued, retrying, timeout) stands for itself."""
    if seed_status in SeedStatus.values:
        return [engine for engine, seed in SEED_STATUS.items() if seed == seed_status]
    return [seed_status] if seed_status in S.values else []


def state_map(*, profile_id):
    """path -> (id, output, size, mtime_ns, etag) of everything the last syncs recorded. Read with
    one plain query: an incremental sync of 100,000 files must not spend its time in the ORM."""
    from django.db import connection

    table = connection.ops.quote_name(StrmFileState._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT path, id, output, size, mtime_ns, etag FROM {table} WHERE profile_id = %s",
                       [profile_id])
        return {row[0]: row[1:] for row in cursor.fetchall()}
